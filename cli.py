"""The ``exashard`` command: a thin layer over the Python API.

Exit codes: 0 success; 1 the command ran and found a problem (``verify`` found a bad
shard); 2 bad input (arguments, URLs, missing datasets, malformed files); 3 the command
failed for another reason (storage outage, a bug); 4 another run holds the dataset's
lock. Every error is one line on stderr, no traceback unless ``--debug``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .errors import ExashardError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3


class _Group(click.Group):
    """Every error is one line on stderr: bad input (``ExashardError``, usage errors) exits 2;
    anything unexpected exits 3. ``--debug`` shows the traceback instead."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExashardError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"exashard: error: {_one_line(str(e))}", err=True)
            ctx.exit(EXIT_USAGE)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"exashard: error: {e.__class__.__name__}: {_one_line(str(e))} (exashard --debug ... shows the traceback)", err=True)
            ctx.exit(EXIT_FAILED)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:  # click would print usage, a blank line and the error: keep one line
            path = e.ctx.command_path if e.ctx is not None else "exashard"
            click.echo(f"{path}: error: {_one_line(e.format_message())} (see '{path} --help')", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as e:
            click.echo(f"exashard: error: {_one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("exashard: aborted", err=True)
            sys.exit(EXIT_PROBLEM)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _storage_options(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON ({e.msg})", param_hint="--storage-options") from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--storage-options")
    return value


storage_opt = click.option(
    "--storage-options", "storage_options", metavar="JSON", default=None,
    help="fsspec storage options as a JSON object (e.g. S3 endpoint and credentials).",
)
def keyring_opts(f: Any) -> Any:
    f = click.option("--kms", "kms", metavar="URI", default=None, help="AWS KMS key: kms://<key-id>?region=..[&endpoint=..].")(f)
    return click.option(
        "--keyring", "keyring", metavar="FILE", default=None,
        help="Local keyring file (default: $EXASHARD_KEYRING or ~/.config/exashard/keyring.json).",
    )(f)


def _keyring(keyring: str | None, kms: str | None) -> str | None:
    if keyring and kms:
        raise click.UsageError("give --keyring or --kms, not both")
    if kms is not None and not kms.startswith("kms://"):
        raise click.BadParameter(f"{kms!r} is not a kms:// URI (kms://<key-id>?region=...)", param_hint="--kms")
    return kms or keyring


version_opt = click.option("--version", "version", type=click.IntRange(min=0), default=None, help="Manifest version (default: latest).")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="exashard", prog_name="exashard")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """exashard: private, encrypted WebDataset shards for training at scale."""
    ctx.ensure_object(dict)["debug"] = debug


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000**2, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30}


