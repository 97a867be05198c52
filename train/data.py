"""Training batches: random 256 px crops of RxRx3-core-schema wells, streamed per process (DESIGN §4-5).

Each process reads its own wells (`rank`/`world_size` of the reader), so the data loader is not handed to
`accelerator.prepare` (it would re-split the stream). Crops and order come from generators seeded by (seed, pass,
rank, worker), so a resumed run that skips the batches it already consumed sees exactly the crops an
uninterrupted run sees.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from modeling_phenom import PhenomImageProcessor
from phenom_data import RxRx3CoreWells, WellDataset

from .config import DataConfig

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_data_source(path: str) -> None:
    """A local directory must exist; anything else must look like a Hub dataset id (`org/name`)."""
    if Path(path).exists():
        return
    if path.startswith((".", "/", "~")) or not _HUB_ID.match(path):
        raise FileNotFoundError(f"data.path {path} does not exist (give a local directory or a Hub dataset id)")


def build_wells(data: DataConfig, rank: int, world_size: int) -> RxRx3CoreWells:
    check_data_source(data.path)
    return RxRx3CoreWells(
        data.path,
        metadata=data.metadata,
        experiments=data.experiments,
        perturbation_types=data.perturbation_types,
        well_list=data.well_list,
        rank=rank,
        world_size=world_size,
        revision=data.revision,
    )


def require_usable_wells(wells: RxRx3CoreWells, source: str, accelerator) -> None:
    """Fail before any compute, on every process together, when a process's part of the dataset has no complete
    well (the reader splits by parquet row group: a dataset with fewer row groups than processes starves some)."""
    has_wells = torch.tensor([float(next(iter(wells), None) is not None)], device=accelerator.device)
    per_process = accelerator.gather(has_wells).tolist() if accelerator.num_processes > 1 else has_wells.tolist()
    empty = [rank for rank, value in enumerate(per_process) if value == 0]
    if empty:
        where = "this process" if accelerator.num_processes == 1 else f"process(es) {empty} of {len(per_process)}"
        raise ValueError(
            f"no usable wells in {source} for {where} (after filters): check data.path, data.well_list, "
            f"data.experiments and data.perturbation_types, and that the parquet files have at least as many row "
            f"groups as processes; reader summary: {wells.stats}"
        )


def training_batches(
    wells: RxRx3CoreWells, data: DataConfig, batch_size: int, seed: int, skip_batches: int = 0
) -> Iterator[torch.Tensor]:
    """Endless batches `{"well_id": [batch_size], "pixel_values": uint8 [batch_size, C, crop, crop]}`, pass after
    pass with new crops and order; the first `skip_batches` are drawn and dropped (resume)."""
    dataset = WellDataset(
        wells, mode="random_crop", processor=PhenomImageProcessor(crop_size=data.crop_size), seed=seed,
        shuffle_buffer_size=data.shuffle_buffer_size, repeat=True,
    )
    # Its own generator, so creating the loader draws nothing from the global RNG that masking uses (exact resume).
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=data.num_workers, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    return itertools.islice(iter(loader), skip_batches, None)


__all__ = ["build_wells", "check_data_source", "require_usable_wells", "training_batches"]
