"""RxRx1 sites as `Well`s, from the official release layout (paper.md §7.2, rxrx-datasets `rxrx1/README.md`).

Layout: `<root>/metadata.csv` (`site_id, well_id, cell_type, dataset, experiment, plate, well, site, well_type,
sirna, sirna_id`) and `<root>/images/{experiment}/Plate{plate}/{well}_s{site}_w{channel}.png` (the `images/`
level may be absent), six 8-bit 512 x 512 PNG channels per site, two sites per well.

Each RxRx1 **site** is one item: its `Well.well_id` is the metadata's `site_id` (`HEPG2-01_1_B02_1` =
`{experiment}_{plate}_{well}_{site}`), and the RxRx1 well id (`HEPG2-01_1_B02`) stays in `metadata["well_id"]`, so
per-well results average the sites that share it. Sites are split between ranks and DataLoader workers in
contiguous blocks of the metadata's rows: each site exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from modeling_phenom import PhenomImageProcessor

from .metadata import MetadataTable
from .paths import UnsafePathError, safe_component
from .wells import (
    CORRUPT_IMAGE,
    MISSING_CHANNEL,
    ImageError,
    SkipLog,
    Well,
    WellSource,
    as_name_set,
    as_well_set,
    contiguous_range,
    load_image,
    stack_channels,
)

RXRX1_CHANNELS = (1, 2, 3, 4, 5, 6)
REQUIRED_COLUMNS = ("site_id", "well_id", "experiment", "plate", "well", "site")


class RxRx1Wells(WellSource):
    """RxRx1 sites (one `Well` each, `well_id` = `site_id`).

    Args:
        root: the extracted release: `metadata.csv` and `images/` (or the experiment folders directly).
        metadata: path of the metadata CSV; defaults to `<root>/metadata.csv`.
        experiments: keep only these experiments (`HEPG2-01`, ...).
        split: keep only the `dataset` split `"train"` or `"test"`.
        sites: keep only these site numbers (1, 2).
        well_list: a well-list file or iterable; an entry keeps a site when it equals its `site_id` or its RxRx1
            `well_id` (both sites).
        rank, world_size: this process's share.
        processor: the `PhenomImageProcessor` whose 16-bit rule converts non-8-bit images.
    """

    source_name = "RxRx1"

    def __init__(
        self,
        root: str | os.PathLike,
        metadata: str | os.PathLike | None = None,
        experiments: str | Iterable[str] | None = None,
        split: str | None = None,
        sites: Iterable[int] | None = None,
        well_list: str | os.PathLike | Iterable[str] | None = None,
        rank: int = 0,
        world_size: int = 1,
        processor: PhenomImageProcessor | None = None,
    ):
        super().__init__(rank=rank, world_size=world_size)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"RxRx1 root {root} is not a directory")
        self.image_root = self.root / "images" if (self.root / "images").is_dir() else self.root
        self.metadata = MetadataTable.read_csv(metadata or self.root / "metadata.csv", id_column="site_id")
        for column in REQUIRED_COLUMNS:
            self.metadata.require_column(column, "to locate RxRx1 images")
        if split is not None and split not in ("train", "test"):
            raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
        frame = self.metadata.frame
        keep = frame["site_id"].notna()
        if experiments is not None:
            keep &= frame["experiment"].astype(str).isin(list(as_name_set(experiments, "experiments")))
        if split is not None:
            self.metadata.require_column("dataset", "to select a split")
            keep &= frame["dataset"].astype(str) == split
        if sites is not None:
            keep &= frame["site"].astype(int).isin([int(site) for site in sites])
        well_set = as_well_set(well_list)
        if well_set is not None:
            keep &= frame["site_id"].isin(well_set) | frame["well_id"].astype(str).isin(well_set)
        self.site_ids = frame.loc[keep, "site_id"].tolist()
        self.filtered = int((~keep).sum())
        self.processor = processor or PhenomImageProcessor()

    def image_path(self, row: dict, channel: int) -> Path:
        """`images/{experiment}/Plate{plate}/{well}_s{site}_w{channel}.png` of one metadata row. The parts come from
        the metadata CSV, so each is one file-name component (`phenom_data.paths.safe_component`): a crafted
        `experiment` such as `../../etc` cannot name a file outside `images/`."""
        return (
            self.image_root
            / safe_component(row["experiment"], what="experiment")
            / safe_component(f"Plate{row['plate']}", what="plate")
            / safe_component(f"{row['well']}_s{row['site']}_w{channel}.png", what="well")
        )

    def __len__(self) -> int:
        """Sites selected by the filters (all parts together)."""
        return len(self.site_ids)

    def _iter_part(self, part: int, num_parts: int, skips: SkipLog) -> Iterator[Well]:
        if num_parts == 1:
            self.stats.filtered = self.filtered
            self.stats.metadata_without_images = 0
        for index in contiguous_range(len(self.site_ids), part, num_parts):
            site_id = self.site_ids[index]
            row = self.metadata.row(site_id)
            channels, missing = [], []
            for channel in RXRX1_CHANNELS:
                try:
                    channels.append(load_image(self.image_path(row, channel)))
                except FileNotFoundError:
                    missing.append(channel)
                except (ImageError, UnsafePathError) as error:
                    skips.skip(site_id, CORRUPT_IMAGE, f"channel {channel}: {error}")
                    break
            else:
                if missing:
                    skips.skip(site_id, MISSING_CHANNEL, f"no image for channel(s) {missing}")
                    if len(missing) == len(RXRX1_CHANNELS) and num_parts == 1:
                        self.stats.metadata_without_images += 1
                    continue
                image = stack_channels(site_id, channels, self.processor, skips)
                if image is not None:
                    self.stats.yielded += 1
                    yield Well(well_id=site_id, image=image, metadata=row)


__all__ = ["RXRX1_CHANNELS", "RxRx1Wells"]