def parse_size(text: str) -> int:
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise click.BadParameter(f"{text!r} is not a size (e.g. 256MiB, 1G, 500MB)", param_hint="--shard-size")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value < 1 << 20:
        raise click.BadParameter(f"{text!r} is below the 1 MiB minimum shard size", param_hint="--shard-size")
    return value


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", "out", required=True, metavar="DST", help="Dataset URL to write (folder or object-store prefix).")
@click.option("--policy", "policy", metavar="FILE", default=None, help="Privacy policy (TOML); default: the built-in safe policy.")
@keyring_opts
@click.option("--no-encrypt", "no_encrypt", is_flag=True, help="Write unencrypted shards (explicit opt-out).")
@click.option("--shard-size", "shard_size", default="256MiB", show_default=True, help="Target shard size.")
@click.option("--workers", "workers", type=click.IntRange(min=1), default=None, help="LocalCluster worker processes (default: CPUs).")
@click.option("--scheduler", "scheduler", metavar="ADDR", default=None, help="Use an existing Dask cluster (tcp://host:8786).")
@click.option("--report", "report_path", metavar="FILE", default=None, help="Write the run report as JSON.")
@click.option("--strict", is_flag=True, help="Exit 1 if any input was quarantined.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
@storage_opt
def ingest(
    sources: tuple[str, ...], out: str, policy: str | None, keyring: str | None, kms: str | None, no_encrypt: bool,
    shard_size: str, workers: int | None, scheduler: str | None, report_path: str | None, strict: bool,
    progress: bool | None, storage_options: str | None,
) -> None:
    """Ingest raw media from SOURCES (folders, globs, tables, tars; any fsspec URL) into DST.

    Exit codes: 0 done; 1 done but inputs were quarantined and --strict was given;
    2 bad arguments, policy or URLs (nothing was written); 3 the run failed.
    """
    from .ingest.run import ingest as do_ingest

    if workers and scheduler:
        raise click.UsageError("give --workers or --scheduler, not both")
    size = parse_size(shard_size)
    so = _storage_options(storage_options)
    report = do_ingest(
        list(sources), out, policy=policy, keyring=_keyring(keyring, kms), encrypt=not no_encrypt, scheduler=scheduler,
        workers=workers, shard_size=size, storage_options=so, source_options=so, strict=strict, progress=progress,
    )
    doc = report.to_dict()
    if report_path:
        with open(report_path, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
    q = len(report.quarantined)
    click.echo(
        f"ingested {report.samples} samples from {report.inputs} inputs into {report.shards} shards "
        f"({report.bytes} bytes, {'encrypted' if report.encrypted else 'NOT encrypted'}) at {report.dataset}; "
        f"{q} quarantined, {report.excluded} excluded by the forget list; {report.seconds:.1f}s"
    )
    click.echo(f"policy: {report.policy['source']}")
    for item in report.quarantined[:10]:
        click.echo(f"  quarantined {item.input}: {item.reason}", err=True)
    if report.exit_code:
        sys.exit(report.exit_code)


@main.command()
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print the full summary as JSON.")
@storage_opt
@version_opt
def inspect(dataset: str, as_json: bool, storage_options: str | None, version: int | None) -> None:
    """Summarize DATASET: versions, shards, samples, bytes."""
    from .shards import inspect as do_inspect

    info = do_inspect(dataset, storage_options=_storage_options(storage_options), version=version)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    click.echo(f"dataset   {info['dataset']}")
    click.echo(f"id        {info['dataset_id']}")
    click.echo(f"version   {info['version']} ({info['versions']} versions on disk), updated {info['updated']}")
    click.echo(f"shards    {info['shards']}")
    click.echo(f"samples   {info['samples']}")
    click.echo(f"bytes     {info['bytes']} stored, {info['tar_bytes']} as tar")


@main.command()
@click.argument("dataset")
@keyring_opts
@storage_opt
@version_opt
def verify(
    dataset: str, keyring: str | None, kms: str | None, storage_options: str | None, version: int | None
) -> None:
    """Check every shard of DATASET: checksums, counts, every frame decodes."""
    from .shards import verify as do_verify

    report = do_verify(
        dataset, keyring=_keyring(keyring, kms), storage_options=_storage_options(storage_options), version=version
    )
    for shard_id, problem in report.bad.items():
        click.echo(f"BAD {shard_id}: {problem}", err=True)
    status = "ok" if report.ok else f"{len(report.bad)} bad shard(s)"
    click.echo(f"verified {report.shards} shards, {report.samples} samples at version {report.version}: {status}")
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


def _show(value: Any, width: int = 100) -> str:
    raw = bytes(value)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(raw)} bytes binary>"
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        return f"<{len(raw)} bytes binary>"
    text = text.replace("\n", "\\n")
    return repr(text if len(text) <= width else text[:width] + "...")


@main.command()
@click.argument("dataset")
@click.option("-n", "n", type=click.IntRange(min=0), default=5, show_default=True, help="Number of samples.")
@keyring_opts
@storage_opt
@version_opt
def head(
    dataset: str, n: int, keyring: str | None, kms: str | None, storage_options: str | None, version: int | None
) -> None:
    """Print the first N samples of DATASET readably (decrypted in memory)."""
    from .shards import head as do_head

    so = _storage_options(storage_options)
    for s in do_head(dataset, n, keyring=_keyring(keyring, kms), storage_options=so, version=version):
        click.echo(f"{s['__key__']}")
        for ext, value in s.items():
            if ext != "__key__":
                click.echo(f"  {ext:<10} {len(value):>10} B  {_show(value)}")


@main.command()
@click.option("--policy", "policy", metavar="FILE", default=None, help="Apply this policy file's action for --field.")
@click.option("--field", "field", metavar="EXT", default="txt", show_default=True, help="Which field of the policy to apply.")
def redact(policy: str | None, field: str) -> None:
    """Redact stdin to stdout (default detectors), or apply a policy's action for one field."""
    data = sys.stdin.buffer.read()
    if policy is None:
        from .privacy.redact import Redactor

        sys.stdout.write(Redactor().redact(data.decode("utf-8", "replace")))
        return
    import os

    from .privacy.policy import load_policy
    from .privacy.pseudonym import Pseudonymizer
    from .privacy.stage import PrivacyStage
    from .record import Sample

    pol = load_policy(policy)
    # pseudonyms here are for trying a policy by hand: a throwaway key, never a dataset's
    stage = PrivacyStage(pol, pseudonyms=Pseudonymizer(os.urandom(32), "try"))
    out = stage.apply(Sample("stdin", {field: data}, source="stdin"))
    if out is None or field not in out.fields:
        click.echo(f"exashard: field {field!r} is dropped by {policy}", err=True)
        return
    sys.stdout.buffer.write(out.fields[field])
    stats = {k: v for k, v in out.stats.items() if v}
    click.echo(f"exashard: {json.dumps(stats, sort_keys=True)}", err=True)


@main.command()
@click.argument("dataset")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=None, help="Read for S seconds (default: one epoch).")
@click.option("--zero-copy", is_flag=True, help="Hand out memoryviews instead of bytes.")
@keyring_opts
@storage_opt
def bench(dataset: str, seconds: float | None, zero_copy: bool, keyring: str | None, kms: str | None,
          storage_options: str | None) -> None:
    """Loader throughput on DATASET: samples/s, MB/s, and the ratio to raw reads of the same bytes."""
    from .shards.benchcore import bench_read

    r = bench_read(dataset, seconds=seconds, keyring=_keyring(keyring, kms), zero_copy=zero_copy,
                   storage_options=_storage_options(storage_options))
    click.echo(f"read {r['samples']} samples in {r['seconds']:.2f}s: {r['samples_per_s']:.0f} samples/s, "
               f"{r['MB_per_s']:.1f} MB/s of sample data")
    if r["efficiency"] is not None:
        click.echo(f"stored bytes: {r['stored_MB_per_s']:.1f} MB/s decrypted+decoded vs {r['raw_MB_per_s']:.1f} MB/s "
                   f"raw from the same storage ({r['shards_read']} shards): efficiency {r['efficiency']:.2f}")
    else:
        click.echo("no shard was read to its end: run longer for the raw-read comparison")


