"""Sources: where raw inputs come from, listed lazily, turned into ``Sample`` records.

A source lists *units*: one unit is what one sample is made from (the files of one
basename in a folder, one table row, one sample of an existing tar). Listing streams per
prefix (``fs.walk`` lists one directory level at a time), so the driver never holds a
full listing. Reading a unit happens in the task that owns it, on a worker.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import fsspec

from ..errors import ConfigError, QuarantineError
from ..shards import storage

TABLE_EXTS = (".jsonl", ".parquet", ".jsonl.gz")
TAR_EXTS = (".tar", ".tar.gz", ".tgz")
TABLE_OR_TAR = TABLE_EXTS + TAR_EXTS


class FileRef(NamedTuple):
    """One input object: URL, size and a version tag (etag or mtime) for identity.

    A named tuple rather than a frozen dataclass: the driver makes one per listed file,
    and a tuple is made ~3x faster."""

    url: str
    size: int
    version: str

    @property
    def identity(self) -> str:
        return f"{self.url}\x00{self.size}\x00{self.version}"


@dataclass(frozen=True, slots=True)
class Unit:
    """The inputs of one sample. ``kind``: ``files`` (ext -> FileRef), ``row`` (a table
    row: file + row number), ``tar`` (a tar file + member group index)."""

    kind: str
    name: str  # source-relative name (may be personal data: only ever hashed into keys/reports)
    files: tuple[tuple[str, FileRef], ...]
    index: int = -1
    # derived once: the ledger, the planner and the commit each need it for every unit
    identity: str = field(init=False, repr=False, compare=False)
    size: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = [self.kind, str(self.index)]
        size = 0
        for e, f in self.files:
            parts.append(f"{e}={f.url}\x00{f.size}\x00{f.version}")  # FileRef.identity, inlined
            size += f.size
        object.__setattr__(self, "identity", "\x01".join(parts))
        object.__setattr__(self, "size", size if self.kind == "files" else 4096)

    def __reduce__(self) -> tuple[Any, ...]:
        return Unit, (self.kind, self.name, self.files, self.index)


def _version(info: dict[str, Any]) -> str:
    for k in ("ETag", "etag", "mtime", "LastModified", "last_modified", "created"):
        if info.get(k) is not None:
            return str(info[k]).strip('"')
    return ""


def _ext_split(name: str) -> tuple[str, str] | None:
    """WebDataset split: the key is the name up to the first dot of the last part."""
    d, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem or not ext:
        return None
    return (f"{d}/{stem}" if d else stem), ext


class Source:
    """One source URL: a folder/prefix, a glob, a table file, or a tar file."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.storage_options = storage_options or {}
        self.fs, self.path = storage.resolve(url, self.storage_options)
        self.proto = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]

    def _url(self, path: str) -> str:
        return path if self.proto in ("file", "local") else f"{self.proto}://{path}"

    def units(self) -> Iterator[Unit]:
        """Every unit of this source, in a stable order, listed lazily."""
        if any(c in self.path for c in "*?["):
            for p in sorted(self.fs.glob(self.path)):
                yield from self._units_at(p, base=posixpath.dirname(self.path.split("*")[0].rstrip("/")))
            return
        if not self.fs.exists(self.path):
            raise ConfigError(f"source {self.url!r} does not exist")
        yield from self._units_at(self.path, base=self.path)

    def _units_at(self, path: str, base: str) -> Iterator[Unit]:
        if self.fs.isdir(path):
            yield from self._folder(path)
        elif path.endswith(TABLE_EXTS):
            yield from self._table(path)
        elif path.endswith(TAR_EXTS):
            yield from self._tar(path)
        else:  # a single media file
            info = self.fs.info(path)
            split = _ext_split(posixpath.basename(path))
            if split is None:
                return
            ref = FileRef(self._url(path), int(info.get("size") or 0), _version(info))
            yield Unit("files", split[0], ((split[1], ref),))

    def _walk(self, root: str) -> Iterator[tuple[str, dict[str, tuple[str, int, str]]]]:
        """(directory, {file name: (path, size, version)}) per directory, depth first,
        subdirectories in name order (a stable order on every store and every copy)."""
        if storage.is_local(self.fs):
            yield from _local_walk(root)
            return
        for dirpath, dirs, files in self.fs.walk(root, detail=True):
            ordered = sorted(dirs.items())
            dirs.clear()
            dirs.update(ordered)  # fsspec recurses in this dict's order after the yield
            yield dirpath, {
                n: (i.get("name") or posixpath.join(dirpath, n), int(i.get("size") or 0), _version(i))
                for n, i in files.items()
            }

    def _folder(self, root: str) -> Iterator[Unit]:
        # this loop runs once per listed file, on the driver: locals, no helper calls
        local = self.proto in ("file", "local")
        proto = f"{self.proto}://"
        for dirpath, files in self._walk(root):
            rel_dir = posixpath.relpath(dirpath, root) if dirpath != root else ""
            groups: dict[str, list[tuple[str, FileRef]]] = {}
            prefix = f"{rel_dir}/" if rel_dir else ""
            for fname in sorted(files):
                stem, _, ext = fname.partition(".")  # _ext_split, inlined
                if not stem or not ext:  # also skips dotfiles (empty stem)
                    continue
                if fname.endswith(TABLE_OR_TAR):
                    yield from self._units_at(posixpath.join(dirpath, fname), root)
                    continue
                full, size, version = files[fname]
                ref = FileRef(full if local else proto + full, size, version)
                key = prefix + stem
                group = groups.get(key)
                if group is None:
                    groups[key] = [(ext, ref)]
                else:
                    group.append((ext, ref))
            for name in sorted(groups):
                yield Unit("files", name, tuple(groups[name]))

    def _table(self, path: str) -> Iterator[Unit]:
        info = self.fs.info(path)
        ref = FileRef(self._url(path), int(info.get("size") or 0), _version(info))
        n = count_rows(self.fs, path)
        for i in range(n):
            yield Unit("row", f"{posixpath.basename(path)}#{i}", (("table", ref),), i)

    def _tar(self, path: str) -> Iterator[Unit]:
        info = self.fs.info(path)
        ref = FileRef(self._url(path), int(info.get("size") or 0), _version(info))
        yield Unit("tar", posixpath.basename(path), (("tar", ref),), -1)


