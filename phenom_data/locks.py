"""One run per output: an exclusive lock on an output file or folder, with the owner's pid and host.

A run locks `<parent>/.<name>.lock` beside its output (`emb.parquet` -> `.emb.parquet.lock`, `runs/tiny` ->
`runs/.tiny.lock`; beside, not inside, so that an output folder may be replaced by a rename) with a POSIX record lock
(`fcntl.lockf`) and writes who holds it (pid, host, start time, command) into the file. A second run on the same
output is refused at once with `OutputLockedError` naming the first. The kernel drops the lock when its process ends,
kill -9 included, so a lock file whose lock can be taken was left by a run that died: it is taken over, with a warning
naming that run. Record locks, unlike `flock`, are not inherited by forked children (render or DataLoader workers
that outlive a killed run do not keep its output locked), and they work across hosts on NFS. Within one process a
second lock on the same output is refused too (a registry: record locks do not conflict within a process).

    with output_lock(out):            # single process
        ...
    lock = lock_on_main_process(state, out)   # accelerate: the main process holds it, every process learns the outcome
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no record locks; the lock file's pid is checked instead (see `_try_lock`)
    fcntl = None

logger = logging.getLogger(__name__)
_HELD: set[str] = set()  # lock files this process holds


class OutputLockedError(OSError):
    """The output is in use by another live run."""


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of output `target`: `.<name>.lock` in the same folder."""
    target = Path(os.path.abspath(target))
    return target.parent / f".{target.name}.lock"


def _describe(holder: dict | None) -> str:
    if not holder:
        return "a run that left no details"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (f"pid {holder.get('pid')} on host {holder.get('host')}, started {started}: "
            f"{holder.get('command', '?')}")


def _read_holder(fd: int) -> dict | None:
    try:
        text = os.pread(fd, 65536, 0).decode("utf-8", errors="replace")
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting; False when another process holds it."""
    if fcntl is not None:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise
        return True
    holder = _read_holder(fd)  # no fcntl: the recorded holder counts while its process lives on this host
    return not (holder and holder.get("host") == socket.gethostname() and _pid_alive(holder.get("pid")))


class OutputLock:
    """An exclusive lock on output `target` (file or folder); `acquire()` raises `OutputLockedError` at once when a
    live run holds it. Use as a context manager, or `acquire()` / `release()`."""

    def __init__(self, target: str | os.PathLike, what: str = "output"):
        self.target = Path(target)
        self.what = what
        self.path = lock_path(target)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OutputLock:
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if str(self.path) in _HELD:  # closing a second descriptor would drop this process's record lock: no open
            raise OutputLockedError(f"{self.what} {self.target} is in use by this process (pid {os.getpid()}); "
                                    f"choose another {self.what} (lock file {self.path})")
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputLockedError(
                    f"{self.what} {self.target} is in use by another run ({_describe(holder)}); wait for it to end "
                    f"or choose another {self.what} (lock file {self.path})")
            try:  # the previous holder may have removed the file between our open and our lock: lock the new one
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(os.fstat(fd), current):
                break
            os.close(fd)
        stale = _read_holder(fd)
        if stale:
            logger.warning(f"taking over the lock on {self.what} {self.target}: the run that held it has ended "
                           f"without releasing it ({_describe(stale)})")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                  "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
        self._fd = fd
        _HELD.add(str(self.path))
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked, so no one locks a file that is about to vanish
        finally:
            os.close(self._fd)
            self._fd = None
            _HELD.discard(str(self.path))

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


@contextmanager
def output_lock(target: str | os.PathLike, what: str = "output") -> Iterator[OutputLock]:
    """Hold the lock on `target` for the `with` block (see `OutputLock`)."""
    with OutputLock(target, what) as lock:
        yield lock


def lock_on_main_process(state, target: str | os.PathLike, what: str = "output") -> OutputLock | None:
    """Collective over accelerate's processes (`state`: an `Accelerator` or `PartialState`): the main process takes
    the lock on `target` and returns it (release it at the end); the others return None. When the lock is held by
    another run, every process raises the same `OutputLockedError`, so none is left waiting in a collective."""
    from phenom_data.errors import on_main_process

    holder = []
    try:
        on_main_process(state, lambda: holder.append(OutputLock(target, what).acquire()))
    except OSError as error:
        raise OutputLockedError(str(error)) from None
    return holder[0] if holder else None


__all__ = ["OutputLock", "OutputLockedError", "lock_on_main_process", "lock_path", "output_lock"]
