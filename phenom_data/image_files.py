"""Wells whose images are files listed in a table: what the plate CSV, the CellProfiler LoadData CSV and the RxRx1
release readers share (DESIGN §4).

A reader turns its table into `WellFiles` (a well: its sites, each naming one file per channel, and its metadata)
and hands them to `ImageFileWells`, which reads them:

- wells are split between ranks and DataLoader workers in contiguous blocks of the wells sorted by `well_id`, so the
  same table in any row order gives the same wells in the same order; wells in `exclude` (done already) are dropped
  before any file is opened;
- each site decodes its channels in the reader's channel order, divides each by its illumination function when the
  table names one (`.npy`, as CellProfiler's CorrectIlluminationApply "Divide"), and stacks them through the image
  processor (16-bit rule; the field must hold at least one crop);
- a site that cannot be read whole (a missing channel or file, a corrupt image, a bad illumination function, sizes
  that differ, a field smaller than the crop) is skipped and counted in `stats.skipped_sites`; the well keeps its
  other sites, and a well with none left is skipped as `no_valid_site`.

Paths come from data, so they go through `phenom_data.paths`: a relative path must stay inside the table's root
folder; an absolute path is taken as the table names it (`FileResolver`).
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from modeling_phenom import PhenomImageProcessor

from .paths import UnsafePathError, resolve_inside
from .wells import (
    BAD_ILLUMINATION,
    CORRUPT_IMAGE,
    DUPLICATE_CHANNEL,
    MISSING_CHANNEL,
    MISSING_FILE,
    NO_VALID_SITE,
    ImageError,
    Site,
    SiteError,
    SkipLog,
    Well,
    WellSource,
    contiguous_range,
    load_image,
    metadata_row,
    stack_channels,
)

CSV_SUFFIXES = (".csv", ".csv.gz")
# Illumination functions kept decoded per process: one per plate and channel, and wells are read plate by plate.
ILLUMINATION_CACHE_SIZE = 64


@dataclass(frozen=True)
class ChannelFile:
    """One channel image of a site.

    Attributes:
        path: the image file (checked by `FileResolver`; text, since a table names hundreds of thousands).
        frame: 0-based frame of a multi-frame file, or None for a single-frame file.
        illumination: a float `.npy` `[H, W]` the image is divided by, or None.
    """

    path: str
    frame: int | None = None
    illumination: str | None = None


@dataclass
class SiteFiles:
    """One site: its label, `channel -> ChannelFile` (a channel absent here is missing), and the channels the table
    names more than once (the site is then ambiguous and skipped)."""

    name: str
    files: dict[str, ChannelFile]
    duplicated: list[str] = field(default_factory=list)


@dataclass
class WellFiles:
    """One well: its sites (sorted by label) and its metadata (`column -> value`)."""

    well_id: str
    sites: list[SiteFiles]
    metadata: dict = field(default_factory=dict)


class FileResolver:
    """Table paths -> file system paths (text), kept inside `root` unless the table names them absolutely.

    A folder is resolved once (symlinks followed) and must lie inside `root` when relative; a file name is then a
    plain name inside it (joined as text: pathlib costs microseconds a file, and a JUMP source names millions), or a
    relative path checked the same way. Raises `UnsafePathError` naming the value."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self._folders: dict[str, str] = {}

    def folder(self, folder: str, what: str = "path") -> str:
        if folder not in self._folders:
            self._folders[folder] = str(resolve_inside(self.root, folder or ".", allow_absolute=True, what=what))
        return self._folders[folder]

    def file(self, path: str, folder: str | None = None, what: str = "path", folder_what: str | None = None) -> str:
        """`path` inside `folder` (itself inside the root, or absolute; named `folder_what` in errors), or a path of
        its own when `folder` is None; an absolute `path` with no folder is taken as named."""
        if folder is None:
            if os.path.isabs(path):
                return path
            folder, path = os.path.split(path)
        base = self.folder(folder, folder_what or what)
        if os.path.isabs(path):
            raise UnsafePathError(f"{what} {path!r} is absolute inside folder {folder!r}; give a file name or a "
                                  "relative path")
        if path not in ("", ".", "..") and "/" not in path and os.sep not in path:
            return base + path if base.endswith(os.sep) else base + os.sep + path  # os.path.join, at a third the cost
        return str(resolve_inside(base, path, what=what))


def csv_header(path: str | os.PathLike) -> list[str] | None:
    """The column names of a `.csv` or `.csv.gz` file (its first line only), or None for anything else."""
    path = Path(path)
    if not path.is_file() or not path.name.lower().endswith(CSV_SUFFIXES):
        return None
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="") as handle:
            line = handle.readline()
    except (OSError, UnicodeDecodeError):
        return None
    return [name.strip().strip('"') for name in line.rstrip("\r\n").split(",")]


