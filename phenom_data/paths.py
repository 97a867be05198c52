"""Paths built from untrusted text: one place that decides what a file name may be and where a file may live.

Results files, datasets and CSVs carry names (a correction, a model, a dataset) and paths (an image's `path`, a
LoadData `PathName_*`) that end up in file system paths. Two rules, used by every package:

- `safe_component(text)`: a single path component made from text, never a separator, never `.` or `..`
  (`"x/../../etc/name"` -> `"x_.._.._etc_name"`), so a name can only ever address a file inside its folder.
- `resolve_inside(root, path)`: `root / path` resolved (symlinks followed), refused with `UnsafePathError` unless it
  stays inside `root`; an absolute `path` is refused unless the caller allows it (a file a dataset names absolutely
  in its own table, for example).
"""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._+=-]")


class UnsafePathError(ValueError):
    """A path from data or user input would leave the folder it must stay in."""


def safe_component(text: object, *, what: str = "name") -> str:
    """`text` as one file name component: every character outside `[A-Za-z0-9._+=-]` (path separators included)
    becomes `_`; refused when empty, `.` or `..` (they address a folder, not a file inside it)."""
    component = _UNSAFE_CHARACTERS.sub("_", str(text))
    if component in ("", ".", ".."):
        raise UnsafePathError(f"{what} {text!r} cannot be used as a file name")
    return component


def resolve_inside(root: str | Path, path: str | Path, *, allow_absolute: bool = False, what: str = "path") -> Path:
    """`root / path`, resolved, checked to lie inside `root` (also resolved).

    A relative `path` may not climb out of `root` (`..`, or a symlink pointing elsewhere); an absolute `path` is
    refused unless `allow_absolute`, and then returned resolved as it is. Raises `UnsafePathError` naming both."""
    root = Path(root).resolve()
    path = Path(path)
    if path.is_absolute():
        if not allow_absolute:
            raise UnsafePathError(f"{what} {str(path)!r} is absolute; only paths inside {str(root)!r} are allowed")
        return path.resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise UnsafePathError(f"{what} {str(path)!r} leads outside {str(root)!r} (to {str(resolved)!r})")
    return resolved


__all__ = ["UnsafePathError", "resolve_inside", "safe_component"]
