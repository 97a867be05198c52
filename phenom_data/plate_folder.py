"""Users' own plates: Phenom's plate CSV, one image file per (well, site, channel), read into `Well`s (DESIGN §4).

```
well_id,site,channel,path,plate,treatment
plate1_A01,1,1,plate1/A01_s1_w1.tif,plate1,DMSO
plate1_A01,1,2,plate1/A01_s1_w2.tif,plate1,DMSO
...
```

- `well_id` names the well (any text; rows of one well may be anywhere in the file).
- `site` (optional) names the field of view; a well is all its sites. Without the column every well has one site.
- `channel` is a channel index (`1`, `2`, ... or `0`, `1`, ...) or a name (`nuclei`, `er`, ...). The order of the
  stacked channels is `channels=[...]` when given (rows of other channels are then ignored); otherwise indices
  in increasing order, or RxRx's order for its channel names (`nuclei, er, actin, rna, mitochondria, golgi`); any
  other names need `channels=`.
- `path` is an image file, relative to `root` (default: the CSV's folder) and inside it, or absolute: 8- or 16-bit
  single-channel PNG, TIFF or JPEG-2000, read with pillow; 16-bit images become 8-bit by the image processor's rule.
- Every other column is metadata; columns whose value differs between the rows of a well describe sites and are
  left out of the well's metadata.

Wells are read as `phenom_data.image_files.ImageFileWells` reads them: sorted by `well_id`, split between ranks and
DataLoader workers in contiguous blocks; a site without a file for every channel, with a missing or unreadable image
or with channel images of different sizes is skipped and counted, and a well with no site left is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from modeling_phenom import PhenomImageProcessor
from modeling_phenom.image_processing_phenom import RXRX_CHANNEL_NAMES

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

DEFAULT_SITE = "1"
REQUIRED_COLUMNS = ("well_id", "channel", "path")


def is_plate_csv(path: str | os.PathLike) -> bool:
    """A CSV (`.csv` or `.csv.gz`) whose header has `well_id`, `channel` and `path`."""
    columns = csv_header(path)
    return columns is not None and all(column in columns for column in REQUIRED_COLUMNS)


def channel_order(values: Sequence[str], channels: Sequence[str | int] | None) -> list[str]:
    """The channel order of a plate CSV (as text values of its channel column); see the module docstring."""
    present = list(dict.fromkeys(values))
    if channels is not None:
        order = [str(channel) for channel in channels]
        if not order or len(set(order)) != len(order):
            raise ValueError(f"channels must list distinct channels, got {list(channels)}")
        absent = [channel for channel in order if channel not in present]
        if absent:
            raise ValueError(f"channels {absent} never appear in the CSV's channel column (it has {present})")
        return order
    if all(value.lstrip("-").isdigit() for value in present):
        return sorted(present, key=int)
    lowered = {value.lower() for value in present}
    if lowered <= set(RXRX_CHANNEL_NAMES):
        names = {value.lower(): value for value in present}
        return [names[name] for name in RXRX_CHANNEL_NAMES if name in names]
    raise ValueError(
        f"channel names {present} have no known order: pass channels=[...] in the order the model expects"
    )


@register_source("plate-csv", "Phenom's plate CSV (well_id, channel, path, optional site, metadata columns)",
                 order=20, detect=is_plate_csv)
class PlateFolderWells(ImageFileWells):
    """Wells of a user's plates listed in a plate CSV (module docstring).

    Args:
        csv: the CSV file.
        root: folder that relative paths start from (and must stay inside); defaults to the CSV's folder.
        channels: the channel order (values of the channel column); see the module docstring.
        well_column, channel_column, path_column, site_column: the CSV's column names for the well, the channel, the
            file and the (optional) site.
        well_list: a well-list file or iterable of well ids to keep.
        rank, world_size, processor, exclude: as `ImageFileWells` takes them (this process's share, the model's
            image processor, well ids done already).
    """

    source_name = "plate CSV"

    def __init__(
        self,
        csv: str | os.PathLike,
        root: str | os.PathLike | None = None,
        channels: Sequence[str | int] | None = None,
        well_column: str = "well_id",
        channel_column: str = "channel",
        path_column: str = "path",
        site_column: str = "site",
        well_list: str | os.PathLike | Iterable[str] | None = None,
        rank: int = 0,
        world_size: int = 1,
        processor: PhenomImageProcessor | None = None,
        exclude: Iterable[str] | None = None,
    ):
        csv = Path(csv)
        if not csv.is_file():
            raise FileNotFoundError(f"plate CSV {csv} does not exist")
        frame = pd.read_csv(csv, dtype={well_column: str, channel_column: str, path_column: str, site_column: str})
        missing = [column for column in (well_column, channel_column, path_column) if column not in frame.columns]
        if missing:
            raise ValueError(f"{csv} lacks the column(s) {missing}; columns are {list(frame.columns)}")
        required = [well_column, channel_column, path_column] + ([site_column] if site_column in frame else [])
        blank = frame[required].isna().any(axis=1)
        if blank.any():
            raise ValueError(f"{csv} rows {list(frame.index[blank][:5] + 2)} have a blank well, site, channel or path")
        if site_column not in frame.columns:
            frame[site_column] = DEFAULT_SITE
        for column in (channel_column, site_column):
            frame[column] = frame[column].str.strip()
        channel_names = channel_order(frame[channel_column].tolist(), channels)
        frame = frame[frame[channel_column].isin(channel_names)]
        well_set = as_well_set(well_list)
        filtered = 0
        if well_set is not None:
            keep = frame[well_column].isin(well_set)
            filtered = frame.loc[~keep, well_column].nunique()
            frame = frame[keep]
        self.root = Path(root) if root is not None else csv.parent
        resolver = FileResolver(self.root)
        metadata_columns = [column for column in frame.columns
                            if column not in (channel_column, path_column, site_column)]
        metadata = well_metadata(frame, frame[well_column], metadata_columns)
        sites: dict[tuple[str, str], SiteFiles] = {}
        for line, (well_id, site, channel, path) in zip(
            frame.index + 2, frame[[well_column, site_column, channel_column, path_column]].itertuples(index=False),
            strict=True,
        ):
            file = ChannelFile(resolver.file(path, what=f"{csv} line {line}: path"))
            entry = sites.setdefault((well_id, site), SiteFiles(site, {}))
            if channel in entry.files:
                entry.duplicated.append(channel)
            entry.files[channel] = file
        wells: dict[str, WellFiles] = {}
        for (well_id, _), entry in sorted(sites.items(), key=lambda item: (item[0][0], site_sort_key(item[0][1]))):
            wells.setdefault(well_id, WellFiles(well_id, [], metadata[well_id])).sites.append(entry)
        super().__init__(wells.values(), channel_names, processor, rank=rank,
                         world_size=world_size, exclude=exclude, filtered=filtered)


__all__ = ["PlateFolderWells", "channel_order", "is_plate_csv"]
