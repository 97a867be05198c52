"""Wells, the unit every Phenom reader yields, and what the readers share: skip accounting, process/worker
partitioning, image decoding and well lists (DESIGN §4: wells, not rows, are the unit).

A `Well` is one well (or one imaging site) with its channels stacked in order: `image` uint8 `[C, H, W]`. Readers
(`RxRx3CoreWells`, `RxRx1Wells`, `PlateFolderWells`) are iterables of wells split between processes (`rank`,
`world_size`, e.g. accelerate's `process_index` / `num_processes`) and, inside a `torch.utils.data.DataLoader`,
between its workers, so that every well comes out once across all of them. Wells that cannot be read whole (a
corrupt image, a missing channel, no metadata row...) are skipped, never stacked wrongly and never fatal: each
reader counts them by reason in `stats` (`WellStats`), logs a warning for the first few of each reason and a
summary at the end of every pass.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from modeling_phenom import PhenomImageProcessor
from modeling_phenom.image_processing_phenom import ImageError, image_to_array, load_image
from phenom_data.atomic import atomic_write_text

logger = logging.getLogger(__name__)

# Reasons a well is skipped (keys of `WellStats.skipped`).
CORRUPT_IMAGE = "corrupt_image"  # an image that does not decode to one 8- or 16-bit channel
MISSING_CHANNEL = "missing_channel"  # fewer channel images than the well needs
DUPLICATE_CHANNEL = "duplicate_channel"  # two images claim the same channel of the well
INCONSISTENT_SIZE = "inconsistent_image_size"  # channel images of one well differ in size
NO_METADATA = "no_metadata"  # images of a well that has no row in the metadata table
SKIP_REASONS = (CORRUPT_IMAGE, MISSING_CHANNEL, DUPLICATE_CHANNEL, INCONSISTENT_SIZE, NO_METADATA)

# Individually logged skips per reason and pass; the rest only appear in the counts and the summary.
LOGGED_SKIPS_PER_REASON = 10


@dataclass
class Well:
    """One well (or imaging site) ready for a `PhenomImageProcessor`.

    Attributes:
        well_id: `{experiment}_{plate}_{address}` for RxRx3-core (the metadata's `well_id`), the `site_id` for an
            RxRx1 site, the CSV's well name for a folder of plates.
        image: uint8 `[C, H, W]`, channels in the reader's order (RxRx 1..6); 16-bit sources are converted by
            the image processor's documented rule.
        metadata: the well's metadata row (`column -> value`, blanks as None); empty when the source has none.
    """

    well_id: str
    image: np.ndarray
    metadata: dict = field(default_factory=dict)


@dataclass
class WellStats:
    """Counts of one pass of a reader (one process or DataLoader worker), and merged counts of several.

    Attributes:
        yielded: wells produced.
        skipped: `reason -> wells skipped` (`SKIP_REASONS`).
        filtered: wells left out on purpose (experiment, perturbation type or well-list filters).
        bad_rows: `reason -> rows or entries ignored` that could not be attributed to a well (e.g. a malformed
            key) or arrived after their well was complete.
        metadata_without_images: metadata rows (after filters) whose well had no image at all; only known to a
            pass that reads the whole source (one process, one worker), else None.
    """

    yielded: int = 0
    skipped: Counter = field(default_factory=Counter)
    filtered: int = 0
    bad_rows: Counter = field(default_factory=Counter)
    metadata_without_images: int | None = None

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def merge(self, other: WellStats) -> WellStats:
        """Counts of two passes together (e.g. every rank and worker of one run)."""
        unknown = self.metadata_without_images is None or other.metadata_without_images is None
        return WellStats(
            yielded=self.yielded + other.yielded,
            skipped=self.skipped + other.skipped,
            filtered=self.filtered + other.filtered,
            bad_rows=self.bad_rows + other.bad_rows,
            metadata_without_images=None
            if unknown
            else self.metadata_without_images + other.metadata_without_images,
        )

    def to_dict(self) -> dict:
        return {
            "yielded": self.yielded,
            "skipped": dict(sorted(self.skipped.items())),
            "filtered": self.filtered,
            "bad_rows": dict(sorted(self.bad_rows.items())),
            "metadata_without_images": self.metadata_without_images,
        }

    @classmethod
    def from_dict(cls, values: dict) -> WellStats:
        return cls(
            yielded=int(values["yielded"]),
            skipped=Counter(values.get("skipped", {})),
            filtered=int(values.get("filtered", 0)),
            bad_rows=Counter(values.get("bad_rows", {})),
            metadata_without_images=values.get("metadata_without_images"),
        )

    def summary(self) -> str:
        """One line: `yielded 120 wells, skipped 3 (corrupt_image 1, missing_channel 2), filtered 0`."""
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items()) if count)
        text = f"yielded {self.yielded} wells, skipped {self.total_skipped}"
        text += f" ({skipped})" if skipped else ""
        text += f", filtered {self.filtered}"
        bad = ", ".join(f"{reason} {count}" for reason, count in sorted(self.bad_rows.items()) if count)
        if bad:
            text += f", ignored rows ({bad})"
        if self.metadata_without_images:
            text += f", {self.metadata_without_images} metadata rows without images"
        return text

    def save(self, path: str | os.PathLike) -> None:
        """Write the counts as JSON, atomically (temp file, then rename)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load_dir(cls, directory: str | os.PathLike) -> WellStats:
        """Merge every `stats-*.json` a `WellDataset(stats_dir=...)` wrote (one per rank and worker)."""
        files = sorted(Path(directory).glob("stats-*.json"))
        if not files:
            raise FileNotFoundError(f"no stats-*.json files in {directory}")
        total = cls(metadata_without_images=0)
        for file in files:
            total = total.merge(cls.from_dict(json.loads(file.read_text())))
        if len(files) > 1:
            # Each part alone cannot tell which metadata rows no part saw.
            total.metadata_without_images = None
        return total


class SkipLog:
    """Counts skips in a `WellStats` and logs the first `LOGGED_SKIPS_PER_REASON` of each reason."""

    def __init__(self, stats: WellStats, source_name: str):
        self.stats = stats
        self.source_name = source_name

    def skip(self, well_id: str, reason: str, detail: str) -> None:
        self.stats.skipped[reason] += 1
        count = self.stats.skipped[reason]
        if count <= LOGGED_SKIPS_PER_REASON:
            suffix = " (further skips for this reason are only counted)" if count == LOGGED_SKIPS_PER_REASON else ""
            logger.warning("%s: skipping well %s: %s [%s]%s", self.source_name, well_id, detail, reason, suffix)

    def bad_row(self, reason: str, detail: str) -> None:
        self.stats.bad_rows[reason] += 1
        if self.stats.bad_rows[reason] <= LOGGED_SKIPS_PER_REASON:
            logger.warning("%s: ignoring a row: %s [%s]", self.source_name, detail, reason)

    def finish(self, part: str) -> None:
        """The end-of-pass summary: a warning when anything was skipped, else an info line."""
        level = logging.WARNING if self.stats.total_skipped or sum(self.stats.bad_rows.values()) else logging.INFO
        logger.log(level, "%s%s: %s", self.source_name, part, self.stats.summary())


def worker_partition(rank: int, world_size: int) -> tuple[int, int]:
    """`(part, num_parts)` of the calling process and DataLoader worker: ranks outermost, so each rank's workers
    share one contiguous part of the data."""
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    num_workers, worker_id = (info.num_workers, info.id) if info is not None else (1, 0)
    return rank * num_workers + worker_id, world_size * num_workers


def part_label(rank: int, world_size: int) -> str:
    """` (rank r/n, worker w/k)` for log lines, empty for a single unsplit pass."""
    part, num_parts = worker_partition(rank, world_size)
    if num_parts == 1:
        return ""
    num_workers = num_parts // world_size
    return f" (rank {rank}/{world_size}, worker {part - rank * num_workers}/{num_workers})"


def contiguous_range(count: int, part: int, num_parts: int) -> range:
    """Part `part` of `count` items split into `num_parts` contiguous ranges, the first `count % num_parts` one item
    longer (the rule of `datasets`' `IterableDataset.shard(contiguous=True)`); parts beyond `count` are empty."""
    size, remainder = divmod(count, num_parts)
    start = size * part + min(part, remainder)
    return range(start, start + size + (1 if part < remainder else 0))


def check_partition(rank: int, world_size: int) -> None:
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in [0, {world_size}), got {rank!r}")


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image bytes (JPEG-2000, PNG, TIFF, ...) -> uint8/uint16 `[H, W]`; raises `ImageError`."""
    if not data:
        raise ImageError("empty image bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image_to_array(image)
    except ImageError:
        raise
    except UnidentifiedImageError as error:
        raise ImageError(f"not a readable image ({len(data)} bytes starting {data[:12]!r})") from error
    except Exception as error:  # pillow raises OSError, SyntaxError, ValueError, ... for broken files
        raise ImageError(f"cannot decode image: {type(error).__name__}: {error}") from error


def stack_channels(
    well_id: str, channels: Sequence[np.ndarray], processor: PhenomImageProcessor, skips: SkipLog
) -> np.ndarray | None:
    """Decoded channel images in order -> uint8 `[C, H, W]` via the processor, or None (counted) when their sizes
    differ."""
    shapes = [channel.shape for channel in channels]
    if len(set(shapes)) != 1:
        skips.skip(well_id, INCONSISTENT_SIZE, f"channel images differ in size: {shapes}")
        return None
    return processor.stack_well(list(channels))


def read_well_list(path: str | os.PathLike) -> list[str]:
    """A well list file -> its well ids in file order: one `well_id` per line; blank lines and lines starting with
    `#` are ignored, surrounding whitespace is stripped. Raises `ValueError` when a well id repeats or the file
    holds none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"well list {path} does not exist")
    well_ids = [line.strip() for line in path.read_text().splitlines()]
    well_ids = [well_id for well_id in well_ids if well_id and not well_id.startswith("#")]
    if not well_ids:
        raise ValueError(f"well list {path} holds no well ids (one well_id per line)")
    repeated = [well_id for well_id, count in Counter(well_ids).items() if count > 1]
    if repeated:
        raise ValueError(f"well list {path} repeats well ids: {repeated[:5]}")
    return well_ids


