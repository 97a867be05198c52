"""Data sources for Phenom (DESIGN §4): wells, not rows, are the unit.

```python
from modeling_phenom import PhenomImageProcessor
from phenom_data import WellDataset, open_wells

processor = PhenomImageProcessor.from_model(model)      # the model owns the view size and the 16-bit rule
wells = open_wells("recursionpharma/rxrx3-core", processor=processor, rank=0, world_size=1)  # any source
for well in wells:        # Well(well_id="compound-001_1_AA15", sites=[Site("1", uint8 [6, 512, 512])], metadata=...)
    ...
wells.stats               # WellStats: yielded, skipped wells and sites by reason, filtered, excluded
dataset = WellDataset(wells, mode="tiles", processor=processor)  # {"well_id", "pixel_values" [4, 6, 256, 256], ...}
```

- `open_wells`, `detect_source` (`sources.py`): the one entry point; every command reads data through it.
- `RxRx3CoreWells` (`rxrx3_core.py`): RxRx3-core parquet shards streamed with `datasets`, each complete well exactly
  once across ranks and DataLoader workers, joined with `metadata_rxrx3_core.csv`.
- `RxRx1Wells` (`rxrx1.py`): the RxRx1 release (a well is its two sites).
- `LoadDataWells` (`load_data.py`): CellProfiler LoadData CSVs (JUMP-CP): sites, channels by name, illumination.
- `PlateFolderWells` (`plate_folder.py`): users' own plates listed in a CSV (well, site, channel, file, metadata).
- `WellDataset`, `collate_views` (`well_dataset.py`): tiles or random crops through `PhenomImageProcessor`.
- `Well`, `Site`, `WellStats`, `read_well_list` (`wells.py`); `annotations/` (`ANNOTATIONS_DIR`): benchmark
  annotations.
"""

from __future__ import annotations

import importlib
from pathlib import Path

ANNOTATIONS_DIR = Path(__file__).parent / "annotations"
# RxRx3-core's compound concentrations (µM; EFAAR's COMPOUND_CONCENTRATIONS); 16 real wells sit at stray values
# (0.002, 0.026, ...), which the RxRx3-core benchmark notebook leaves out of its map.
RXRX3_CORE_CONCENTRATIONS = (0.0025, 0.01, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0)

# Public name -> submodule, imported on first use (PEP 562): light modules such as `phenom_data.atomic` and the
# annotation paths must not pull in torch, datasets and the image stack (commands that only read files start fast).
_EXPORTS = {
    "MetadataTable": "metadata",
    "LoadDataWells": "load_data",
    "PlateFolderWells": "plate_folder",
    "RxRx1Wells": "rxrx1",
    "RxRx3CoreWells": "rxrx3_core",
    "parse_rxrx3_core_key": "rxrx3_core",
    "rxrx3_core_key": "rxrx3_core",
    "rxrx3_core_well_id": "rxrx3_core",
    "detect_source": "sources",
    "open_wells": "sources",
    "WellDataset": "well_dataset",
    "collate_views": "well_dataset",
    "SKIP_REASONS": "wells",
    "Site": "wells",
    "Well": "wells",
    "WellStats": "wells",
    "read_well_list": "wells",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["ANNOTATIONS_DIR", "RXRX3_CORE_CONCENTRATIONS", *sorted(_EXPORTS)]
