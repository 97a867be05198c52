"""Data sources for Phenom (DESIGN §4): wells, not rows, are the unit.

```python
from phenom_data import Well, RxRx3CoreWells, RxRx1Wells, PlateFolderWells, WellDataset, read_well_list

wells = RxRx3CoreWells("recursionpharma/rxrx3-core", rank=0, world_size=1)   # or a local dir in the Hub layout
for well in wells:        # Well(well_id="compound-001_1_AA15", image=uint8 [6, 512, 512], metadata={...})
    ...
wells.stats               # WellStats: yielded, skipped by reason, filtered, ...
dataset = WellDataset(wells, mode="tiles")   # IterableDataset: {"well_id", "pixel_values" uint8 [4, 6, 256, 256]}
```

- `RxRx3CoreWells` (`rxrx3_core.py`): RxRx3-core parquet shards streamed with `datasets`, each complete well exactly
  once across ranks and DataLoader workers, joined with `metadata_rxrx3_core.csv`.
- `RxRx1Wells` (`rxrx1.py`): the RxRx1 release (one item per site, `well_id` = `site_id`).
- `PlateFolderWells` (`plate_folder.py`): users' own plates listed in a CSV (well, channel, file, metadata).
- `WellDataset`, `collate_views` (`well_dataset.py`): tiles or random crops through `PhenomImageProcessor`.
- `Well`, `WellStats`, `read_well_list` (`wells.py`); `annotations/` (`ANNOTATIONS_DIR`): benchmark annotations.
"""

from pathlib import Path

from .metadata import MetadataTable
from .plate_folder import PlateFolderWells
from .rxrx1 import RxRx1Wells
from .rxrx3_core import RxRx3CoreWells, parse_rxrx3_core_key, rxrx3_core_key, rxrx3_core_well_id
from .well_dataset import WellDataset, collate_views
from .wells import SKIP_REASONS, Well, WellStats, read_well_list

ANNOTATIONS_DIR = Path(__file__).parent / "annotations"

__all__ = [
    "ANNOTATIONS_DIR",
    "MetadataTable",
    "PlateFolderWells",
    "RxRx1Wells",
    "RxRx3CoreWells",
    "SKIP_REASONS",
    "Well",
    "WellDataset",
    "WellStats",
    "collate_views",
    "parse_rxrx3_core_key",
    "read_well_list",
    "rxrx3_core_key",
    "rxrx3_core_well_id",
]
