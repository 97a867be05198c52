"""CellProfiler LoadData CSVs (the JUMP-CP format) as `Well`s (DESIGN §4).

One row per image set (a site of a well), gzipped or not:

```
Metadata_Source,Metadata_Batch,Metadata_Plate,Metadata_Well,Metadata_Site,FileName_OrigDNA,PathName_OrigDNA,...
source_4,2021_04_26_Batch1,BR00117035,A01,1,r01c01f01p01-ch5sk1fk1fl1.tiff,images/BR00117035/,...
```

- A well is every row with the same `Metadata_Plate` and `Metadata_Well` (and `Metadata_Source`, when the column
  exists): `well_id` = `{Metadata_Plate}_{Metadata_Well}`, prefixed with `{Metadata_Source}_`. `Metadata_Site`
  (optional) names the sites; a row without it is site `1`. Two rows for the same site are an error.
- Channels are the `<NAME>` of each `FileName_Orig<NAME>` column. Each needs `PathName_Orig<NAME>` (a folder,
  relative to the CSV's folder or absolute) or `URL_Orig<NAME>` (a `file:` URL or a relative path; used where
  given). `Frame_Orig<NAME>` picks a frame of a multi-frame file (0-based, as CellProfiler). A blank file name is a
  missing channel of that site.
- Illumination correction: where `FileName_Illum<NAME>` and `PathName_Illum<NAME>` name a `.npy` file (a float
  `[H, W]` array, e.g. JUMP's `load_data_with_illum.csv`), the channel image is divided by it, as CellProfiler's
  CorrectIlluminationApply "Divide", then rounded to the file's bit depth (`image_files.divide_by_illumination`).
- `channels=["DNA", "ER", "RNA", "AGP", "Mito"]` selects and orders the channels (names as in the columns,
  case-insensitive); a name the CSV lacks is an error that lists the names it has. Without it every channel is
  used in column order except brightfield ones (a name containing "brightfield" or ending in "BF", as JUMP's
  `OrigBrightfield`, `OrigHighZBF`, `OrigLowZBF`).
- Every `Metadata_*` column that is the same on all rows of a well is the well's metadata (with `well_id`);
  columns that differ between sites (`Metadata_Site`, ...) describe sites and are left out.

Paths must stay inside the CSV's folder (or `root`) unless the CSV gives them absolutely; a URL with another scheme
(`s3://`, `https://`: JUMP's public CSVs point at the Cell Painting Gallery bucket) is refused before any work,
with what to do instead: download the images and rewrite the path columns (`docs/data.md`, JUMP-CP recipe).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from modeling_phenom import PhenomImageProcessor

from .atomic import atomic_path
from .image_files import (
    ChannelFile,
    FileResolver,
    ImageFileWells,
    SiteFiles,
    WellFiles,
    csv_header,
    site_sort_key,
    well_metadata,
)
from .sources import register_source
from .wells import as_well_set

PLATE, WELL, SITE, SOURCE = "Metadata_Plate", "Metadata_Well", "Metadata_Site", "Metadata_Source"
METADATA_PREFIX = "Metadata_"
ORIG_FILE = re.compile(r"^FileName_Orig(?P<name>.+)$")
BRIGHTFIELD = re.compile(r"brightfield|BF$", re.IGNORECASE)
DEFAULT_SITE = "1"


def is_load_data_csv(path: str | os.PathLike) -> bool:
    """A CSV (`.csv` or `.csv.gz`) whose header has `Metadata_Plate`, `Metadata_Well` and a `FileName_Orig*`."""
    columns = csv_header(path)
    if columns is None or PLATE not in columns or WELL not in columns:
        return False
    return any(ORIG_FILE.match(column) for column in columns)


def select_channels(available: Sequence[str], channels: Sequence[str] | None) -> list[str]:
    """The channel names to stack, in order: `channels` matched to `available` (exact, else case-insensitive), or
    every available channel but brightfield ones."""
    if channels is None:
        chosen = [name for name in available if not BRIGHTFIELD.search(name)]
        if not chosen:
            raise ValueError(f"the LoadData CSV has only brightfield channels {list(available)}; name them with "
                             "channels= (--channels) to use them")
        return chosen
    lowered = {name.lower(): name for name in available}
    chosen = [name if name in available else lowered.get(str(name).lower()) for name in channels]
    unknown = [name for name, match in zip(channels, chosen, strict=True) if match is None]
    if unknown:
        raise ValueError(f"channel(s) {unknown} are not in the LoadData CSV; it has {list(available)}")
    if not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"channels must list distinct channel names, got {list(channels)}")
    return chosen


def url_path(url: str, what: str) -> str:
    """A `URL_Orig*` value -> a path: `file:` URLs become absolute paths, a value without scheme is a relative
    path; any other scheme is refused."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" is a Windows drive, not a scheme
        raise ValueError(f"{what} {url!r} is not a local file ({parsed.scheme}://): download the images and point "
                         "PathName_/FileName_ (or file:// URLs) at the local copies")
    return url


