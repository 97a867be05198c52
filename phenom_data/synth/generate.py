"""Generate a synthetic RxRx-like dataset: `generate(...)` (its command line is `phenom synth`, in
`phenom/commands/synth.py`).

Plan the biology (`biology.py`), lay out the plates (`layout.py`), render every well (`render.py`, one generator
per well seeded by (seed, well index), so the bytes do not depend on the number of worker processes), encode the
channels as JPEG-2000 and write the shards, metadata, ground truth and README (`writer.py`, `truth.py`).
An interrupted run resumes: finished shards are kept and only the missing ones are rendered again;
`ground_truth.json` is written last and marks a complete dataset.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from phenom_data.atomic import atomic_write_text
from phenom_data.locks import output_lock
from phenom_data.synth.biology import plan_biology
from phenom_data.synth.config import SynthConfig
from phenom_data.synth.layout import build_layout
from phenom_data.synth.render import render_well
from phenom_data.synth.truth import dataset_readme, ground_truth
from phenom_data.synth.writer import (
    CELL_TYPE,
    GROUND_TRUTH_FILE,
    METADATA_FILE,
    NUM_CHANNELS,
    encode_jp2,
    shard_name,
    write_json,
    write_metadata,
    write_shard,
)

PROGRESS_FILE = ".synth_in_progress.json"
PARALLEL_MIN_WELLS = 200  # below this, a second worker's start-up costs more than it saves
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
PR_SET_PDEATHSIG = 1  # Linux prctl option


def _render_task(task: tuple) -> list[bytes]:
    """Render and encode one well (runs in a worker process): six JPEG-2000 channel images."""
    phenotype, plate_effects, image_size, seed, index, compression = task
    image = render_well(phenotype, plate_effects, image_size, np.random.default_rng([seed, 2, index]))
    return [encode_jp2(channel, compression) for channel in image]


def _worker_init() -> None:
    """Keep freed numpy temporaries in the heap (glibc): by default every large temporary is a fresh mmap whose pages
    fault in again, about 15% of the render time spent in the kernel. Only set in this generator's worker processes.
    On Linux a worker also dies with its parent (`PR_SET_PDEATHSIG`): a generator killed with kill -9 would otherwise
    leave it waiting for work forever."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 256 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 512 << 20)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not glibc: keep the defaults
        pass


def _pool_context():
    """fork on Linux (fast, and a caller's script needs no `if __name__ == "__main__"` guard, as with torch's
    DataLoader workers); spawn elsewhere (fork is unsafe on macOS)."""
    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _prepare_directory(out: Path, config: SynthConfig, overwrite: bool) -> bool:
    """Check `out` against `config`. True when it already holds this exact dataset (nothing to do)."""
    wanted = config.to_dict()
    truth_path, progress_path = out / GROUND_TRUTH_FILE, out / PROGRESS_FILE
    for path in (truth_path, progress_path):
        if not path.is_file():
            continue
        existing = json.loads(path.read_text())
        if existing.get("config") == wanted:
            if path == progress_path:
                return False  # an interrupted run: resume
            shards = existing["counts"]["shards"]
            files = [out / "data" / shard_name(k, shards) for k in range(shards)] + [out / METADATA_FILE]
            if all(file.is_file() for file in files):
                return True
            truth_path.unlink()  # files went missing: regenerate them, write the ground truth last again
            return False
        if not overwrite:
            raise FileExistsError(f"{out} holds a synthetic dataset with another config ({path.name}); choose another "
                                  "directory or pass overwrite=True (--overwrite)")
    holds_dataset = truth_path.is_file() or progress_path.is_file()
    if out.is_dir() and any(out.iterdir()) and not holds_dataset:
        # Never replace files this generator did not write (a user's README.md or CSV), not even with overwrite.
        raise FileExistsError(f"{out} is not empty and holds no synthetic dataset ({GROUND_TRUTH_FILE} missing); "
                              "nothing was changed: choose an empty or new directory")
    if overwrite:  # remove only what this generator writes
        for path in [*sorted((out / "data").glob("train-*.parquet")), truth_path, progress_path,
                     out / METADATA_FILE, out / "README.md"]:
            path.unlink(missing_ok=True)
    return False