@main.group()
def keys() -> None:
    """Keyrings and data keys: new, rotate, shred, export."""


@keys.command("new")
@click.option("--keyring", "keyring", metavar="FILE", default=None, help="Where to create it (default: the default keyring path).")
def keys_new(keyring: str | None) -> None:
    """Create a local keyring file (mode 0600); refuses to overwrite one."""
    from .privacy.keys import LocalKeyring, default_keyring_path

    kr = LocalKeyring.create(keyring or default_keyring_path())
    click.echo(f"created keyring {kr.path} (id {kr.id}); back it up with 'exashard keys export'")


@keys.command("rotate")
@click.argument("dataset")
@keyring_opts
@storage_opt
def keys_rotate(dataset: str, keyring: str | None, kms: str | None, storage_options: str | None) -> None:
    """Re-wrap every data key of DATASET under a new KEK (shard files untouched)."""
    from .privacy.keyops import rotate

    r = rotate(dataset, keyring=_keyring(keyring, kms), storage_options=_storage_options(storage_options))
    click.echo(f"rotated {r.dataset}: {r.rewrapped} data keys re-wrapped under KEK {r.kek}")


@keys.command("shred")
@click.argument("dataset")
@click.option("--shard", "shards", multiple=True, required=True, metavar="ID", help="Shard id to shred (repeatable).")
@keyring_opts
@storage_opt
def keys_shred(dataset: str, shards: tuple[str, ...], keyring: str | None, kms: str | None, storage_options: str | None) -> None:
    """Make shards of DATASET unreadable for good (delete keys, re-wrap the rest, retire old KEKs)."""
    from .privacy.keyops import shred

    r = shred(dataset, list(shards), keyring=_keyring(keyring, kms), storage_options=_storage_options(storage_options))
    click.echo(
        f"shredded {', '.join(r.shredded)} in {r.dataset}; {r.rewrapped} keys re-wrapped under KEK {r.kek}; "
        f"retired KEK(s) {', '.join(r.retired) or '-'}"
    )


@keys.command("export")
@click.option("--keyring", "keyring", metavar="FILE", default=None, help="Keyring to back up (default: the default keyring).")
@click.option("--out", "out", metavar="FILE", required=True, help="Backup file to create (mode 0600, never overwritten).")
def keys_export(keyring: str | None, out: str) -> None:
    """Write a backup copy of a local keyring. Keep it as safe as the keyring itself."""
    from .privacy.keys import LocalKeyring, resolve_keyring

    kr = resolve_keyring(keyring)
    if not isinstance(kr, LocalKeyring):
        raise click.UsageError("only local keyrings can be exported; KMS keys stay in KMS")
    click.echo(f"wrote backup of keyring {kr.id} to {kr.export(out)}; it opens every dataset this keyring opens: keep it as safe as the keyring, and destroy it after a shred")



