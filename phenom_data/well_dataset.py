"""Views of wells for a model: a `torch.utils.data.IterableDataset` over any well reader (DESIGN §4).

`PhenomImageProcessor` owns the views (DESIGN §3), and its rule is applied to each site (field of view) of a well:
`mode="tiles"` gives every view of every site of a well, site after site (4 tiles of a 512 px site, 16 crops of a
1080 px field, ...) for inference; `mode="random_crop"` gives one uniformly placed crop per site for training.
Views are uint8 and never normalized (the model self-standardizes).

```python
>>> dataset = WellDataset(open_wells(path, processor=processor, rank=rank, world_size=world_size),
...                       mode="tiles", processor=processor)
>>> loader = torch.utils.data.DataLoader(dataset, batch_size=8, num_workers=4, collate_fn=collate_views)
>>> for batch in loader:   # {"well_id": [8], "pixel_values": uint8 [32, 6, 256, 256], "well_index": [32], ...}
...     ...
```

With DataLoader workers, every worker reads its own share of the rank's wells (the readers split by
`torch.utils.data.get_worker_info()`), so each well comes out once per epoch across ranks and workers. The split
by rank is already made by the reader (`rank=`, `world_size=`): do not pass these DataLoaders through
`accelerator.prepare` (it would dispatch rank 0's batches to every rank, or keep one batch in `world_size`); move
batches to the device yourself. Ranks may get different numbers of wells; a training loop that needs every rank
to keep stepping uses `repeat=True` (passes follow one another without end, each with new crops and order).

Counts of skipped wells live in the worker processes: each logs its summary at the end of its pass, and with
`stats_dir` writes `stats-rank{r}-worker{w}.json` there (`WellStats.load_dir` merges them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.utils.data

from modeling_phenom import PhenomImageProcessor

from .wells import Well, WellStats

MODES = ("tiles", "random_crop")


class WellDataset(torch.utils.data.IterableDataset):
    """Wells -> `{"well_id": str, "pixel_values": uint8 tensor}` samples.

    Args:
        wells: a reader (`open_wells(...)`) or any iterable of `Well`.
        mode: `"tiles"`: one sample per well, `pixel_values` `[num_views, C, crop, crop]` (every view of every site:
            4 for a 512 px one-site well), `site_index` int64 `[num_views]` (the site of each view, an index into
            `sites`, the site labels); `"random_crop"`: one sample per site and pass, `pixel_values` `[C, crop,
            crop]` and `site` (its label).
        processor: the image processor that makes the views: the model's, the one given to the reader
            (`crop_size` 256 by default).
        seed: seed of the random crops and of the shuffle buffer; each epoch (`set_epoch`), pass, rank and worker
            draws its own stream.
        shuffle_buffer_size: when > 0, samples pass through a buffer of this many and come out in random order
            (reading order otherwise).
        with_metadata: add the well's metadata dict as `"metadata"` (then collate with `collate_views`).
        stats_dir: folder where each rank and worker writes its `WellStats` at the end of a pass.
        repeat: start a new pass whenever one ends, without end (training by steps); a pass that yields nothing
            raises instead of looping forever.
    """

    def __init__(
        self,
        wells: Iterable[Well],
        mode: str = "tiles",
        processor: PhenomImageProcessor | None = None,
        seed: int = 0,
        shuffle_buffer_size: int = 0,
        with_metadata: bool = False,
        stats_dir: str | os.PathLike | None = None,
        repeat: bool = False,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(shuffle_buffer_size, int) or shuffle_buffer_size < 0:
            raise ValueError(f"shuffle_buffer_size must be a non-negative integer, got {shuffle_buffer_size!r}")
        self.wells = wells
        self.mode = mode
        self.processor = processor or PhenomImageProcessor()
        self.seed = seed
        self.shuffle_buffer_size = shuffle_buffer_size
        self.with_metadata = with_metadata
        self.stats_dir = Path(stats_dir) if stats_dir is not None else None
        self.repeat = repeat
        self.epoch = 0
        # Passes made by this copy: persistent DataLoader workers never see `set_epoch`, but count their passes.
        self.passes = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw other crops and another shuffle order in the next pass (call before each epoch)."""
        self.epoch = epoch

    @property
    def stats(self) -> WellStats | None:
        """The reader's counts of its last pass in this process (DataLoader workers keep their own)."""
        return getattr(self.wells, "stats", None)

    def _samples(self, well: Well, generator: np.random.Generator) -> Iterator[dict]:
        if self.mode == "tiles":
            views = [self.processor.tiles(site.image) for site in well.sites]
            sample = {
                "well_id": well.well_id,
                "pixel_values": torch.from_numpy(np.ascontiguousarray(np.concatenate(views))),
                "site_index": torch.repeat_interleave(torch.arange(len(views)), torch.tensor([len(v) for v in views])),
                "sites": [site.name for site in well.sites],
            }
            samples = [sample]
        else:
            samples = [{"well_id": well.well_id, "site": site.name,
                        "pixel_values": torch.from_numpy(self.processor.random_crop(site.image, generator))}
                       for site in well.sites]
        for sample in samples:
            if self.with_metadata:
                sample["metadata"] = well.metadata
            yield sample

    def __iter__(self) -> Iterator[dict]:
        while True:
            count = 0
            for sample in self._one_pass():
                count += 1
                yield sample
            if not self.repeat:
                return
            if count == 0:
                raise RuntimeError(
                    "a pass over this rank's and worker's share yielded no well, so repeat=True would loop forever: "
                    "use fewer ranks x DataLoader workers than the source has row groups, or check the filters"
                )

    def _one_pass(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker_id = info.id if info is not None else 0
        rank = getattr(self.wells, "rank", 0)
        generator = np.random.default_rng([self.seed, self.epoch, self.passes, rank, worker_id])
        self.passes += 1
        samples = (sample for well in self.wells for sample in self._samples(well, generator))
        yield from shuffled(samples, self.shuffle_buffer_size, generator) if self.shuffle_buffer_size else samples
        if self.stats_dir is not None and self.stats is not None:
            self.stats.save(self.stats_dir / f"stats-rank{rank}-worker{worker_id}.json")


def shuffled(items: Iterable, buffer_size: int, generator: np.random.Generator) -> Iterator:
    """Items in random order through a buffer of `buffer_size` (each item once)."""
    buffer = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        index = int(generator.integers(buffer_size))
        buffer[index], item = item, buffer[index]
        yield item
    generator.shuffle(buffer)
    yield from buffer


def collate_views(samples: Sequence[dict]) -> dict:
    """Batch samples whose view counts may differ (wells of several sizes or site counts).

    Returns:
        `{"well_id": list[str], "pixel_values": uint8 [total_views, C, crop, crop], "well_index": int64
        [total_views]}` (the sample each view came from); tile samples add `"site_index"` int64 `[total_views]`
        (the site of each view within its well) and `"sites": list[list[str]]` (each well's site labels),
        random-crop samples `"site": list[str]`; plus `"metadata": list[dict]` when samples carry it.
        Random-crop samples (`[C, crop, crop]`) count as one view each.
    """
    if not samples:
        raise ValueError("no samples to collate")
    views = [sample["pixel_values"] for sample in samples]
    views = [view if view.dim() == 4 else view.unsqueeze(0) for view in views]
    batch = {
        "well_id": [sample["well_id"] for sample in samples],
        "pixel_values": torch.cat(views),
        "well_index": torch.repeat_interleave(torch.arange(len(views)), torch.tensor([len(v) for v in views])),
    }
    if "site_index" in samples[0]:
        batch["site_index"] = torch.cat([sample["site_index"] for sample in samples])
        batch["sites"] = [sample["sites"] for sample in samples]
    for key in ("site", "metadata"):
        if key in samples[0]:
            batch[key] = [sample[key] for sample in samples]
    return batch


__all__ = ["MODES", "WellDataset", "collate_views", "shuffled"]
