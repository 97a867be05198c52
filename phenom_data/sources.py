"""One data entry point: `open_wells(source, ...)` resolves any data source to its reader (DESIGN §4).

```python
>>> processor = PhenomImageProcessor.from_model("my-model")          # the model's views (one owner: the model)
>>> wells = open_wells("plates/load_data.csv", processor=processor, channels=["DNA", "ER", "RNA", "AGP", "Mito"],
...                    rank=accelerator.process_index, world_size=accelerator.num_processes)
>>> dataset = WellDataset(wells, mode="tiles", processor=processor)
```

Sources, tried in order (each reader module registers itself with `register_source`):

| kind | what `source` is | reader |
| --- | --- | --- |
| `load-data` | a CellProfiler LoadData CSV (`Metadata_Plate`, `Metadata_Well`, `FileName_Orig*`) | `LoadDataWells` |
| `plate-csv` | Phenom's plate CSV (`well_id`, `channel`, `path`, optional `site`) | `PlateFolderWells` |
| `rxrx1` | an RxRx1 release folder (`metadata.csv` with `site_id`) | `RxRx1Wells` |
| `rxrx3-core` | a local folder in RxRx3-core's Hub layout, or a Hub dataset id | `RxRx3CoreWells` |

Options are the reader's keyword arguments (`channels`, `well_list`, `metadata`, `experiments`, ...); `None` means
"not given". An option the chosen reader does not take is an error that names the source kind and what it takes,
raised before anything is read. `exclude` (well ids done already, e.g. by an interrupted `phenom embed`) drops
wells before any of their images is decoded.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from modeling_phenom import PhenomImageProcessor

from .wells import WellSource

# Reader modules, imported on first use; each registers its source kind (`register_source`) when imported.
READER_MODULES = ("load_data", "plate_folder", "rxrx1", "rxrx3_core")


@dataclass(frozen=True)
class SourceKind:
    """A registered kind of data source: `detect(source) -> bool` and the reader class that opens it."""

    name: str
    description: str
    order: int
    detect: Callable[[str], bool]
    reader: type[WellSource]

    @property
    def options(self) -> list[str]:
        """The keyword options the reader takes besides the common ones (`processor`, `rank`, ...)."""
        common = {"self", "processor", "rank", "world_size", "exclude"}
        parameters = list(inspect.signature(self.reader.__init__).parameters.values())[2:]  # self, the source
        return [parameter.name for parameter in parameters if parameter.name not in common]


_KINDS: dict[str, SourceKind] = {}


def register_source(name: str, description: str, order: int, detect: Callable[[str], bool]):
    """Class decorator of a reader: sources for which `detect(source)` is true open with `reader(source, ...)`;
    kinds are tried by increasing `order`."""

    def decorate(reader: type[WellSource]) -> type[WellSource]:
        _KINDS[name] = SourceKind(name, description, order, detect, reader)
        return reader

    return decorate


def source_kinds() -> list[SourceKind]:
    """Every registered kind, in the order they are tried."""
    for module in READER_MODULES:
        importlib.import_module(f".{module}", __package__)
    return sorted(_KINDS.values(), key=lambda kind: kind.order)


def detect_source(source: str | os.PathLike) -> SourceKind:
    """The kind of `source`, from its files (only headers are read); raises `FileNotFoundError` for a path that
    does not exist and is not a Hub id, `ValueError` for a file or folder no reader recognizes."""
    text = str(source)
    kinds = source_kinds()
    for kind in kinds:
        if kind.detect(text):
            return kind
    if not Path(text).exists():
        raise FileNotFoundError(f"data source {text} is neither a local directory nor a Hub dataset repo id "
                                "(owner/name), nor a CSV file: it does not exist")
    described = "; ".join(f"{kind.name}: {kind.description}" for kind in kinds)
    raise ValueError(f"data source {text} is none of the kinds Phenom reads ({described})")


def open_wells(
    source: str | os.PathLike,
    *,
    processor: PhenomImageProcessor,
    rank: int = 0,
    world_size: int = 1,
    exclude: Iterable[str] | None = None,
    **options,
) -> WellSource:
    """The wells of `source`, whatever its kind (module docstring).

    Args:
        source: a LoadData CSV, a plate CSV, an RxRx1 release folder, an RxRx3-core folder or Hub dataset id.
        processor: the model's `PhenomImageProcessor`: its 16-bit rule converts images, its crop size is the
            smallest field a site may have (pass the same one to `WellDataset`).
        rank, world_size: this process's share (accelerate's `process_index`, `num_processes`).
        exclude: well ids to leave out before any of their images is decoded (done already).
        options: reader options (`channels`, `well_list`, `metadata`, `experiments`, `perturbation_types`,
            `revision`, `root`, ...); `None` values are ignored.
    """
    kind = detect_source(source)
    given = {name: value for name, value in options.items() if value is not None}
    unknown = sorted(set(given) - set(kind.options))
    if unknown:
        raise ValueError(f"option(s) {', '.join(unknown)} do not apply to {source} ({kind.name}: "
                         f"{kind.description}); it takes {', '.join(kind.options)}")
    return kind.reader(str(source), processor=processor, rank=rank, world_size=world_size, exclude=exclude,
                       **given)


__all__ = ["READER_MODULES", "SourceKind", "detect_source", "open_wells", "register_source", "source_kinds"]
