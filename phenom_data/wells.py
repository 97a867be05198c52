"""Wells, the unit every Phenom reader yields, and what the readers share: skip accounting, process/worker
partitioning, image decoding and well lists (DESIGN §4: wells, not rows, are the unit).

A `Well` is one well: all its imaging sites (fields of view), each a `Site` with its channels stacked in order,
`image` uint8 `[C, H, W]`. Readers (`RxRx3CoreWells`, `RxRx1Wells`, `PlateFolderWells`, `LoadDataWells`; opened
through `phenom_data.open_wells`) are iterables of wells split between processes (`rank`, `world_size`, e.g.
accelerate's `process_index` / `num_processes`) and, inside a `torch.utils.data.DataLoader`, between its workers, so
that every well comes out once across all of them. A site that cannot be read whole (a corrupt image, a missing
channel or file...) is skipped and the well keeps its other sites; a well with no readable site (or no metadata
row...) is skipped. Nothing is stacked wrongly and nothing is fatal: each reader counts skipped wells and sites by
reason in `stats` (`WellStats`), logs a warning for the first few of each reason and a summary at the end of every
pass.
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
from modeling_phenom.image_processing_phenom import RXRX_CHANNEL_NAMES, ImageError, image_to_array, load_image
from phenom_data.atomic import atomic_write_text

logger = logging.getLogger(__name__)

# Reasons a well or a site is skipped (keys of `WellStats.skipped` and `WellStats.skipped_sites`).
CORRUPT_IMAGE = "corrupt_image"  # an image that does not decode to one 8- or 16-bit channel
MISSING_CHANNEL = "missing_channel"  # fewer channel images than the well needs
MISSING_FILE = "missing_file"  # an image or illumination file the dataset names does not exist
DUPLICATE_CHANNEL = "duplicate_channel"  # two images claim the same channel of the well
INCONSISTENT_SIZE = "inconsistent_image_size"  # channel images of one well differ in size
IMAGE_TOO_SMALL = "image_too_small"  # a field smaller than the model's crop
BAD_ILLUMINATION = "bad_illumination"  # an illumination function that cannot divide its image
NO_METADATA = "no_metadata"  # images of a well that has no row in the metadata table
NO_VALID_SITE = "no_valid_site"  # every site of the well was skipped (the sites' reasons are counted too)
SKIP_REASONS = (CORRUPT_IMAGE, MISSING_CHANNEL, MISSING_FILE, DUPLICATE_CHANNEL, INCONSISTENT_SIZE, IMAGE_TOO_SMALL,
                BAD_ILLUMINATION, NO_METADATA, NO_VALID_SITE)

# Individually logged skips per reason and pass; the rest only appear in the counts and the summary.
LOGGED_SKIPS_PER_REASON = 10


@dataclass
class Site:
    """One field of view of a well.

    Attributes:
        name: the site's label in its source (`"1"`, `"2"`, ...); `"1"` for sources with one field per well.
        image: uint8 `[C, H, W]`, channels in the reader's order (RxRx 1..6, or the names asked for); 16-bit
            sources are converted by the image processor's documented rule.
    """

    name: str
    image: np.ndarray


@dataclass
class Well:
    """One well, all its readable sites, ready for a `PhenomImageProcessor`.

    Attributes:
        well_id: `{experiment}_{plate}_{address}` for RxRx3-core (the metadata's `well_id`), the metadata's `well_id`
            for RxRx1, `{Metadata_Plate}_{Metadata_Well}` for a LoadData CSV, the CSV's well name for a plate CSV.
        sites: the well's sites in their source order (sorted by site label), at least one.
        metadata: the well's metadata row (`column -> value`, blanks as None); empty when the source has none.
    """

    well_id: str
    sites: list[Site]
    metadata: dict = field(default_factory=dict)

    @classmethod
    def single(cls, well_id: str, image: np.ndarray, metadata: dict | None = None, site: str = "1") -> Well:
        """A well imaged in one field (RxRx3-core): one `Site`."""
        return cls(well_id=well_id, sites=[Site(site, image)], metadata=metadata or {})

    @property
    def image(self) -> np.ndarray:
        """uint8 `[C, H, W]` of a well with one site; a well with several sites has no single image (use `sites`)."""
        if len(self.sites) != 1:
            raise ValueError(f"well {self.well_id} has {len(self.sites)} sites; read well.sites")
        return self.sites[0].image


@dataclass
class WellStats:
    """Counts of one pass of a reader (one process or DataLoader worker), and merged counts of several.

    Attributes:
        yielded: wells produced.
        skipped: `reason -> wells skipped` (`SKIP_REASONS`).
        skipped_sites: `reason -> sites skipped` (`SKIP_REASONS`); a well survives on its other sites, and one that
            loses all of them is skipped as `no_valid_site`.
        filtered: wells left out on purpose (experiment, perturbation type or well-list filters).
        excluded: wells left out before reading because they were done already (`exclude=`, a resumed run).
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
    skipped_sites: Counter = field(default_factory=Counter)
    excluded: int = 0

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
            skipped_sites=self.skipped_sites + other.skipped_sites,
            excluded=self.excluded + other.excluded,
        )

    def to_dict(self) -> dict:
        return {
            "yielded": self.yielded,
            "skipped": dict(sorted(self.skipped.items())),
            "filtered": self.filtered,
            "bad_rows": dict(sorted(self.bad_rows.items())),
            "metadata_without_images": self.metadata_without_images,
            "skipped_sites": dict(sorted(self.skipped_sites.items())),
            "excluded": self.excluded,
        }

    @classmethod
    def from_dict(cls, values: dict) -> WellStats:
        return cls(
            yielded=int(values["yielded"]),
            skipped=Counter(values.get("skipped", {})),
            filtered=int(values.get("filtered", 0)),
            bad_rows=Counter(values.get("bad_rows", {})),
            metadata_without_images=values.get("metadata_without_images"),
            skipped_sites=Counter(values.get("skipped_sites", {})),
            excluded=int(values.get("excluded", 0)),
        )

    def summary(self) -> str:
        """One line: `yielded 120 wells, skipped 3 (corrupt_image 1, missing_channel 2), filtered 0`."""
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items()) if count)
        text = f"yielded {self.yielded} wells, skipped {self.total_skipped}"
        text += f" ({skipped})" if skipped else ""
        text += f", filtered {self.filtered}"
        if self.excluded:
            text += f", excluded {self.excluded} (done already)"
        if self.skipped_sites:
            sites = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped_sites.items()) if count)
            text += f"; skipped {sum(self.skipped_sites.values())} sites ({sites})"
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

    def skip_site(self, well_id: str, site: str, reason: str, detail: str) -> None:
        self.stats.skipped_sites[reason] += 1
        count = self.stats.skipped_sites[reason]
        if count <= LOGGED_SKIPS_PER_REASON:
            suffix = " (further skips for this reason are only counted)" if count == LOGGED_SKIPS_PER_REASON else ""
            logger.warning("%s: skipping site %s of well %s: %s [%s]%s", self.source_name, site, well_id, detail,
                           reason, suffix)

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


