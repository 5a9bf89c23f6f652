"""Pipeline files (TOML): what ``exashard run CONFIG`` ingests, where, and how often.

Validated up front; every error names the file, line and setting. Relative paths
(policy, keyring, local sources and output) are taken from the file's folder, so a
scheduler may start the run from any working directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..privacy.policy import _line_of, read_toml

DEFAULT_LEASE = 300.0
DEFAULT_GRACE = 3600.0

_TOP = {"name", "sources", "output", "policy", "keyring", "kms", "encrypt", "shard_size", "task_size", "schedule", "strict",
        "cluster", "storage", "source_storage", "retention", "lock"}
_TABLES = {"cluster": {"workers", "scheduler"}, "retention": {"keep_versions", "grace"}, "lock": {"lease"}}
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1 << 10, "k": 1 << 10, "mb": 1000**2, "mib": 1 << 20, "m": 1 << 20,
               "gb": 1000**3, "gib": 1 << 30, "g": 1 << 30}
_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class Pipeline:
    path: str
    name: str
    sources: list[str]
    output: str
    policy: str | None = None
    keyring: str | None = None
    encrypt: bool = True
    shard_size: int = 256 << 20
    task_size: int = 128 << 20  # input bytes per Dask task (one commit each)
    schedule: str | None = None
    strict: bool = False
    workers: int | None = None
    scheduler: str | None = None
    storage_options: dict[str, Any] | None = None
    source_options: dict[str, Any] | None = None
    keep_versions: int | None = None  # None: keep every version
    grace: float = DEFAULT_GRACE
    lease: float = DEFAULT_LEASE
    extra: dict[str, Any] = field(default_factory=dict)


class _Ctx:
    def __init__(self, path: str, text: str) -> None:
        self.path, self.text = path, text

    def err(self, table: str | None, key: str, msg: str) -> ConfigError:
        line = _line_of(self.text, table, key)
        name = f"{table}.{key}" if table else key
        return ConfigError(f"{self.path}:{line}: {name}: {msg}" if line else f"{self.path}: {name}: {msg}")


def parse_duration(value: Any) -> float | None:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"2d"`` or a number of seconds; None if not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if m:
            return float(m.group(1)) * _DURATION.get(m.group(2) or "s", 1)
    return None


def parse_size(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    return None


_CRON_FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7)]
_NAMES = {3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
          4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]}
_MACROS = {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}


def check_cron(expr: str) -> str | None:
    """None if ``expr`` is a valid 5-field cron expression (or @macro), else what is wrong."""
    if expr.strip() in _MACROS:
        return None
    parts = expr.split()
    if len(parts) != 5:
        return f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
    for i, (part, (name, lo, hi)) in enumerate(zip(parts, _CRON_FIELDS)):
        for item in part.split(","):
            m = re.fullmatch(r"(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(\d+))?", item.lower())
            if not m:
                return f"{name} field {part!r} is not valid"
            if m.group(2) is not None and int(m.group(2)) == 0:
                return f"{name} field {part!r}: step 0"
            if m.group(1) == "*":
                continue
            for v in m.group(1).split("-"):
                n = _NAMES.get(i, []).index(v) + (1 if i == 3 else 0) if v in _NAMES.get(i, []) else (int(v) if v.isdigit() else None)
                if n is None or not lo <= n <= hi:
                    return f"{name} field {part!r}: {v!r} is outside {lo}-{hi}"
    return None


def _options(ctx: _Ctx, doc: dict[str, Any], key: str) -> dict[str, Any] | None:
    v = doc.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ctx.err(None, key, "must be a table of fsspec storage options")
    return v


def _local(base: str, url: str) -> str:
    """Relative local paths are taken from the pipeline file's folder."""
    if "://" in url or os.path.isabs(url) or url.startswith("~"):
        return os.path.expanduser(url)
    return os.path.normpath(os.path.join(base, url))