def as_well_set(well_list: str | os.PathLike | Iterable[str] | None) -> frozenset[str] | None:
    """A well-list path or an iterable of well ids -> a set (None stays None)."""
    if well_list is None:
        return None
    if isinstance(well_list, (str, os.PathLike)):
        return frozenset(read_well_list(well_list))
    return frozenset(well_list)


def as_name_set(values: str | Iterable[str] | None, what: str) -> frozenset[str] | None:
    if values is None:
        return None
    values = frozenset([values] if isinstance(values, str) else values)
    if not values:
        raise ValueError(f"{what} filter is empty: pass None to keep everything")
    return values


def metadata_row(values: dict) -> dict:
    """A pandas row dict -> plain Python values, blanks (NaN) as None."""
    row = {}
    for column, value in values.items():
        if isinstance(value, float) and np.isnan(value):
            value = None
        elif isinstance(value, np.generic):
            value = value.item()
        row[column] = value
    return row




class WellSource:
    """Base of the readers: an iterable of `Well`s split by `rank`/`world_size` and by DataLoader worker.

    Subclasses implement `_iter_part(part, num_parts, stats)`; `__iter__` resets `stats`, picks the part of this
    process and worker, and logs the summary at the end of the pass.
    """

    source_name = "wells"

    def __init__(self, rank: int = 0, world_size: int = 1):
        check_partition(rank, world_size)
        self.rank = rank
        self.world_size = world_size
        self.stats = WellStats()

    def __iter__(self) -> Iterator[Well]:
        self.stats = WellStats()
        part, num_parts = worker_partition(self.rank, self.world_size)
        skips = SkipLog(self.stats, self.source_name)
        yield from self._iter_part(part, num_parts, skips)
        skips.finish(part_label(self.rank, self.world_size))

    def _iter_part(self, part: int, num_parts: int, skips: SkipLog) -> Iterator[Well]:
        raise NotImplementedError


__all__ = [
    "CORRUPT_IMAGE",
    "DUPLICATE_CHANNEL",
    "INCONSISTENT_SIZE",
    "ImageError",
    "MISSING_CHANNEL",
    "NO_METADATA",
    "SKIP_REASONS",
    "SkipLog",
    "Well",
    "WellSource",
    "WellStats",
    "as_name_set",
    "as_well_set",
    "check_partition",
    "contiguous_range",
    "decode_image",
    "image_to_array",
    "load_image",
    "metadata_row",
    "read_well_list",
    "stack_channels",
    "worker_partition",
]