@main.command()
@click.argument("config", metavar="CONFIG")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
def run(config: str, progress: bool | None, as_json: bool) -> None:
    """One scheduled, incremental, locked run of the pipeline file CONFIG.

    Processes only inputs the dataset does not hold yet, commits them, applies retention
    and writes a run record under DST/runs/. Exit codes: 0 done (also when nothing was
    new); 1 done but inputs were quarantined and the pipeline sets strict; 2 bad pipeline
    file or arguments (nothing was done); 3 the run failed (recorded; the next run
    resumes); 4 another run holds the dataset's lock (nothing was done).
    """
    from .errors import LockedError
    from .ingest.ops import EXIT_LOCKED, run_pipeline
    from .ingest.pipeline import load_pipeline

    p = load_pipeline(config)
    try:
        rec = run_pipeline(p, progress=sys.stderr.isatty() if progress is None else progress)
    except LockedError as e:
        click.echo(f"exashard: locked: {e}", err=True)
        sys.exit(EXIT_LOCKED)
    except ExashardError:
        raise
    except Exception as e:
        if click.get_current_context().find_root().obj.get("debug"):
            raise
        click.echo(f"exashard: run failed: {e.__class__.__name__}: {e} (recorded under runs/; rerun to resume)", err=True)
        sys.exit(3)
    if as_json:
        click.echo(json.dumps(rec.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        what = f"{rec.samples} samples from {rec.new_inputs} new inputs into {rec.shards} shards" if rec.new_inputs else "nothing new"
        click.echo(f"run {rec.run_id} of {rec.pipeline}: {what}; {rec.skipped_inputs} inputs already held; "
                   f"{rec.quarantined} quarantined; {rec.swept_files} orphaned files swept at {rec.dataset}")
    if rec.exit_code:
        sys.exit(rec.exit_code)


@main.command()
@click.argument("dataset", metavar="DST")
@click.option("--ids", "ids_file", required=True, metavar="FILE", help="Raw subject ids, one per line ('#' comments).")
@click.option("--field", "field_name", metavar="FIELD", default=None,
              help="Subject field (e.g. json.user_id); default: the one recorded at ingest.")
@keyring_opts
@storage_opt
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def forget(dataset: str, ids_file: str, field_name: str | None, keyring: str | None, kms: str | None,
           storage_options: str | None, as_json: bool) -> None:
    """Deletion request: remove every sample of the subjects in --ids from DST, for good.

    Rewrites the affected shards without them, shreds the old shards' keys, commits a
    new version, adds the subjects to the forget list every later ingest applies, and
    appends an audit record (no raw ids). Exit 4 if another run holds the lock.
    """
    from .errors import LockedError
    from .ingest.forget import forget as do_forget
    from .ingest.ops import EXIT_LOCKED

    try:
        rep = do_forget(dataset, ids_file, keyring=_keyring(keyring, kms), field_name=field_name,
                        storage_options=_storage_options(storage_options))
    except LockedError as e:
        click.echo(f"exashard: locked: {e}", err=True)
        sys.exit(EXIT_LOCKED)
    if as_json:
        click.echo(json.dumps(rep.to_dict(), indent=2, sort_keys=True))
        return
    click.echo(f"forget {rep.request}: {rep.matched} of {rep.ids} ids matched; {rep.samples_removed} samples removed "
               f"from {len(rep.shards_rewritten)} shards; {len(rep.shredded)} shard keys shredded; "
               f"version {rep.version if rep.version is not None else '(unchanged)'}; audit {rep.audit}")
    if rep.unmatched_lines:
        shown = ", ".join(map(str, rep.unmatched_lines[:20])) + (" ..." if len(rep.unmatched_lines) > 20 else "")
        click.echo(f"ids that matched nothing (lines of {ids_file}): {shown}; they are on the forget list all the same")


@main.command()
@click.argument("dataset", metavar="DST")
@click.option("--keep", "keep", type=click.IntRange(min=1), default=None, help="Manifest versions to keep (default: all).")
@click.option("--grace", "grace", default="1h", show_default=True, help="Only sweep unreferenced files older than this.")
@storage_opt
def vacuum(dataset: str, keep: int | None, grace: str, storage_options: str | None) -> None:
    """Retention: drop manifest versions older than the last --keep, and sweep unreferenced
    shard, key and subject files older than --grace. Exit 4 if another run holds the lock."""
    from .errors import LockedError
    from .ingest.ops import EXIT_LOCKED
    from .ingest.ops import vacuum as do_vacuum
    from .ingest.pipeline import parse_duration

    g = parse_duration(grace)
    if g is None:
        raise click.BadParameter(f"{grace!r} is not a duration (e.g. 1h, 30m, 0)", param_hint="--grace")
    try:
        rep = do_vacuum(dataset, keep_versions=keep, grace=g, storage_options=_storage_options(storage_options))
    except LockedError as e:
        click.echo(f"exashard: locked: {e}", err=True)
        sys.exit(EXIT_LOCKED)
    click.echo(f"vacuum {rep.dataset}: removed {len(rep.versions_removed)} versions (now {rep.oldest_version}..{rep.latest_version}), "
               f"{rep.files_removed} files, {rep.bytes_freed} bytes")


if __name__ == "__main__":  # pragma: no cover
    main()
