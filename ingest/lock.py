"""The dataset's run lock: one scheduled run, forget or vacuum at a time, by lease.

``locks/run.json`` is created exclusively (``link()`` locally, a conditional PUT on S3),
so of two starting runs exactly one gets it. The holder renews the lease in a
background thread; a crashed holder's lock is taken over once its lease has expired, or
at once when it ran on this machine and its process is gone. A takeover is itself
guarded by an exclusive create naming the stale lock, so two runs cannot both take it.
The lock is advisory: it orders exashard's own runs, it does not fence storage.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import LockedError, VersionConflict
from ..shards import storage
from ..shards.writer import utc_now

LOCK = "locks/run.json"
DEFAULT_LEASE = 300.0


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``with RunLock(fs, root, "run"):`` holds the lock, renewing it, until the block ends."""

    def __init__(
        self, fs: Any, root: str, operation: str, *, lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lease <= 0:
            raise ValueError("lease must be positive")
        self.fs, self.root, self.operation, self.lease, self.clock = fs, root, operation, lease, clock
        self.path = storage.join(root, LOCK)
        self.where = storage.display(fs, self.path)
        self.token = uuid.uuid4().hex
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._markers: list[str] = []

    def _doc(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "format": "exashard-lock", "token": self.token, "operation": self.operation,
            "host": socket.gethostname(), "boot": _boot_id(), "pid": os.getpid(),
            "acquired": utc_now(), "renewed": now, "expires": now + self.lease, "lease": self.lease,
        }

    def read(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except ValueError:
            return {"token": "unreadable", "expires": 0}  # a torn or foreign file: treat as stale
        return doc if isinstance(doc, dict) else {"token": "unreadable", "expires": 0}

    def _stale(self, doc: dict[str, Any]) -> bool:
        expires = doc.get("expires")
        if not isinstance(expires, (int, float)) or expires < self.clock():
            return True
        same_machine = doc.get("host") == socket.gethostname() and doc.get("boot") == _boot_id() and _boot_id()
        pid = doc.get("pid")
        return bool(same_machine and isinstance(pid, int) and not _alive(pid))

    def acquire(self) -> None:
        data = json.dumps(self._doc()).encode()
        try:
            storage.exclusive_write(self.fs, self.path, data)
        except VersionConflict:
            held = self.read()
            if held is None:  # released between our create and read: try once more
                return self.acquire()
            if not self._stale(held):
                raise LockedError(
                    f"{storage.display(self.fs, self.root)} is locked by a {held.get('operation', '?')} run "
                    f"(host {held.get('host')}, pid {held.get('pid')}, since {held.get('acquired')}, lease until "
                    f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(held.get('expires', 0)))}); nothing was done"
                ) from None
            marker = storage.join(self.root, f"locks/takeover-{held.get('token')}.json")
            try:
                storage.exclusive_write(self.fs, marker, data)
            except VersionConflict:
                raise LockedError(f"{storage.display(self.fs, self.root)}: another run is taking over a stale lock; nothing was done") from None
            self._markers.append(marker)
            storage.atomic_write(self.fs, self.path, data)
        self._thread = threading.Thread(target=self._renew, name="exashard-lock", daemon=True)
        self._thread.start()
        return None

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                held = self.read()
                if held is None or held.get("token") != self.token:
                    self.lost = True
                    return
                doc = dict(held, renewed=self.clock(), expires=self.clock() + self.lease)
                storage.atomic_write(self.fs, self.path, json.dumps(doc).encode())
            except Exception:  # storage hiccup: try again next period; check() decides
                continue

    def check(self) -> None:
        """Raise ``LockedError`` if the lock was lost (e.g. the lease lapsed and another run took it)."""
        if self.lost:
            raise LockedError(f"{self.where}: this run lost its lock (lease expired); it stops before committing more")
        held = self.read()
        if held is None or held.get("token") != self.token:
            self.lost = True
            raise LockedError(f"{self.where}: this run lost its lock to another run; it stops before committing more")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        held = self.read()
        if held is not None and held.get("token") == self.token:
            try:
                self.fs.rm_file(self.path)
            except FileNotFoundError:
                pass
        for m in self._markers:
            try:
                self.fs.rm_file(m)
            except FileNotFoundError:
                pass

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()
