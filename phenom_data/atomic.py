"""Atomic file writes for every package: a reader (or a resumed run) never sees half a file.

Each write goes to a temporary sibling (`.<name>.<pid>-<random>.tmp`: the same folder, so the rename stays on one
file system) and is moved into place with `os.replace`; if the write fails the temporary file is removed and the old
file, if any, is left untouched.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` for a writer that needs a file name (parquet, savefig, CSV writers);
    on a clean exit it replaces `path`, on an exception it is deleted. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its files are private (0600), and the result should get the usual umask permissions.
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns `path`."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 `text` to `path` atomically; returns `path`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, payload, indent: int = 2) -> Path:
    """Write `payload` as JSON (plus a final newline) to `path` atomically; returns `path`."""
    return atomic_write_text(path, json.dumps(payload, indent=indent) + "\n")


__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