def _local_walk(root: str) -> Iterator[tuple[str, dict[str, tuple[str, int, str]]]]:
    """The local fast path of ``Source._walk``: os.scandir, one stat per file, none per
    directory. Names, sizes and versions equal what fsspec's ``LocalFileSystem.info`` gives
    (size through a symlink, mtime of the link itself), so identities and the ledger do not
    depend on which path listed them; fsspec's per-entry dicts cost 3x the stat itself."""
    stack = [root]
    while stack:
        d = stack.pop()
        files: dict[str, tuple[str, int, str]] = {}
        subdirs: list[str] = []
        try:
            it = os.scandir(d)
        except OSError:  # as fsspec's walk: an unreadable or vanished directory lists empty
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        subdirs.append(e.name)
                        continue
                    st = e.stat(follow_symlinks=False)
                    size = st.st_size
                    if e.is_symlink():
                        try:
                            size = os.stat(e.path).st_size
                        except OSError:
                            size = 0
                except FileNotFoundError:  # vanished while listing
                    continue
                files[e.name] = (e.path, size, str(st.st_mtime))
        yield d, files
        stack.extend(posixpath.join(d, n) for n in sorted(subdirs, reverse=True))


def count_rows(fs: Any, path: str) -> int:
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        with fs.open(path, "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows
    with fs.open(path, "rb") as f:
        stream = gzip.open(f) if path.endswith(".gz") else f  # noqa: SIM115 - closed with f
        return sum(1 for line in stream if line.strip())


# -- reading units (on workers) ----------------------------------------------------------


class Reader:
    """Reads a task's inputs on a worker: each filesystem resolved once (per protocol), and
    table rows through one forward cursor per table, so a task's rows (planned in order)
    cost one pass over their table rather than one pass per row. ``close()`` when done."""

    def __init__(self, storage_options: dict[str, Any] | None = None) -> None:
        self.so = storage_options or {}
        self._fs: dict[str, Any] = {}
        self._table: _TableCursor | None = None

    def read(self, url: str, size: int = -1) -> bytes:
        """The whole object at ``url``; ``size`` (as listed) is a hint, not a limit."""
        proto = url.split("://", 1)[0] if "://" in url else "file"
        if proto == "file":
            return _read_local(url[7:] if url.startswith("file://") else url, size)
        fs = self._fs.get(proto)
        if fs is None:
            fs = self._fs[proto] = fsspec.filesystem(proto, **self.so)
        return fs.cat_file(url)

    def row(self, url: str, index: int) -> dict[str, Any]:
        """Row ``index`` of the table at ``url`` as a dict of column values."""
        c = self._table
        if c is None or c.url != url or index < c.next:
            if c is not None:
                c.close()
            c = self._table = _TableCursor(url, self.so, index)
        return c.get(index)

    def close(self) -> None:
        if self._table is not None:
            self._table.close()
            self._table = None


def _read_local(path: str, size: int) -> bytes:
    """A local file in one ``read`` when it still has its listed size (half the cost of a
    Python file object, per file, on a path that reads two files per sample); all of it if
    it grew since the listing."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        want = size + 1 if size >= 0 else 1 << 20
        data = os.read(fd, want)
        if len(data) < want:
            return data
        parts = [data]
        while chunk := os.read(fd, 1 << 24):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


class _TableCursor:
    """Reads one table forward from row ``start``: JSONL line by line (plain or gzip),
    Parquet in record batches from the row group that holds ``start`` (row groups before
    it are skipped by their metadata, never decoded). Memory: one batch of rows."""

    BATCH = 256

    def __init__(self, url: str, so: dict[str, Any], start: int) -> None:
        self.url = url
        self.next = 0  # the index the next row read has
        self._f = fsspec.open(url, "rb", **so).open()
        self._rows: Iterator[Any]
        try:
            if url.endswith(".parquet"):
                self._rows = self._parquet(start)
            else:
                self._rows = self._jsonl()
        except Exception:
            self._f.close()
            raise

    def _parquet(self, start: int) -> Iterator[dict[str, Any]]:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(self._f)
        except Exception as e:  # pyarrow raises its own error types for damaged files
            raise QuarantineError(f"not a readable Parquet file ({e.__class__.__name__})") from None
        first, skipped = 0, 0
        for g in range(pf.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if start < skipped + n:
                break
            skipped += n
            first = g + 1
        self.next = skipped
        return (row for b in pf.iter_batches(batch_size=self.BATCH, row_groups=range(first, pf.num_row_groups))
                for row in b.to_pylist())

    def _jsonl(self) -> Iterator[bytes]:
        stream = gzip.open(self._f) if self.url.endswith(".gz") else self._f  # noqa: SIM115 - closed with _f
        return (line for line in stream if line.strip())

    def get(self, index: int) -> dict[str, Any]:
        where = f"row {index}"
        try:
            while True:
                row = next(self._rows, None)
                if row is None:
                    raise QuarantineError(f"{where}: past the end of the table")
                i = self.next
                self.next += 1
                if i == index:
                    break
        except QuarantineError:
            raise
        except (OSError, EOFError, zlib.error, ValueError) as e:  # truncated gzip, damaged Parquet page, I/O
            raise QuarantineError(f"{where}: table unreadable ({e.__class__.__name__})") from None
        if isinstance(row, bytes):  # a JSONL line
            try:
                row = json.loads(row)
            except ValueError:
                raise QuarantineError(f"{where}: not a JSON object line") from None
            if not isinstance(row, dict):
                raise QuarantineError(f"{where}: not a JSON object line")
        return row

    def close(self) -> None:
        self._f.close()


def read_unit(
    unit: Unit, storage_options: dict[str, Any] | None = None, reader: Reader | None = None
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(name, fields)`` for each sample of a unit (a tar unit yields many)."""
    so = storage_options or {}
    rd = reader or Reader(so)
    try:
        if unit.kind == "files":
            fields: dict[str, bytes] = {}
            for ext, ref in unit.files:
                fields[ext] = rd.read(ref.url, ref.size)
            yield unit.name, fields
        elif unit.kind == "row":
            yield unit.name, _row_fields(rd.row(unit.files[0][1].url, unit.index), rd, f"row {unit.index}")
        elif unit.kind == "tar":
            yield from read_tar(unit.files[0][1].url, so)
        else:
            raise QuarantineError(f"unknown unit kind {unit.kind!r}")
    finally:
        if reader is None:
            rd.close()


def _row_fields(row: dict[str, Any], reader: Reader, where: str) -> dict[str, bytes]:
    """Table columns -> fields: bytes and str inline; ``<ext>_url`` columns fetched; other
    scalars and nested values into a JSON field."""
    fields: dict[str, bytes] = {}
    rest: dict[str, Any] = {}
    for col, value in row.items():
        if value is None:
            continue
        if col.endswith("_url") and isinstance(value, str):
            fields[col[:-4]] = reader.read(value)  # the task's reader: one filesystem per protocol
        elif isinstance(value, bytes):
            fields[col] = value
        elif isinstance(value, str) and col in ("txt", "text", "caption"):
            fields["txt" if col != "txt" else col] = value.encode()
        else:
            rest[col] = value
    if rest:
        fields["json"] = json.dumps(rest, default=str, sort_keys=True).encode()
    if not fields:
        raise QuarantineError(f"{where}: row has no usable columns")
    return fields


def read_tar(url: str, so: dict[str, Any]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The samples of a WebDataset tar (plain or gzip), streamed: memory holds one member,
    never the whole tar. A tar damaged part-way yields the samples before the damage, then
    raises QuarantineError (members are named by position: names are input)."""
    from ..errors import IntegrityError
    from ..shards.tar import iter_file_members

    current: str | None = None
    fields: dict[str, bytes] = {}
    with fsspec.open(url, "rb", **so) as raw:
        f: Any = io.BufferedReader(raw, 1 << 20) if not isinstance(raw, io.BufferedIOBase) else raw
        if url.endswith((".gz", ".tgz")):
            f = gzip.GzipFile(fileobj=f)
        try:
            for name, data in iter_file_members(f, where="input tar"):
                split = _ext_split(name)
                if split is None:
                    continue
                stem, ext = split
                if stem != current and fields:
                    yield current or "", fields
                    fields = {}
                current = stem
                fields[ext] = data
        except IntegrityError as e:
            raise QuarantineError(f"not a readable tar file: {str(e).removeprefix('input tar ')}") from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise QuarantineError(f"not a readable tar file ({e.__class__.__name__})") from None
    if fields:
        yield current or "", fields


def unit_ref(unit: Unit, secret: bytes) -> str:
    """A unit's name for reports: a keyed hash (never the raw URL or file name)."""
    return "in-" + hashlib.blake2b(unit.identity.encode(), key=secret[:64], digest_size=10).hexdigest()