@functools.lru_cache(maxsize=ILLUMINATION_CACHE_SIZE)
def read_illumination(path: str) -> np.ndarray:
    """A CellProfiler illumination function saved as `.npy`: float32 `[H, W]`, finite and > 0 everywhere.
    Raises `SiteError` (a missing file is `missing_file`, anything else `bad_illumination`)."""
    if not os.path.isfile(path):
        raise SiteError(MISSING_FILE, f"no illumination file {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises ValueError, OSError, EOFError... for files that are not .npy
        raise SiteError(BAD_ILLUMINATION, f"cannot read illumination file {path}: {error}") from None
    if array.ndim != 2 or array.dtype.kind not in "fiu":
        raise SiteError(BAD_ILLUMINATION, f"illumination file {path} holds {array.dtype} {array.shape}; expected "
                                          "a 2-D float array")
    array = array.astype(np.float32)
    if not np.isfinite(array).all() or (array <= 0).any():
        raise SiteError(BAD_ILLUMINATION, f"illumination file {path} has values that are not finite and positive "
                                          f"(min {np.nanmin(array):g}); an image cannot be divided by them")
    array.setflags(write=False)
    return array


def divide_by_illumination(image: np.ndarray, illumination: np.ndarray, path: str) -> np.ndarray:
    """CorrectIlluminationApply "Divide": `image / illumination`, rounded and clipped back to the image's integer
    type (uint8 or uint16), so the processor's 8/16-bit rule applies to the corrected image as to any other."""
    if illumination.shape != image.shape:
        raise SiteError(BAD_ILLUMINATION, f"illumination file {path} is {illumination.shape}, its image "
                                          f"{image.shape}")
    corrected = image.astype(np.float32)
    np.divide(corrected, illumination, out=corrected)  # in place: a 1080 px field is 4.7 MB per temporary
    np.rint(corrected, out=corrected)
    np.clip(corrected, 0, np.iinfo(image.dtype).max, out=corrected)
    return corrected.astype(image.dtype)


def site_sort_key(name: str) -> tuple:
    """Sites in numeric order when their labels are numbers (`2` before `10`), else in text order."""
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


def constant_columns(frame: pd.DataFrame, group: pd.Series, columns: Sequence[str]) -> list[str]:
    """The `columns` whose value is the same on every row of each group (well-level metadata; a column that differs
    between the sites of a well, such as the site number, describes sites, not wells)."""
    if frame.empty:
        return list(columns)
    varying = frame[list(columns)].groupby(group.to_numpy(), sort=False).nunique(dropna=False).max() > 1
    return [column for column in columns if not varying[column]]


def well_metadata(frame: pd.DataFrame, group: pd.Series, columns: Sequence[str]) -> dict[str, dict]:
    """`well_id -> {column: value}` (blanks as None) of the well-level `columns` (first row of each well)."""
    first = frame[list(columns)].groupby(group.to_numpy(), sort=False).first()
    return {str(well_id): metadata_row(values) for well_id, values in zip(first.index, first.to_dict("records"),
                                                                          strict=True)}


class ImageFileWells(WellSource):
    """Wells read from image files named by a table (module docstring).

    Args:
        wells: the wells, any order (read sorted by `well_id`); ids must be unique.
        channels: channel names in the order they are stacked (`channel_names`).
        processor: the model's `PhenomImageProcessor` (16-bit rule, crop size); None: the default 16-bit rule and
            no field size check.
        rank, world_size: this process's share.
        exclude: well ids to leave out before reading (done already).
        filtered: wells the caller's filters left out, for `stats.filtered`.
    """

    source_name = "image files"

    def __init__(
        self,
        wells: Iterable[WellFiles],
        channels: Sequence[str],
        processor: PhenomImageProcessor | None,
        rank: int = 0,
        world_size: int = 1,
        exclude: Iterable[str] | None = None,
        filtered: int = 0,
    ):
        super().__init__(rank=rank, world_size=world_size)
        wells = sorted(wells, key=lambda well: well.well_id)
        repeated = sorted({a.well_id for a, b in zip(wells, wells[1:], strict=False) if a.well_id == b.well_id})
        if repeated:
            raise ValueError(f"{self.source_name}: well ids repeat: {repeated[:5]}")
        exclude = frozenset(exclude or ())
        self.wells = [well for well in wells if well.well_id not in exclude]
        self.excluded = len(wells) - len(self.wells)
        self.filtered = filtered
        self.channel_names = list(channels)
        self.processor = processor

    @property
    def well_ids(self) -> list[str]:
        """The wells to read (all parts together), in reading order."""
        return [well.well_id for well in self.wells]

    def __len__(self) -> int:
        return len(self.wells)

    def _iter_part(self, part: int, num_parts: int, skips: SkipLog) -> Iterator[Well]:
        if num_parts == 1:
            self.stats.filtered, self.stats.excluded = self.filtered, self.excluded
        for index in contiguous_range(len(self.wells), part, num_parts):
            files = self.wells[index]
            sites = []
            for site in files.sites:
                try:
                    sites.append(Site(site.name, self._read_site(site)))
                except SiteError as error:
                    skips.skip_site(files.well_id, site.name, error.reason, error.detail)
            if not sites:
                skips.skip(files.well_id, NO_VALID_SITE, f"none of its {len(files.sites)} site(s) could be read")
                continue
            self.stats.yielded += 1
            yield Well(well_id=files.well_id, sites=sites, metadata=dict(files.metadata))

    def _read_site(self, site: SiteFiles) -> np.ndarray:
        """uint8 `[C, H, W]` of one site; raises `SiteError`."""
        if site.duplicated:
            raise SiteError(DUPLICATE_CHANNEL, f"several files for channel(s) {site.duplicated}")
        missing = [channel for channel in self.channel_names if channel not in site.files]
        if missing:
            raise SiteError(MISSING_CHANNEL, f"no file for channel(s) {missing}")
        images = []
        for channel in self.channel_names:
            file = site.files[channel]
            try:
                image = load_image(file.path, file.frame)
            except FileNotFoundError:
                raise SiteError(MISSING_FILE, f"channel {channel}: file {file.path} does not exist") from None
            except ImageError as error:
                raise SiteError(CORRUPT_IMAGE, f"channel {channel}: {error}") from None
            if file.illumination is not None:
                image = divide_by_illumination(image, read_illumination(file.illumination), file.illumination)
            images.append(image)
        return stack_channels(images, self.processor)


__all__ = [
    "ChannelFile",
    "FileResolver",
    "ImageFileWells",
    "SiteFiles",
    "WellFiles",
    "constant_columns",
    "csv_header",
    "divide_by_illumination",
    "read_illumination",
    "site_sort_key",
    "well_metadata",
]