def generate_from_config(
    config: SynthConfig, out_dir: str | Path, *, size: str = "custom", workers: int | None = None,
    overwrite: bool = False, progress: bool = True,
) -> Path:
    """Write the dataset `config` describes into `out_dir` (see `generate`). Returns the directory. One run per
    folder: a second one is refused while the first runs (`phenom_data.locks`)."""
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    with output_lock(out, "synthetic dataset folder"):
        if _prepare_directory(out, config, overwrite):
            return out
        _generate(config, out, size, workers, progress)
    return out


def _generate(config: SynthConfig, out: Path, size: str, workers: int | None, progress: bool) -> None:
    plan = plan_biology(config)
    layout = build_layout(config, plan)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for stale in (out / "data").glob(".train-*.tmp"):  # a shard being written when an earlier run was killed
        stale.unlink()
    write_json(out / PROGRESS_FILE, {"config": config.to_dict()})
    wells = layout.wells
    total_rows = NUM_CHANNELS * len(wells)
    num_shards = max(1, math.ceil(total_rows / config.rows_per_shard))
    shard_paths = [out / "data" / shard_name(k, num_shards) for k in range(num_shards)]
    missing = {k for k, path in enumerate(shard_paths) if not path.is_file()}
    # A well is needed when any of its rows falls into a missing shard.
    needed = [well for well in wells
              if {(NUM_CHANNELS * well.index + c) // config.rows_per_shard for c in range(NUM_CHANNELS)} & missing]

    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(needed) >= PARALLEL_MIN_WELLS else 1
    tasks = ((well.phenotype, layout.plate_effects[(well.experiment_name, well.plate)], config.image_size,
              config.seed, well.index, config.jp2_compression) for well in needed)
    buffers: dict[int, tuple[list[str], list[bytes]]] = {k: ([], []) for k in missing}
    # Wells render in worker processes (also with workers=1: they get their own allocator settings).
    executor = ProcessPoolExecutor(workers, mp_context=_pool_context(), initializer=_worker_init) if needed else None
    try:
        results = executor.map(_render_task, tasks, chunksize=8) if executor else iter(())
        bar = tqdm(results, total=len(needed), desc="phenom synth", unit="well", disable=not progress)
        for well, channels in zip(needed, bar, strict=True):
            for channel, data in enumerate(channels):
                row = NUM_CHANNELS * well.index + channel
                shard = row // config.rows_per_shard
                if shard not in buffers:
                    continue
                keys, images = buffers[shard]
                keys.append(f"{well.key_prefix}_{channel + 1}")
                images.append(data)
                if row == min(total_rows, (shard + 1) * config.rows_per_shard) - 1:
                    write_shard(shard_paths[shard], keys, images)
                    del buffers[shard]
    finally:
        if executor:
            executor.shutdown(cancel_futures=True)

    write_metadata(out / METADATA_FILE, (
        {"well_id": well.well_id, "experiment_name": well.experiment_name, "plate": well.plate,
         "address": well.address, "gene": well.gene, "treatment": well.treatment, "SMILES": well.smiles,
         "concentration": well.concentration, "perturbation_type": well.perturbation_type, "cell_type": CELL_TYPE}
        for well in wells))
    truth = ground_truth(config, size, plan, layout, num_shards)
    atomic_write_text(out / "README.md", dataset_readme(truth))
    write_json(out / GROUND_TRUTH_FILE, truth)
    (out / PROGRESS_FILE).unlink(missing_ok=True)


def generate(
    out_dir: str | Path, size: str = "small", seed: int = 0, image_size: int = 256, *, workers: int | None = None,
    overwrite: bool = False, progress: bool = True, **overrides,
) -> Path:
    """Generate a synthetic RxRx-like dataset in the RxRx3-core layout and return its directory.

    >>> path = generate("synthetic-tiny", size="tiny", seed=0, progress=False)  # doctest: +SKIP

    `size` is a preset of `SIZES` (`tiny`, `small`, `medium`); `overrides` set any other `SynthConfig` field
    (e.g. `num_genes=150, guides=3`). `workers` processes render wells (default: up to 2 for large runs; the
    output does not depend on it). A directory already holding the same dataset is returned as is; one holding
    another dataset is an error unless `overwrite`.
    """
    config = SynthConfig.from_size(size, seed=seed, image_size=image_size, **overrides)
    return generate_from_config(config, out_dir, size=size, workers=workers, overwrite=overwrite, progress=progress)


__all__ = ["generate", "generate_from_config"]