@register_source("load-data", "a CellProfiler LoadData CSV (Metadata_Plate, Metadata_Well, FileName_Orig<NAME> and "
                 "PathName_Orig<NAME> per channel; .csv or .csv.gz)", order=10, detect=is_load_data_csv)
class LoadDataWells(ImageFileWells):
    """Wells of a CellProfiler LoadData CSV (module docstring).

    Args:
        csv: the LoadData CSV (`.csv` or `.csv.gz`).
        channels: channel names to stack, in order (`["DNA", "ER", "RNA", "AGP", "Mito"]`); default: every
            non-brightfield channel in column order.
        root: folder that relative paths start from (and must stay inside); default: the CSV's folder.
        well_list: a well-list file or iterable of well ids to keep.
        rank, world_size, processor, exclude: as `ImageFileWells` takes them (this process's share, the model's
            image processor, well ids done already).
    """

    source_name = "LoadData CSV"

    def __init__(
        self,
        csv: str | os.PathLike,
        channels: Sequence[str] | None = None,
        root: str | os.PathLike | None = None,
        well_list: str | os.PathLike | Iterable[str] | None = None,
        rank: int = 0,
        world_size: int = 1,
        processor: PhenomImageProcessor | None = None,
        exclude: Iterable[str] | None = None,
    ):
        csv = Path(csv)
        if not is_load_data_csv(csv):
            raise ValueError(f"{csv} is not a LoadData CSV: it needs the columns {PLATE}, {WELL} and "
                             "FileName_Orig<NAME> + PathName_Orig<NAME> per channel")
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        available = [match["name"] for match in map(ORIG_FILE.match, frame.columns) if match]
        channel_names = select_channels(available, channels)
        for name in channel_names:
            if f"PathName_Orig{name}" not in frame and f"URL_Orig{name}" not in frame:
                raise ValueError(f"{csv}: FileName_Orig{name} has neither PathName_Orig{name} nor URL_Orig{name}")
            if (f"FileName_Illum{name}" in frame) != (f"PathName_Illum{name}" in frame):
                raise ValueError(f"{csv}: illumination of {name} needs both FileName_Illum{name} and "
                                 f"PathName_Illum{name}")
        for column in (PLATE, WELL, SOURCE, SITE):
            if column in frame:
                frame[column] = frame[column].str.strip()
        blank = (frame[[PLATE, WELL]] == "").any(axis=1)
        if blank.any():
            raise ValueError(f"{csv} lines {list(frame.index[blank][:5] + 2)} have a blank {PLATE} or {WELL}")
        well_ids = frame[PLATE] + "_" + frame[WELL]
        if SOURCE in frame:
            well_ids = frame[SOURCE] + "_" + well_ids
        sites = frame[SITE].where(frame[SITE] != "", DEFAULT_SITE) if SITE in frame else pd.Series(
            DEFAULT_SITE, index=frame.index)
        repeated = pd.DataFrame({"well": well_ids, "site": sites}).duplicated(keep=False)
        if repeated.any():
            examples = sorted({f"{well} site {site}" for well, site in zip(well_ids[repeated], sites[repeated],
                                                                          strict=True)})[:5]
            raise ValueError(f"{csv}: several rows for the same site (lines {list(frame.index[repeated][:6] + 2)}): "
                             f"{examples}")
        well_set = as_well_set(well_list)
        filtered = 0
        if well_set is not None:
            keep = well_ids.isin(well_set)
            filtered = well_ids[~keep].nunique()
            frame, well_ids, sites = frame[keep], well_ids[keep], sites[keep]
        self.csv = csv
        self.root = Path(root) if root is not None else csv.parent
        metadata_columns = [column for column in frame.columns if column.startswith(METADATA_PREFIX)]
        metadata = well_metadata(frame, well_ids, metadata_columns)
        resolver = FileResolver(self.root)
        wells: dict[str, WellFiles] = {}
        # Plain lists, read by row index: a pandas row (or a records dict) per image set costs more than the rest.
        values = {column: frame[column].tolist() for column in self._file_columns(frame, channel_names)}
        lines, well_ids, sites = (frame.index + 2).tolist(), well_ids.tolist(), sites.tolist()
        checked: set[str] = set()  # folders whose scheme was checked (one per plate and channel, not per file)
        for row in sorted(range(len(lines)), key=lambda row: (well_ids[row], site_sort_key(sites[row]))):
            well_id, site, where = well_ids[row], sites[row], f"{csv} line {lines[row]}"
            files = {}
            for name in channel_names:
                file = self._channel_file(values, row, name, resolver, checked, where)
                if file is not None:
                    files[name] = file
            well = wells.setdefault(well_id, WellFiles(well_id, [], {"well_id": well_id, **metadata[well_id]}))
            well.sites.append(SiteFiles(site, files))
        super().__init__(wells.values(), channel_names, processor, rank=rank,
                         world_size=world_size, exclude=exclude, filtered=filtered)

    @staticmethod
    def _file_columns(frame: pd.DataFrame, channel_names: Sequence[str]) -> list[str]:
        """The file columns the chosen channels use (`FileName_`, `PathName_`, `URL_`, `Frame_` of `Orig` and
        `Illum`)."""
        kinds = ("FileName_Orig", "PathName_Orig", "URL_Orig", "Frame_Orig", "FileName_Illum", "PathName_Illum")
        return [f"{kind}{name}" for name in channel_names for kind in kinds if f"{kind}{name}" in frame]

    @staticmethod
    def _channel_file(values: dict[str, list], row: int, name: str, resolver: FileResolver, checked: set[str],
                      where: str) -> ChannelFile | None:
        """The file of channel `name` in `row`, or None when its file name is blank (a missing channel)."""

        def value(column: str) -> str:
            return values[column][row].strip() if column in values else ""

        def local_folder(column: str) -> str:
            folder = value(column)
            if folder not in checked:  # refuses s3://, https://, ...
                url_path(folder, f"{where}: {column}")
                checked.add(folder)
            return folder

        file_name = value(f"FileName_Orig{name}")
        if not file_name:
            return None
        url = value(f"URL_Orig{name}")
        if url:
            path = resolver.file(url_path(url, f"{where}: URL_Orig{name}"), what=f"{where}: URL_Orig{name}")
        else:
            path = resolver.file(file_name, local_folder(f"PathName_Orig{name}"), what=f"{where}: FileName_Orig{name}",
                                 folder_what=f"{where}: PathName_Orig{name}")
        frame_text = value(f"Frame_Orig{name}")
        if frame_text and not frame_text.isdigit():
            raise ValueError(f"{where}: Frame_Orig{name} {frame_text!r} is not a frame number (0, 1, ...)")
        illumination = None
        illumination_name = value(f"FileName_Illum{name}")
        if illumination_name:
            illumination = resolver.file(illumination_name, local_folder(f"PathName_Illum{name}"),
                                         what=f"{where}: FileName_Illum{name}",
                                         folder_what=f"{where}: PathName_Illum{name}")
        return ChannelFile(path, int(frame_text) if frame_text else None, illumination)


