"""Runs identified by content, not by path: fingerprints of a model, a data source and a file, and what differs.

A resumable run (`phenom embed` parts, a `phenom pretrain` run folder) records these and continues only when they
still hold, so that swapping the weights behind `--model` or the files behind `data.path` is refused instead of
mixed in, while `data/` and `./data` (or a moved folder) stay the same source.

- `model_fingerprint(name_or_path)`: a local model folder -> SHA-256 of its model files (weights, config and
  processor JSON; README and license files do not count); a Hub id -> the id and revision.
- `data_fingerprint(source)`: a file (a CSV naming images) -> its SHA-256; a folder -> the SHA-256 of the list of its
  files with their sizes (relative names; hidden files and the given `exclude` paths left out), so that a
  multi-gigabyte dataset is fingerprinted in the time it takes to list it; a Hub id -> the id and revision.
- `differences(recorded, current)`: the dotted keys whose values differ, each with both values.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MODEL_FILE_SUFFIXES = (".safetensors", ".json", ".bin", ".pt", ".pth", ".npz")
_CHUNK = 1 << 22


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def json_sha256(value) -> str:
    """SHA-256 of the canonical JSON of `value` (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def model_fingerprint(name_or_path: str | os.PathLike, revision: str | None = None) -> dict:
    """`{"sha256": ...}` over the model files of a local folder (name and bytes of every top-level file ending in
    `MODEL_FILE_SUFFIXES`, sorted), or `{"hub": id, "revision": ...}` for a Hub repo id."""
    folder = Path(name_or_path)
    if not folder.is_dir():
        return {"hub": str(name_or_path), "revision": revision or "main"}
    digest = hashlib.sha256()
    files = sorted(path for path in folder.iterdir()
                   if path.is_file() and path.suffix in MODEL_FILE_SUFFIXES and not path.name.startswith("."))
    for path in files:
        digest.update(path.name.encode("utf-8") + b"\0" + file_sha256(path).encode("ascii"))
    return {"sha256": digest.hexdigest(), "files": len(files)}


def data_fingerprint(source: str | os.PathLike | None, revision: str | None = None,
                     exclude: tuple[str | os.PathLike, ...] = ()) -> dict | None:
    """What identifies a data source (module docstring); None for None."""
    if source is None:
        return None
    path = Path(source)
    if path.is_file():
        return {"file_sha256": file_sha256(path)}
    if not path.is_dir():
        return {"hub": str(source), "revision": revision or "main"}
    root = path.resolve()
    excluded = {Path(item).resolve() for item in exclude}
    listing = []
    for directory, folders, files in os.walk(root):
        here = Path(directory)
        folders[:] = sorted(name for name in folders if not name.startswith(".") and here / name not in excluded)
        for name in sorted(files):
            file = here / name
            if name.startswith(".") or file in excluded:
                continue
            listing.append((file.relative_to(root).as_posix(), file.stat().st_size))
    return {"folder_sha256": json_sha256(listing), "files": len(listing)}


def optional_file_fingerprint(path: str | os.PathLike | None) -> str | None:
    """SHA-256 of a side file (metadata CSV, well list) when one is given; a missing file raises FileNotFoundError."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return file_sha256(path)


def differences(recorded, current, prefix: str = "") -> list[str]:
    """`["key: was X, now Y", ...]` for every dotted key whose value differs between two nested dicts."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(recorded) | set(current), key=str):
            found += differences(recorded.get(key), current.get(key), f"{prefix}{key}.")
        return found
    if recorded == current:
        return []
    return [f"{prefix.rstrip('.') or 'value'}: was {_short(recorded)}, now {_short(current)}"]


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["data_fingerprint", "differences", "file_sha256", "json_sha256", "model_fingerprint",
           "optional_file_fingerprint"]