def load_pipeline(path: str) -> Pipeline:
    doc, text = read_toml(path, "pipeline file", ConfigError)
    ctx = _Ctx(path, text)
    for key in doc:
        if key not in _TOP:
            raise ctx.err(None, key, f"unknown setting (expected one of {', '.join(sorted(_TOP))})")
    for table, allowed in _TABLES.items():
        sub = doc.get(table, {})
        if not isinstance(sub, dict):
            raise ctx.err(None, table, "must be a table")
        for key in sub:
            if key not in allowed:
                raise ctx.err(table, key, f"unknown setting (expected one of {', '.join(sorted(allowed))})")
    base = os.path.dirname(os.path.abspath(path))
    sources = doc.get("sources")
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s.strip() for s in sources):
        raise ctx.err(None, "sources", "must be a non-empty list of URLs or paths")
    output = doc.get("output")
    if not isinstance(output, str) or not output.strip():
        raise ctx.err(None, "output", "must be the dataset URL or path")
    name = doc.get("name", os.path.splitext(os.path.basename(path))[0])
    if not isinstance(name, str) or not name:
        raise ctx.err(None, "name", "must be a non-empty string")
    p = Pipeline(path=os.path.abspath(path), name=name, sources=[_local(base, s) for s in sources], output=_local(base, output))
    for key in ("policy", "keyring", "kms", "schedule"):
        v = doc.get(key)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise ctx.err(None, key, "must be a non-empty string")
    if doc.get("keyring") and doc.get("kms"):
        raise ctx.err(None, "kms", "give keyring or kms, not both")
    if doc.get("policy"):
        p.policy = _local(base, doc["policy"])
        if not os.path.exists(p.policy):
            raise ctx.err(None, "policy", f"{p.policy} does not exist")
    if doc.get("keyring"):
        p.keyring = _local(base, doc["keyring"])
    if doc.get("kms"):
        if not doc["kms"].startswith("kms://"):
            raise ctx.err(None, "kms", "must be a kms:// URI")
        p.keyring = doc["kms"]
    for key in ("encrypt", "strict"):
        v = doc.get(key)
        if v is not None:
            if not isinstance(v, bool):
                raise ctx.err(None, key, "must be true or false")
            setattr(p, key, v)
    if "shard_size" in doc:
        size = parse_size(doc["shard_size"])
        if size is None or size < 1 << 20:
            raise ctx.err(None, "shard_size", f"{doc['shard_size']!r} is not a size of at least 1 MiB (e.g. \"256MiB\")")
        p.shard_size = size
    if "task_size" in doc:
        size = parse_size(doc["task_size"])
        if size is None:
            raise ctx.err(None, "task_size", f"{doc['task_size']!r} is not a size (e.g. \"128MiB\")")
        p.task_size = size
    if doc.get("schedule"):
        problem = check_cron(doc["schedule"])
        if problem:
            raise ctx.err(None, "schedule", problem)
        p.schedule = doc["schedule"]
    cluster = doc.get("cluster", {})
    if "workers" in cluster and "scheduler" in cluster:
        raise ctx.err("cluster", "scheduler", "give workers or scheduler, not both")
    if "workers" in cluster:
        w = cluster["workers"]
        if not isinstance(w, int) or isinstance(w, bool) or w < 1:
            raise ctx.err("cluster", "workers", "must be an integer >= 1")
        p.workers = w
    if "scheduler" in cluster:
        s = cluster["scheduler"]
        if not isinstance(s, str) or not re.match(r"^(tcp|tls|inproc|ucx)://", s):
            raise ctx.err("cluster", "scheduler", "must be a Dask scheduler address like tcp://host:8786")
        p.scheduler = s
    p.storage_options = _options(ctx, doc, "storage")
    p.source_options = _options(ctx, doc, "source_storage") or p.storage_options
    retention = doc.get("retention", {})
    if "keep_versions" in retention:
        k = retention["keep_versions"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ctx.err("retention", "keep_versions", "must be an integer >= 1")
        p.keep_versions = k
    if "grace" in retention:
        g = parse_duration(retention["grace"])
        if g is None:
            raise ctx.err("retention", "grace", f"{retention['grace']!r} is not a duration (e.g. \"1h\", \"30m\", 0)")
        p.grace = g
    lock = doc.get("lock", {})
    if "lease" in lock:
        lease = parse_duration(lock["lease"])
        if lease is None or lease < 1:
            raise ctx.err("lock", "lease", f"{lock['lease']!r} is not a duration of at least 1s (e.g. \"5m\")")
        p.lease = lease
    return p
