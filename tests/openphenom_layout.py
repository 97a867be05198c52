"""Build OpenPhenom repositories on disk the way the Hub serves them: a directory in the repo layout, or a Hugging Face
cache (`models--org--name/{blobs,snapshots/<commit>,refs/<branch>}`) that `HF_HUB_OFFLINE=1` loading reads."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from conftest import FIXTURES

TINY = FIXTURES / "openphenom_tiny"
WEIGHT_FILES = ("model.safetensors", "weights_flat.safetensors")  # the released torch zip, and real safetensors


def hub_directory(root: Path, weight_file: str = "model.safetensors", license_text: str | None = None) -> Path:
    """A local copy of the tiny fixture repo: `config.json` + `model.safetensors` (from `weight_file`)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TINY / "config.json", root / "config.json")
    shutil.copyfile(TINY / weight_file, root / "model.safetensors")
    if license_text is not None:
        (root / "LICENSE").write_text(license_text)
    return root


def write_hub_config(root: Path, config: dict) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config, indent=2))


def save_released_format(state_dict: dict, path: Path) -> None:
    """The released weight format: `torch.save({"state_dict": ...})` under the name `model.safetensors`."""
    with open(path, "wb") as handle:
        torch.save({"state_dict": state_dict}, handle)


def hub_cache(cache_dir: Path, repo_id: str, files: dict[str, Path], commit: str, branch: str | None = "main") -> Path:
    """Add one snapshot of `repo_id` to a Hugging Face cache (blobs named by content hash, snapshot symlinks, and
    `refs/<branch>` pointing to `commit`). Returns the snapshot directory."""
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        data = Path(source).read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.symlink_to(os.path.relpath(blob, link.parent))
    if branch is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / branch).write_text(commit)
    return snapshot