class SiteError(Exception):
    """Why one site (or a one-site well) cannot be used: a `reason` of `SKIP_REASONS` and what was wrong."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def stack_channels(channels: Sequence[np.ndarray], processor: PhenomImageProcessor | None) -> np.ndarray:
    """Decoded channel images of one field, in order -> uint8 `[C, H, W]` by the processor's rules.

    Raises `SiteError` when their sizes differ or the field is smaller than the processor's crop (the
    processor's message names both sizes), so a reader counts it instead of failing later in the middle of a run.
    Without a processor (a reader used on its own, not for a model) the default 16-bit rule applies and there is no
    crop size to check."""
    shapes = [channel.shape for channel in channels]
    if len(set(shapes)) != 1:
        raise SiteError(INCONSISTENT_SIZE, f"channel images differ in size: {shapes}")
    if processor is None:
        processor = _DEFAULT_PROCESSOR
    else:
        try:
            processor.check_field(*shapes[0][-2:])
        except ValueError as error:
            raise SiteError(IMAGE_TOO_SMALL, str(error)) from None
    return processor.stack_well(list(channels))


_DEFAULT_PROCESSOR = PhenomImageProcessor()


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


def rxrx_channel_numbers(channels: Sequence[str | int] | None, num_channels: int = 6) -> list[int]:
    """RxRx channels to stack, in order, as numbers 1..num_channels: `None` (all, in order), numbers, or RxRx's
    names (`nuclei, er, actin, rna, mitochondria, golgi`, case-insensitive). Raises `ValueError` listing the names
    the source has."""
    if channels is None:
        return list(range(1, num_channels + 1))
    names = list(RXRX_CHANNEL_NAMES[:num_channels])
    numbers = []
    for channel in channels:
        text = str(channel).strip()
        if text.isdigit() and 1 <= int(text) <= num_channels:
            numbers.append(int(text))
        elif text.lower() in names:
            numbers.append(names.index(text.lower()) + 1)
        else:
            raise ValueError(f"channel {channel!r} is not an RxRx channel; the source has {names} "
                             f"(or numbers 1..{num_channels})")
    if not numbers or len(set(numbers)) != len(numbers):
        raise ValueError(f"channels must list distinct channels, got {list(channels)}")
    return numbers


def rxrx_channel_name(number: int) -> str:
    """RxRx's name of channel `number` (1-based), or the number as text past the six named ones."""
    return RXRX_CHANNEL_NAMES[number - 1] if 1 <= number <= len(RXRX_CHANNEL_NAMES) else str(number)


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
    # The channels stacked, in order, by name (recorded in the embeddings' provenance); readers set their own.
    channel_names: Sequence[str] = ()

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
    "BAD_ILLUMINATION",
    "CORRUPT_IMAGE",
    "DUPLICATE_CHANNEL",
    "IMAGE_TOO_SMALL",
    "INCONSISTENT_SIZE",
    "ImageError",
    "MISSING_CHANNEL",
    "MISSING_FILE",
    "NO_METADATA",
    "NO_VALID_SITE",
    "SKIP_REASONS",
    "Site",
    "SiteError",
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
    "rxrx_channel_name",
    "rxrx_channel_numbers",
    "stack_channels",
    "worker_partition",
]
