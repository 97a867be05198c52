"""One pretraining run per output folder, identified by content (docs/design.md, Training: run folders).

A run's fingerprint is everything that decides its trajectory: the resolved config without the knobs that only
change how it is watched (`VIEW_SETTINGS`: output folder, logging, checkpoint cadence, progress bar, trackers,
activation checkpointing), with `data.path`, `data.metadata`, `data.well_list` and `model.init_from` replaced by the
fingerprints of their content (`phenom_data.fingerprint`). It is written to `<output_dir>/run.json` when a run starts
and into every checkpoint's `trainer_state.json`.

- A new run (no `--resume`) starts only in a missing or empty folder; `--overwrite` first removes an earlier run's
  outputs (`RUN_OUTPUTS`, nothing else; a folder that holds no run is refused).
- `--resume latest|PATH` continues a checkpoint only when its fingerprint equals this run's; what differs is named.
  `max_steps` is part of it: the one-cycle schedule is laid out over `max_steps`, so a run cannot be extended; the
  message says how to continue instead (a new run initialized from `final/`).
- `--resume latest` with no checkpoint yet starts from step 0 in an empty folder or one holding this run's
  `run.json` (a run killed before its first checkpoint).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from phenom_data.atomic import atomic_write_json
from phenom_data.fingerprint import data_fingerprint, differences, model_fingerprint, optional_file_fingerprint

from .checkpointing import check_checkpoint_pickles, load_trainer_state, resolve_resume
from .config import TrainConfig

RUN_FILE = "run.json"
# Everything `train/pretrain.py` writes into its output folder (the tensorboard tracker writes `pretrain/`).
RUN_OUTPUTS = ("config.yaml", RUN_FILE, "log.jsonl", "run_summary.json", "checkpoints", "reconstructions", "final",
               "final.tmp", "pretrain")
RUN_OUTPUT_PATTERNS = ("wells-rank*.tsv",)
VIEW_SETTINGS = ("output_dir", "progress", "log_every", "checkpoint_every", "keep_checkpoints", "reconstruction_every",
                 "trackers", "gradient_checkpointing", "data.record_wells")


def run_fingerprint(config: TrainConfig) -> dict:
    """What identifies this run (module docstring), JSON-serializable."""
    settings = copy.deepcopy(config.to_dict())
    for dotted in VIEW_SETTINGS:
        section, _, key = dotted.rpartition(".")
        (settings[section] if section else settings).pop(key)
    data = settings["data"]
    data["path"] = data_fingerprint(config.data.path, config.data.revision, exclude=(config.output_dir,))
    data["metadata"] = optional_file_fingerprint(config.data.metadata)
    data["well_list"] = optional_file_fingerprint(config.data.well_list)
    if config.model.init_from:
        settings["model"]["init_from"] = model_fingerprint(config.model.init_from)
    return settings


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def _recorded_run(output_dir: Path) -> dict | None:
    path = output_dir / RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def check_same_run(recorded: dict | None, current: dict, source: Path, output_dir: Path) -> None:
    """Refuse to continue `source` (a checkpoint or run folder) when it was written by another run."""
    if recorded is None:
        raise ValueError(f"{source} records no run fingerprint (written by an older Phenom), so it cannot be checked "
                         "to belong to this run; start a new run (model.init_from=<its final/ folder> or another "
                         "output_dir)")
    found = differences(recorded, current)
    if not found:
        return
    steps = recorded.get("max_steps"), current.get("max_steps")
    if steps[0] != steps[1]:
        raise ValueError(
            f"{source} belongs to a run of max_steps={steps[0]}; this run asks for max_steps={steps[1]}. The "
            "one-cycle schedule is laid out over max_steps, so a run cannot be extended or shortened: resume with "
            f"max_steps={steps[0]}, or continue training in a new run initialized from its weights "
            f"(model.init_from={output_dir / 'final'} output_dir=<new folder>)"
            + (f"; other differences: {'; '.join(item for item in found if not item.startswith('max_steps'))}"
               if len(found) > 1 else ""))
    raise ValueError(f"{source} was written by another run, so it is not resumed: {'; '.join(found)}. Resume with "
                     "the same settings and data, or pass --overwrite (no --resume) to replace that run, or choose "
                     "another output_dir")


def remove_run_outputs(output_dir: Path) -> None:
    """Delete what a pretraining run wrote into `output_dir` (`RUN_OUTPUTS`), nothing else."""
    for name in RUN_OUTPUTS:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for pattern in RUN_OUTPUT_PATTERNS:
        for path in output_dir.glob(pattern):
            path.unlink()


def prepare_run_folder(output_dir: Path, fingerprint: dict, resume: str | None, overwrite: bool) -> Path | None:
    """Check `output_dir` for this run (module docstring), clear it with `overwrite`, write `run.json`; returns the
    checkpoint to resume from (its pickled files checked), or None to start at step 0. Main process only; raises
    `ValueError` before any work."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output_dir {output_dir} exists and is not a folder")
    if resume is not None and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: --overwrite starts the run again")
    checkpoint = resolve_resume(output_dir, resume)
    if checkpoint is not None:
        check_same_run(load_trainer_state(checkpoint).get("run"), fingerprint, checkpoint, output_dir)
        check_checkpoint_pickles(checkpoint)
    elif not _is_empty(output_dir):
        recorded = _recorded_run(output_dir)
        if overwrite:
            if recorded is None and not (output_dir / "config.yaml").is_file():
                raise ValueError(f"--overwrite: output_dir {output_dir} holds no pretraining run ({RUN_FILE} missing) "
                                 "and is not empty; nothing was deleted: choose an empty or new folder")
            remove_run_outputs(output_dir)
        elif resume is None:
            raise ValueError(f"output_dir {output_dir} is not empty" + (" (it holds a run)" if recorded else "")
                             + ": resume that run with --resume latest, replace it with --overwrite, or choose "
                               "another output_dir")
        else:  # --resume latest, no checkpoint yet: only this run's own start (killed before its first checkpoint)
            check_same_run(recorded, fingerprint, output_dir / RUN_FILE, output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output_dir / RUN_FILE, fingerprint)
    return checkpoint


__all__ = ["RUN_FILE", "RUN_OUTPUTS", "VIEW_SETTINGS", "check_same_run", "prepare_run_folder", "remove_run_outputs",
           "run_fingerprint"]
