"""RxRx1 wells, from the official release layout (paper.md §7.2, rxrx-datasets `rxrx1/README.md`).

Layout: `<root>/metadata.csv` (`site_id, well_id, cell_type, dataset, experiment, plate, well, site, well_type,
sirna, sirna_id`) and `<root>/images/{experiment}/Plate{plate}/{well}_s{site}_w{channel}.png` (the `images/`
level may be absent), six 8-bit 512 x 512 PNG channels per site, two sites per well.

A `Well` is an RxRx1 well (`well_id` = the metadata's `well_id`, `HEPG2-01_1_B02` = `{experiment}_{plate}_{well}`)
with its sites (`1`, `2`), each four 256 px tiles; `phenom embed --per-site` keeps one row per site. The well's
metadata is the metadata row without its site columns (`site_id`, `site`). Wells are read as
`phenom_data.image_files.ImageFileWells` reads them: sorted by `well_id`, split between ranks and DataLoader workers
in contiguous blocks; a site with a missing or broken image is skipped and counted, the well keeps its other site.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from modeling_phenom import PhenomImageProcessor

from .image_files import ChannelFile, FileResolver, ImageFileWells, SiteFiles, WellFiles, constant_columns, csv_header
from .metadata import MetadataTable
from .sources import register_source
from .wells import as_name_set, as_well_set, metadata_row, rxrx_channel_name, rxrx_channel_numbers

RXRX1_CHANNELS = (1, 2, 3, 4, 5, 6)
REQUIRED_COLUMNS = ("site_id", "well_id", "experiment", "plate", "well", "site")
METADATA_FILENAME = "metadata.csv"


def is_rxrx1_release(source: str | os.PathLike) -> bool:
    """A folder in the RxRx1 release layout: `metadata.csv` with a `site_id` column, no RxRx3-core metadata."""
    folder = Path(source)
    if not (folder / METADATA_FILENAME).is_file() or (folder / "metadata_rxrx3_core.csv").is_file():
        return False
    return "site_id" in (csv_header(folder / METADATA_FILENAME) or [])


@register_source("rxrx1", "an RxRx1 release folder (metadata.csv with site_id, images/{experiment}/Plate{p}/...)",
                 order=30, detect=is_rxrx1_release)
class RxRx1Wells(ImageFileWells):
    """RxRx1 wells, each with its sites (module docstring).

    Args:
        root: the extracted release: `metadata.csv` and `images/` (or the experiment folders directly).
        metadata: path of the metadata CSV; defaults to `<root>/metadata.csv`.
        experiments: keep only these experiments (`HEPG2-01`, ...).
        split: keep only the `dataset` split `"train"` or `"test"`.
        sites: keep only these site numbers (1, 2).
        well_list: a well-list file or iterable; an entry keeps a site when it equals its `site_id` or its RxRx1
            `well_id` (both sites).
        channels: channels to stack, in order: numbers 1..6 or RxRx names (`nuclei`, `er`, ...); default all six.
        rank, world_size, processor, exclude: as `ImageFileWells` takes them (this process's share, the model's
            image processor, well ids done already).
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
        channels: Sequence[str | int] | None = None,
        rank: int = 0,
        world_size: int = 1,
        processor: PhenomImageProcessor | None = None,
        exclude: Iterable[str] | None = None,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"RxRx1 root {root} is not a directory")
        self.image_root = self.root / "images" if (self.root / "images").is_dir() else self.root
        self.metadata = MetadataTable.read_csv(metadata or self.root / METADATA_FILENAME, id_column="site_id")
        for column in REQUIRED_COLUMNS:
            self.metadata.require_column(column, "to locate RxRx1 images")
        if split is not None and split not in ("train", "test"):
            raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
        numbers = rxrx_channel_numbers(channels, len(RXRX1_CHANNELS))
        frame = self.metadata.frame
        keep = frame["site_id"].notna() & frame["well_id"].notna()
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
        kept = frame[keep]
        filtered = len(set(frame.loc[~keep, "well_id"].astype(str)) - set(kept["well_id"].astype(str)))
        well_ids = kept["well_id"].astype(str)
        columns = constant_columns(kept, well_ids, [column for column in kept.columns if column not in ("site_id",
                                                                                                        "site")])
        resolver = FileResolver(self.image_root)
        wells: dict[str, WellFiles] = {}
        for row in sorted(kept.to_dict("records"), key=lambda row: (str(row["well_id"]), int(row["site"]))):
            folder = f"{row['experiment']}/Plate{row['plate']}"
            files = {
                rxrx_channel_name(channel): ChannelFile(resolver.file(
                    f"{row['well']}_s{row['site']}_w{channel}.png", folder, what=f"site {row['site_id']}: image"))
                for channel in numbers
            }
            well_id = str(row["well_id"])
            well = wells.setdefault(well_id, WellFiles(well_id, [], metadata_row({c: row[c] for c in columns})))
            well.sites.append(SiteFiles(str(row["site"]), files))
        super().__init__(wells.values(), [rxrx_channel_name(channel) for channel in numbers],
                         processor, rank=rank, world_size=world_size, exclude=exclude,
                         filtered=filtered)


__all__ = ["RXRX1_CHANNELS", "RxRx1Wells", "is_rxrx1_release"]