def write_load_data(
    directory: str | os.PathLike,
    images: Mapping[tuple[str, str, str], Mapping[str, np.ndarray]],
    illumination: Mapping[tuple[str, str], np.ndarray] | None = None,
    source: str | None = None,
    csv_name: str = "load_data.csv",
) -> Path:
    """Write plates in the LoadData layout JUMP-CP uses (tests, the benchmark, examples) and return the CSV.

    Args:
        directory: the dataset folder: `images/<plate>/<well>_s<site>_<channel>.tiff` (single-frame TIFF, 8 or 16
            bit as the arrays are), `illum/<plate>/<plate>_Illum<channel>.npy`, and the CSV with paths relative to
            it (`PathName_*` is the folder, `FileName_*` the file name).
        images: `(plate, well, site) -> {channel: [H, W] uint8/uint16}`, one CSV row per key, in this order.
        illumination: `(plate, channel) -> [H, W] float32`, written as `.npy` and named in `FileName_Illum*` /
            `PathName_Illum*` columns (JUMP's `load_data_with_illum.csv`); None writes no illumination columns.
        source: `Metadata_Source` of every row (JUMP's `source_4`, ...); None leaves the column out.
        csv_name: the CSV's file name (`.csv`, or `.csv.gz` to gzip it).
    """
    from PIL import Image

    directory = Path(directory)
    rows = []
    for (plate, well, site), channels in images.items():
        folder = directory / "images" / plate
        folder.mkdir(parents=True, exist_ok=True)
        row = {SOURCE: source} if source is not None else {}
        row.update({"Metadata_Batch": "batch1", PLATE: plate, WELL: well, SITE: site})
        for channel, array in channels.items():
            name = f"{well}_s{site}_{channel}.tiff"
            Image.fromarray(array).save(folder / name, format="TIFF")
            row[f"FileName_Orig{channel}"], row[f"PathName_Orig{channel}"] = name, f"images/{plate}"
            if illumination is not None:
                illum_name = f"{plate}_Illum{channel}.npy"
                illum_folder = directory / "illum" / plate
                if not (illum_folder / illum_name).is_file():
                    illum_folder.mkdir(parents=True, exist_ok=True)
                    np.save(illum_folder / illum_name, np.asarray(illumination[plate, channel], dtype=np.float32))
                row[f"FileName_Illum{channel}"], row[f"PathName_Illum{channel}"] = illum_name, f"illum/{plate}"
        rows.append(row)
    path = directory / csv_name
    with atomic_path(path) as temporary:
        pd.DataFrame(rows).to_csv(temporary, index=False, compression="gzip" if csv_name.endswith(".gz") else None)
    return path


__all__ = ["LoadDataWells", "is_load_data_csv", "select_channels", "write_load_data"]
