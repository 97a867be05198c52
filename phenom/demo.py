"""`phenom demo`: the whole Phenom loop on a generated dataset, in minutes on a laptop CPU.

    phenom demo --out phenom-demo            # small synthetic screen, ~7 minutes on 2 idle cores
    phenom demo --out phenom-demo --size medium
    >>> from phenom.demo import demo
    >>> result = demo("phenom-demo", size="tiny", steps=2, progress=False)  # doctest: +SKIP

`demo(...) -> DemoResult` runs the stages, each by the package that owns it (the same code paths as the individual
commands; the command line is `phenom/commands/demo.py`). It reports its progress through the `phenom.demo` logger
(the command shows it on stdout) and returns the summary it wrote; it prints nothing itself.

1. `synth`: a synthetic RxRx3-core-style screen with planted biology (`phenom_data.synth`).
2. `pretrain`: the tiny channel-agnostic MAE (`train.pretrain.pretrain` with `train/configs/tiny.yaml`, one process
   on the CPU, as `accelerate launch --config_file train/accelerate/cpu.yaml` runs it; checkpoints,
   reconstructions, `final/`).
3. `random-init`: the same architecture with freshly drawn weights (seed `--seed`), saved like a trained model.
4. `embed`: every well embedded with both models (`eval.embed.embed(per_channel=True)`: each channel's token mean
   side by side, as the released `return_channelwise_embeddings=True`; views averaged per well).
5. `baseline`: CellProfiler-style hand-crafted features with scikit-image (`eval.handcrafted`).
6. `eval`: batch correction and every benchmark for each of the three (`eval.evaluate.evaluate`), with plots.
7. `probe`: the block-wise linear probe of the trained model on held-out experiments (`eval.probe.probe`).
8. `report`: leaderboard (`hub_cards.leaderboard`: `leaderboard.csv/md/png`), the trained model's card
   (`hub_cards.card`: `card/README.md`), the latest reconstruction grid and `summary.json` (`phenom demo` prints
   it as a table).

Re-running into the same `--out` resumes: finished stages (recorded in `demo_state.json`) are skipped and an
interrupted pretraining resumes from its last checkpoint. `--overwrite` starts again from nothing. A folder that
holds something other than a demo run is never deleted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from phenom_data.atomic import atomic_directory, atomic_write_bytes, atomic_write_json
from phenom_data.errors import one_line

STATE_FILE = "demo_state.json"
MODELS = ("tiny-trained", "tiny-random-init", "handcrafted-skimage")
SUMMARY_METRICS = ("recall_mean_0.05_0.95", "recall_CORUM_0.05_0.95", "compound_gene_ap_max",
                   "replicate_consistency_ks", "signal_consistency_fraction")
# Synthetic screen size -> (phenom synth preset, default pretraining steps). "tiny" is a smoke run for tests.
SIZES = {"tiny": ("tiny", 4), "small": ("small", 600), "medium": ("medium", 600)}
STAGES = ("synth", "pretrain", "random-init", "embed", "baseline", "eval", "probe", "report")
logger = logging.getLogger(__name__)


class DemoError(RuntimeError):
    """A stage that failed (the message says how to resume)."""


class DemoOutputError(DemoError, ValueError):
    """An output folder or setting the demo cannot use (found before any work; the message says what to do)."""


# ----------------------------------------------------------------------------------------------- output folder


def prepare_output(out: Path, settings: dict, overwrite: bool) -> tuple[dict, str]:
    """Check `out` is writable and is a fresh folder, a demo run of the same `settings` (resume), or (with
    `overwrite`) a demo run to replace. Returns the state and one of "fresh", "resume", "overwrite"."""
    state_path = out / STATE_FILE
    if out.exists() and not out.is_dir():
        raise DemoOutputError(f"--out {out} exists and is not a folder")
    existing = json.loads(state_path.read_text()) if state_path.is_file() else None
    mode = "fresh"
    if existing is not None:
        if overwrite:
            mode = "overwrite"
            shutil.rmtree(out)
        elif existing.get("settings") != settings:
            raise DemoOutputError(
                f"{out} holds a demo run with other settings ({existing.get('settings')}); this run asks for "
                f"{settings}. Pass --overwrite to replace it, or choose another --out"
            )
        else:
            mode = "resume"
    elif out.is_dir() and any(out.iterdir()):
        raise DemoOutputError(f"--out {out} is not empty and holds no demo run ({STATE_FILE} missing): choose an "
                              "empty or new folder (nothing is ever deleted that the demo did not write)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise DemoOutputError(f"--out {out} is not writable ({error.strerror or error}); choose a folder you can "
                              "write to") from error
    state = existing if mode == "resume" else {"settings": settings, "done": [], "seconds": {}}
    atomic_write_json(state_path, state)
    return state, mode


def run_stage(state: dict, out: Path, name: str, function, *args) -> None:
    """Run one stage unless the state says it is done; record it (and its wall time) when it finishes."""
    number = STAGES.index(name) + 1
    if name in state["done"]:
        logger.info("[%d/%d] %s: done in an earlier run, skipped", number, len(STAGES), name)
        return
    logger.info("[%d/%d] %s ...", number, len(STAGES), name)
    start = time.perf_counter()
    try:
        function(*args)
    except (ValueError, OSError) as error:  # a stage's own error: the run so far is kept, re-running resumes here
        if isinstance(error, DemoError):
            raise
        raise DemoError(f"{name} failed: {one_line(error)}. Re-run the same command to resume from here") from error
    state["seconds"][name] = round(time.perf_counter() - start, 1)
    state["done"].append(name)
    atomic_write_json(out / STATE_FILE, state)
    logger.info("[%d/%d] %s: %.1f s", number, len(STAGES), name, state["seconds"][name])


# ----------------------------------------------------------------------------------------------- stages


def stage_synth(out: Path, size: str, seed: int, progress: bool) -> None:
    from phenom_data.synth import generate

    generate(out / "data", size=SIZES[size][0], seed=seed, progress=progress)


def stage_pretrain(out: Path, steps: int, seed: int, progress: bool = True) -> None:
    from accelerate.state import AcceleratorState

    from train.config import load_config
    from train.pretrain import NonFiniteLossError, pretrain

    config_file = resources.files("train") / "configs" / "tiny.yaml"
    run_dir = out / "pretrain"
    checkpoint_every = max(1, min(100, steps // 2))
    overrides = [f"data.path={out / 'data'}", f"output_dir={run_dir}", f"max_steps={steps}", f"seed={seed}",
                 f"checkpoint_every={checkpoint_every}", f"reconstruction_every={checkpoint_every}",
                 f"log_every={max(1, min(5, steps // 4))}", f"progress={str(progress).lower()}"]
    # What a user runs for the same training (one CPU process, as here).
    logger.info("  phenom pretrain --config %s --resume latest %s", config_file, " ".join(overrides))
    config = load_config(config_file, overrides)
    previous = os.environ.get("ACCELERATE_USE_CPU")
    os.environ["ACCELERATE_USE_CPU"] = "true"  # the demo trains on the CPU, wherever it runs
    try:
        pretrain(config, resume="latest")
    except (ValueError, OSError, NonFiniteLossError) as error:
        raise DemoError(f"pretraining failed ({error}); re-run the same command to resume from the last checkpoint "
                        f"in {run_dir / 'checkpoints'}") from error
    finally:
        if previous is None:
            os.environ.pop("ACCELERATE_USE_CPU", None)
        else:
            os.environ["ACCELERATE_USE_CPU"] = previous
        # The next stages set up accelerate afresh (their own device), as they did after a pretraining subprocess.
        AcceleratorState._reset_state(reset_partial_state=True)


def stage_random_init(out: Path, seed: int) -> None:
    from accelerate.utils import set_seed

    from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling, PhenomImageProcessor

    trained = out / "pretrain" / "final"
    config = PhenomConfig.from_pretrained(trained)
    set_seed(seed)
    model = PhenomForMaskedImageModeling(config)
    with atomic_directory(out / "random-init") as temporary:
        model.save_pretrained(temporary)
        PhenomImageProcessor.from_pretrained(trained).save_pretrained(temporary)


def stage_embed(out: Path, progress: bool = True) -> None:
    from eval.embed import embed

    # The trained model: every block (the probe reads them all); random init: the last block, as evaluated.
    # Per-channel pooling: a channel-agnostic model's features of each stain stay apart, as the hand-crafted
    # baseline's do; averaging over channels mixes them (docs/design.md, Demo).
    runs = {"tiny-trained": (out / "pretrain" / "final", "all"), "tiny-random-init": (out / "random-init", "last")}
    for name, (model, blocks) in runs.items():
        embed(str(model), str(out / "data"), out / "embeddings" / f"{name}.parquet", blocks=blocks, per_channel=True,
              overwrite=True, show_progress=progress)


def block_files(out: Path, name: str) -> list[Path]:
    """The embeddings files of model `name`, by block (one file when only one block was written)."""
    single = out / "embeddings" / f"{name}.parquet"
    if single.is_file():
        return [single]
    files = sorted((out / "embeddings").glob(f"{name}_block*.parquet"),
                   key=lambda path: int(path.stem.rsplit("_block", 1)[1]))
    if not files:
        raise DemoError(f"no embeddings for {name} in {out / 'embeddings'}; re-run with --overwrite")
    return files


def stage_baseline(out: Path, progress: bool) -> None:
    from eval.embeddings_file import write_embeddings
    from eval.handcrafted import embed_handcrafted
    from modeling_phenom import PhenomImageProcessor
    from phenom_data import open_wells

    # The data entry point every command uses, with the trained model's processor (its 16-bit rule and crop size).
    processor = PhenomImageProcessor.from_model(out / "pretrain" / "final")
    well_ids, features = embed_handcrafted(open_wells(out / "data", processor=processor), progress=progress)
    write_embeddings(out / "embeddings" / "handcrafted-skimage.parquet", well_ids, features,
                     provenance={"model": "handcrafted-skimage", "dataset": str(out / "data")})


def stage_eval(out: Path, size: str) -> None:
    from eval.evaluate import EvalOptions, evaluate

    for name in MODELS:
        evaluate([block_files(out, name)[-1]], out / "data" / "metadata_rxrx3_core.csv", out / "results" / name,
                 EvalOptions(model_name=name, dataset_name=f"phenom-synth-{size}", overwrite=True))


def stage_probe(out: Path, size: str, progress: bool = True) -> None:
    from eval.probe import probe

    probe(out / "probe", embeddings=block_files(out, "tiny-trained"),
          metadata=out / "data" / "metadata_rxrx3_core.csv", task="gene", model_name="tiny-trained",
          dataset_name=f"phenom-synth-{size}", show_progress=progress)


def stage_report(out: Path) -> None:
    from hub_cards.card import card
    from hub_cards.leaderboard import leaderboard

    leaderboard([out / "results" / name for name in MODELS], out,
                title="Phenom demo: trained vs random init vs hand-crafted")
    card([out / "results" / "tiny-trained", out / "probe"], str(out / "pretrain" / "final"), out / "card",
         name="phenom-demo-tiny", license="apache-2.0")
    grids = sorted((out / "pretrain").rglob("*.png"), key=lambda path: path.stat().st_mtime)
    if grids:
        atomic_write_bytes(out / "plots" / "reconstruction.png", grids[-1].read_bytes())


# ----------------------------------------------------------------------------------------------- summary


def collect_summary(out: Path, state: dict) -> dict:
    metrics = {}
    for name in MODELS:
        results = json.loads((out / "results" / name / "results.json").read_text())
        metrics[name] = {metric: results["metrics"].get(metric) for metric in SUMMARY_METRICS}
        metrics[name]["_baselines"] = {metric: results.get("baselines", {}).get(metric) for metric in SUMMARY_METRICS}
    probe = json.loads((out / "probe" / "results.json").read_text())
    trained, random_init = metrics["tiny-trained"], metrics["tiny-random-init"]
    return {
        "settings": state["settings"],
        "stage_seconds": state["seconds"],
        "metrics": metrics,
        "probe": {key: value for key, value in probe["metrics"].items()},
        "trained_beats_random_init": {
            metric: (trained[metric] is not None and random_init[metric] is not None
                     and trained[metric] > random_init[metric])
            for metric in ("recall_mean_0.05_0.95", "compound_gene_ap_max")
        },
        "files": {
            "leaderboard": str(out / "leaderboard.csv"),
            "leaderboard_plot": str(out / "leaderboard.png"),
            "results": {name: str(out / "results" / name / "results.json") for name in MODELS},
            "card": str(out / "card" / "README.md"),
            "trained_model": str(out / "pretrain" / "final"),
            "reconstruction": str(out / "plots" / "reconstruction.png"),
            "plots": sorted(str(path) for path in (out / "results").rglob("*.png")),
            "probe": str(out / "probe" / "results.json"),
        },
    }


# ----------------------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class DemoResult:
    """What `demo` did: the output folder, how it started (`fresh`, `resume`, `overwrite`), the summary it wrote to
    `summary_path` (`collect_summary`: settings, stage seconds, metrics per model, probe, files)."""

    out: Path
    mode: str
    summary: dict
    summary_path: Path


def demo(out: str | Path = "phenom-demo", *, size: str = "small", steps: int | None = None, seed: int = 0,
         overwrite: bool = False, progress: bool = True) -> DemoResult:
    """Run the demo's stages into `out` (module docstring) and return what it wrote.

    `size`: a key of `SIZES` (the synthetic screen); `steps`: pretraining steps (default: the size's); `seed`: of the
    data, the initialization and training. Raises `DemoOutputError` (a `ValueError`) for an output folder or setting
    it cannot use, before any work, and `DemoError` when a stage fails (re-running resumes from that stage).
    """
    if size not in SIZES:
        raise DemoOutputError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    steps = steps if steps is not None else SIZES[size][1]
    if steps < 1:
        raise DemoOutputError(f"--steps must be >= 1, got {steps}")
    out = Path(out).resolve()
    settings = {"size": size, "steps": steps, "seed": seed}
    state, mode = prepare_output(out, settings, overwrite)
    logger.info({"fresh": f"phenom demo into {out}",
                 "resume": f"resuming the demo run in {out}: done already: {', '.join(state['done']) or 'nothing'}",
                 "overwrite": f"--overwrite: replaced the earlier demo run in {out}"}[mode])
    if not progress:
        # transformers' and huggingface_hub's own bars (weights written and loaded).
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        if "transformers" in sys.modules:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
    start = time.perf_counter()
    run_stage(state, out, "synth", stage_synth, out, size, seed, progress)
    run_stage(state, out, "pretrain", stage_pretrain, out, steps, seed, progress)
    run_stage(state, out, "random-init", stage_random_init, out, seed)
    run_stage(state, out, "embed", stage_embed, out, progress)
    run_stage(state, out, "baseline", stage_baseline, out, progress)
    run_stage(state, out, "eval", stage_eval, out, size)
    run_stage(state, out, "probe", stage_probe, out, size, progress)
    run_stage(state, out, "report", stage_report, out)
    summary = collect_summary(out, state)
    summary["wall_seconds_this_run"] = round(time.perf_counter() - start, 1)
    summary_path = atomic_write_json(out / "summary.json", summary)
    return DemoResult(out, mode, summary, summary_path)


__all__ = ["MODELS", "SIZES", "STAGES", "STATE_FILE", "DemoError", "DemoOutputError", "DemoResult", "demo",
           "prepare_output"]
