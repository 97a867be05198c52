"""Atomic step checkpoints with `accelerator.save_state` (STYLE rule 12), resumed without running pickled code.

A checkpoint is written into `checkpoints/.tmp-step_<N>/`, completed with `trainer_state.json`, then renamed to
`checkpoints/step_<N>/` (`phenom_data.atomic.replace_directory`). A run killed mid-write leaves only a `.tmp-*`
folder, which is never taken as `latest` and is removed by the next save. The last `keep` checkpoints are kept.

Phenom's own state (step, data position, the schedule, the run's fingerprint) is JSON in `trainer_state.json`; no
object is registered with accelerate's `register_for_checkpointing`, whose `custom_checkpoint_<i>.pkl` accelerate
loads with `weights_only=False` (it runs any code the file holds). Before `load_state`, `check_checkpoint_pickles`
opens every pickled file of the checkpoint with `torch.load(weights_only=True)` (tensors, numbers, containers, numpy
arrays, and the DeepSpeed types its ZeRO checkpoints hold), so a file that would run code when loaded is refused
with its name, never loaded by accelerate or DeepSpeed (which loads its own files with `weights_only=False`).
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
from pathlib import Path

from phenom_data.atomic import replace_directory

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")  # a torch zip archive, or a raw pickle (protocol 2 and later)
# Plain data classes a DeepSpeed ZeRO checkpoint pickles besides tensors (fields only: building them runs no code).
DEEPSPEED_SAFE_GLOBALS = ("deepspeed.runtime.zero.config.ZeroStageEnum",
                          "deepspeed.runtime.fp16.loss_scaler.LossScaler",
                          "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler")


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def resolve_resume(output_dir: Path, resume: str | None) -> Path | None:
    """`None` -> no resume; `latest` -> newest complete checkpoint (None if there is none); else a path."""
    if resume is None:
        return None
    if resume == "latest":
        found = checkpoint_dirs(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {STATE_FILE}); pass --resume latest or a "
                                f"checkpoints/step_<N> folder")
    return path


def save_checkpoint(accelerator, output_dir: Path, step: int, trainer_state: dict, keep: int) -> Path:
    """Collective: every process calls it. Returns the final checkpoint folder."""
    root = Path(output_dir) / "checkpoints"
    final = root / f"step_{step}"
    temporary = root / f".tmp-step_{step}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-step_*"):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state_path = temporary / STATE_FILE
        state_path.write_text(json.dumps({**trainer_state, "step": step}, indent=2))
        replace_directory(temporary, final)
        for old in checkpoint_dirs(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_trainer_state(checkpoint: Path) -> dict:
    return json.loads((Path(checkpoint) / STATE_FILE).read_text())


def _safe_globals() -> list:
    from accelerate.utils.other import TORCH_SAFE_GLOBALS  # numpy arrays (accelerate's RNG states)

    found = list(TORCH_SAFE_GLOBALS)
    for name in DEEPSPEED_SAFE_GLOBALS:
        module, _, attribute = name.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), attribute))
        except (ImportError, AttributeError):  # no deepspeed: its checkpoints cannot be loaded anyway
            continue
    return found


def check_checkpoint_pickles(checkpoint: Path) -> None:
    """Open every pickled file under `checkpoint` with `torch.load(weights_only=True)` (memory-mapped); raise
    `ValueError` naming the first file that holds anything else (module docstring)."""
    import torch

    files = sorted(path for path in Path(checkpoint).rglob("*") if path.is_file())
    for path in files:
        with path.open("rb") as handle:
            magic = handle.read(4)
        if not magic.startswith(_PICKLE_MAGIC):
            continue
        previous = torch.serialization.get_safe_globals()
        try:
            torch.serialization.add_safe_globals(_safe_globals())
            torch.load(path, map_location="cpu", weights_only=True, mmap=magic == _PICKLE_MAGIC[0])
        except Exception as error:
            reason = str(error).split("\n")[-1].strip() or type(error).__name__
            raise ValueError(f"checkpoint file {path} is not plain tensors and numbers (loading it could run code it "
                             f"holds), so {checkpoint} is not resumed: {reason[:300]}") from None
        finally:
            torch.serialization.clear_safe_globals()
            torch.serialization.add_safe_globals(previous)


__all__ = ["DEEPSPEED_SAFE_GLOBALS", "STATE_FILE", "check_checkpoint_pickles", "checkpoint_dirs", "load_trainer_state",
           "resolve_resume", "save_checkpoint"]
