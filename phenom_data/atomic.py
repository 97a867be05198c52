"""Atomic file writes for every package: a reader (or a resumed run) never sees half a file.

Each write goes to a temporary sibling (`.<name>.<pid>-<random>.tmp`: the same folder, so the rename stays on one
file system) and is moved into place with `os.replace`; if the write fails the temporary file is removed and the old
file, if any, is left untouched. A folder (a `save_pretrained` directory, a checkpoint) is assembled under a temporary
sibling and moved into place the same way (`atomic_directory`, or `replace_directory` where every process of a run
writes into one agreed temporary folder).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _temporary_sibling(path: Path) -> Path:
    # Not mkstemp: its files are private (0600), and the result should get the usual umask permissions.
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` for a writer that needs a file name (parquet, savefig, CSV writers);
    on a clean exit it replaces `path`, on an exception it is deleted. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path)
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


def replace_directory(staged: str | Path, path: str | Path) -> Path:
    """Put the complete folder `staged` (a sibling of `path`) in the place of `path`, removing the folder there;
    returns `path`. POSIX cannot rename a folder onto a non-empty one, so the old folder is removed first: a kill
    between the two steps leaves `staged` complete and `path` absent, never a half-written `path` (resumable runs
    look for `staged` there)."""
    staged, path = Path(staged), Path(path)
    if not staged.is_dir():
        raise FileNotFoundError(f"cannot put {staged} in place of {path}: {staged} is not a folder")
    if path.exists():
        shutil.rmtree(path)
    os.replace(staged, path)
    return path


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a new, empty temporary folder beside `path` to write a whole folder into; on a clean exit it replaces
    `path` (`replace_directory`), on an exception it is deleted and `path` is left as it was. Creates the parent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(path)
    temporary.mkdir()
    try:
        yield temporary
        replace_directory(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


__all__ = ["atomic_directory", "atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
           "replace_directory"]
