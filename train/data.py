"""Training batches: random 256 px crops of RxRx3-core-schema wells, streamed per process (DESIGN §4-5).

Each process reads its own wells (`rank`/`world_size` of the reader), so the data loader is not handed to
`accelerator.prepare`; crops are drawn from generators seeded by (seed, epoch, rank, worker), so a resumed run that
skips the batches it has already consumed sees exactly the same crops as an uninterrupted one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from modeling_phenom import PhenomImageProcessor
from phenom_data import RxRx3CoreWells, WellDataset

from .config import DataConfig


def build_wells(data: DataConfig, rank: int, world_size: int) -> RxRx3CoreWells:
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


def require_usable_wells(wells: RxRx3CoreWells, source: str) -> None:
    """Fail before any compute when this process's part of the dataset has no complete well."""
    if next(iter(wells), None) is None:
        raise ValueError(
            f"no usable wells in {source} for this process (after filters): check data.path, data.well_list, "
            f"data.experiments and data.perturbation_types; reader summary: {getattr(wells, 'stats', {})}"
        )


def training_batches(
    wells: RxRx3CoreWells, data: DataConfig, batch_size: int, seed: int, skip_batches: int = 0
) -> Iterator[torch.Tensor]:
    """Endless uint8 `[batch_size, C, crop, crop]` batches, epoch after epoch; the first `skip_batches` are
    consumed and dropped (resume)."""
    processor = PhenomImageProcessor(crop_size=data.crop_size)

    def epochs() -> Iterator[torch.Tensor]:
        for epoch in itertools.count():
            dataset = WellDataset(wells, mode="random_crop", processor=processor, seed=seed + 1_000_003 * epoch)
            loader = DataLoader(dataset, batch_size=batch_size, num_workers=data.num_workers, drop_last=True)
            produced = False
            for batch in loader:
                produced = True
                yield batch["pixel_values"]
            if not produced:
                raise ValueError(f"an epoch of {data.path} gave no full batch of {batch_size} wells")

    return itertools.islice(epochs(), skip_batches, None)


__all__ = ["build_wells", "require_usable_wells", "training_batches"]
