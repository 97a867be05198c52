"""Training batches: random crops of any data source's wells, streamed per process (DESIGN §4-5).

The wells come from `phenom_data.open_wells` (RxRx3-core, RxRx1, a LoadData CSV, a plate CSV: whatever `data.path`
is), read with the run's image processor: its crop is the model's `image_size` (one owner) and its 16-bit rule is
`data.uint16_rule` (else the starting model's, else `channel_max`); the same processor is exported with `final/`.
Each process reads its own wells (`rank`/`world_size` of the reader), so the data loader is not handed to
`accelerator.prepare` (it would re-split the stream). Each site of a well gives one random crop per pass. Crops and
order come from generators seeded by (seed, pass, rank, worker), so a resumed run that skips the batches it already
consumed sees exactly the crops an uninterrupted run sees.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from modeling_phenom import PhenomImageProcessor
from phenom_data import WellDataset, detect_source, open_wells
from phenom_data.wells import WellSource

from .config import DataConfig


def check_data_source(path: str):
    """The kind of `data.path` (`phenom_data.detect_source`); a path that does not exist is named as the config
    key."""
    try:
        return detect_source(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"data.path {path} does not exist (give a local file or folder, or a Hub dataset "
                                "id)") from None


def training_processor(data: DataConfig, model_config, init_from: str | None = None) -> PhenomImageProcessor:
    """The run's image processor: crops of the model's `image_size` (`data.crop_size`, when set, must agree), the
    16-bit rule of `data.uint16_rule`, else of the model training starts from, else the default."""
    image_size = model_config.image_size
    if data.crop_size is not None and data.crop_size != image_size:
        raise ValueError(f"data.crop_size {data.crop_size} differs from the model's image_size {image_size}: the "
                         "model's image size is the crop (drop data.crop_size, or set model.overrides.image_size)")
    settings = {}
    if init_from:
        start = PhenomImageProcessor.from_model(init_from)
        settings = {"uint16_rule": start.uint16_rule, "uint16_percentiles": start.uint16_percentiles}
    if data.uint16_rule is not None:
        settings["uint16_rule"] = data.uint16_rule
    return PhenomImageProcessor.from_config(model_config, **settings)


def build_wells(data: DataConfig, processor: PhenomImageProcessor, rank: int, world_size: int) -> WellSource:
    kind = check_data_source(data.path)
    return open_wells(
        data.path,
        processor=processor,
        rank=rank,
        world_size=world_size,
        metadata=data.metadata,
        experiments=data.experiments,
        perturbation_types=data.perturbation_types,
        well_list=data.well_list,
        channels=data.channels,
        revision=data.revision if "revision" in kind.options else None,
    )


def check_channels(wells: WellSource, model_config) -> None:
    """The data's channel count must be what the model reconstructs: a standard model's `num_channels`, the
    channel-agnostic decoder's `decoder_num_modalities` (one block stack per channel). Checked before any compute,
    with the override that fits."""
    names = list(wells.channel_names)
    if model_config.decoder_type == "channel_agnostic":
        expected, key = model_config.decoder_num_modalities, "model.overrides.decoder_num_modalities"
    else:
        expected, key = model_config.num_channels, "model.overrides.num_channels"
    if names and len(names) != expected:
        raise ValueError(f"data.path gives {len(names)} channels {names} but the model reconstructs {expected}: set "
                         f"{key}={len(names)} (a new model), or choose {expected} channels with data.channels")


def require_usable_wells(wells: WellSource, source: str, accelerator) -> None:
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
            f"groups as processes; reader summary: {wells.stats.summary()}"
        )


def training_batches(
    wells: WellSource, processor: PhenomImageProcessor, data: DataConfig, batch_size: int, seed: int,
    skip_batches: int = 0,
) -> Iterator[dict]:
    """Endless batches `{"well_id": [batch_size], "site": [batch_size], "pixel_values": uint8 [batch_size, C, crop,
    crop]}`, pass after pass with new crops and order; the first `skip_batches` are drawn and dropped (resume)."""
    dataset = WellDataset(
        wells, mode="random_crop", processor=processor, seed=seed, shuffle_buffer_size=data.shuffle_buffer_size,
        repeat=True,
    )
    # Its own generator, so creating the loader draws nothing from the global RNG that masking uses (exact resume).
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=data.num_workers, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    return itertools.islice(iter(loader), skip_batches, None)


__all__ = [
    "build_wells",
    "check_channels",
    "check_data_source",
    "require_usable_wells",
    "training_batches",
    "training_processor",
]
