"""Users' own plates: a CSV that lists one image file per (well, channel), read into `Well`s (DESIGN §4).

```
well_id,channel,path,plate,treatment
plate1_A01,1,plate1/A01_w1.tif,plate1,DMSO
plate1_A01,2,plate1/A01_w2.tif,plate1,DMSO
...
```

- `well_id` names the well (any text; rows of one well may be anywhere in the file).
- `channel` is a channel index (`1`, `2`, ... or `0`, `1`, ...) or a name (`nuclei`, `er`, ...). The order of the
  stacked channels is `channels=[...]` when given (rows of other channels are then ignored); otherwise indices
  in increasing order, or RxRx's order for its channel names (`nuclei, er, actin, rna, mitochondria, golgi`); any
  other names need `channels=`.
- `path` is an image file, relative to `root` (default: the CSV's folder): 8- or 16-bit single-channel PNG, TIFF
  or JPEG-2000, read with pillow; 16-bit images become 8-bit by the image processor's rule.
- Every other column is metadata (taken from the well's first row).

Wells are split between ranks and DataLoader workers in contiguous blocks of the CSV's wells (in order of first
appearance). A well without a file for every channel, with an unreadable image or with channel images of
different sizes is skipped and counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from modeling_phenom import PhenomImageProcessor
from modeling_phenom.image_processing_phenom import RXRX_CHANNEL_NAMES

from .wells import (
    CORRUPT_IMAGE,
    DUPLICATE_CHANNEL,
    MISSING_CHANNEL,
    ImageError,
    SkipLog,
    Well,
    WellSource,
    as_well_set,
    contiguous_range,
    load_image,
    metadata_row,
    stack_channels,
)


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


class PlateFolderWells(WellSource):
    """Wells of a user's plates listed in a CSV (module docstring).

    Args:
        csv: the CSV file.
        root: folder that relative paths start from; defaults to the CSV's folder.
        channels: the channel order (values of the channel column); see the module docstring.
        well_column, channel_column, path_column: the CSV's column names for the well, the channel and the file.
        well_list: a well-list file or iterable of well ids to keep.
        rank, world_size: this process's share.
        processor: the `PhenomImageProcessor` whose 16-bit rule converts 16-bit images.
    """

    source_name = "plate folder"

    def __init__(
        self,
        csv: str | os.PathLike,
        root: str | os.PathLike | None = None,
        channels: Sequence[str | int] | None = None,
        well_column: str = "well_id",
        channel_column: str = "channel",
        path_column: str = "path",
        well_list: str | os.PathLike | Iterable[str] | None = None,
        rank: int = 0,
        world_size: int = 1,
        processor: PhenomImageProcessor | None = None,
    ):
        super().__init__(rank=rank, world_size=world_size)
        csv = Path(csv)
        if not csv.is_file():
            raise FileNotFoundError(f"plate CSV {csv} does not exist")
        frame = pd.read_csv(csv, dtype={well_column: str, channel_column: str, path_column: str})
        missing = [column for column in (well_column, channel_column, path_column) if column not in frame.columns]
        if missing:
            raise ValueError(f"{csv} lacks the column(s) {missing}; columns are {list(frame.columns)}")
        blank = frame[[well_column, channel_column, path_column]].isna().any(axis=1)
        if blank.any():
            raise ValueError(f"{csv} rows {list(frame.index[blank][:5] + 2)} have a blank well, channel or path")
        self.root = Path(root) if root is not None else csv.parent
        self.channels = channel_order(frame[channel_column].str.strip().tolist(), channels)
        self.well_column, self.channel_column, self.path_column = well_column, channel_column, path_column
        frame[channel_column] = frame[channel_column].str.strip()
        frame = frame[frame[channel_column].isin(self.channels)]
        well_set = as_well_set(well_list)
        self.filtered = 0
        if well_set is not None:
            keep = frame[well_column].isin(well_set)
            self.filtered = frame.loc[~keep, well_column].nunique()
            frame = frame[keep]
        self.groups = {well_id: rows for well_id, rows in frame.groupby(well_column, sort=False)}
        self.well_ids = list(self.groups)
        self.metadata_columns = [column for column in frame.columns if column not in (channel_column, path_column)]
        self.processor = processor or PhenomImageProcessor()

    def __len__(self) -> int:
        """Wells selected (all parts together)."""
        return len(self.well_ids)

    def _iter_part(self, part: int, num_parts: int, skips: SkipLog) -> Iterator[Well]:
        if num_parts == 1:
            self.stats.filtered = self.filtered
            self.stats.metadata_without_images = 0
        for index in contiguous_range(len(self.well_ids), part, num_parts):
            well_id = self.well_ids[index]
            well = self._read_well(well_id, self.groups[well_id], skips)
            if well is not None:
                self.stats.yielded += 1
                yield well

    def _read_well(self, well_id: str, rows: pd.DataFrame, skips: SkipLog) -> Well | None:
        paths: dict[str, list[str]] = {}
        for channel, path in zip(rows[self.channel_column], rows[self.path_column], strict=True):
            paths.setdefault(channel, []).append(path)
        repeated = [channel for channel, files in paths.items() if len(files) > 1]
        if repeated:
            skips.skip(well_id, DUPLICATE_CHANNEL, f"several files for channel(s) {repeated}")
            return None
        missing = [channel for channel in self.channels if channel not in paths]
        if missing:
            skips.skip(well_id, MISSING_CHANNEL, f"no file for channel(s) {missing}")
            return None
        images = []
        for channel in self.channels:
            path = Path(paths[channel][0])
            path = path if path.is_absolute() else self.root / path
            try:
                images.append(load_image(path))
            except FileNotFoundError:
                skips.skip(well_id, MISSING_CHANNEL, f"channel {channel}: file {path} does not exist")
                return None
            except ImageError as error:
                skips.skip(well_id, CORRUPT_IMAGE, f"channel {channel}: {error}")
                return None
        image = stack_channels(well_id, images, self.processor, skips)
        if image is None:
            return None
        metadata = metadata_row(rows[self.metadata_columns].iloc[0].to_dict())
        return Well(well_id=well_id, image=image, metadata=metadata)


__all__ = ["PlateFolderWells", "channel_order"]
