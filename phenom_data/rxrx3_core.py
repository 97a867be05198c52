"""RxRx3-core wells streamed with `datasets` from the Hub (`recursionpharma/rxrx3-core`) or a local copy of its
layout (DESIGN §4, paper.md §7.1).

Layout: `<source>/data/train-000NN-of-000MM.parquet` with columns `__key__` (string,
`{experiment}/Plate{plate}/{address}_s1_{channel}`, channel 1..6) and `jp2` (an HF `Image` feature, stored as a
struct of `bytes` and `path`; a plain binary column works too): one 8-bit 512 x 512 JPEG-2000 channel per row,
six rows per well; plus `<source>/metadata_rxrx3_core.csv`, joined on `well_id` = `{experiment}_{plate}_{address}`.

```python
>>> wells = RxRx3CoreWells("recursionpharma/rxrx3-core", experiments=["compound-001"],
...                        rank=accelerator.process_index, world_size=accelerator.num_processes)
>>> for well in wells:            # each complete well exactly once across ranks and DataLoader workers
...     well.well_id, well.image.shape, well.metadata["treatment"]     # 'compound-001_1_AA15', (6, 512, 512), ...
>>> wells.stats.summary()         # 'yielded ... wells, skipped ... (corrupt_image ..., missing_channel ...)'
```

How wells are split between processes and DataLoader workers, exactly once. The parquet row groups of all files,
in file order, form one sequence of units (`IterableDataset.reshard()`: one shard per row group); part `p` of `P`
(`P` = world_size x DataLoader workers, ranks outermost) owns a contiguous block of units and reads only those
rows, plus two small windows at the edges:

- a well belongs to the part whose block holds its first row in file order;
- before its block, a part reads the keys (only that column) of at least `boundary_rows` rows; wells seen there
  started earlier and belong to an earlier part, which completes them;
- after its block, a part reads on (at most `boundary_rows` rows, and only while some of its wells are
  incomplete) to complete wells whose rows straddle the block's end, e.g. a well split between two files.

Every well therefore has exactly one owner, whatever the row order, and is assembled from its six rows by key; a
part never reads another part's block beyond those windows. The windows assume that a well whose rows straddle a
block edge (a file or row-group boundary) keeps them within `boundary_rows` rows of that edge, as files that store
a well's rows together do (rows may be shuffled anywhere inside a block). Beyond it a well's rows are not
gathered and it is counted as incomplete (`missing_channel`); it is never emitted twice nor stacked wrongly.

`datasets.distributed.split_dataset_by_node` is not used: it deals whole files to ranks (or, when the file count is
not a multiple of the world size, every rank reads every file and keeps one row in `world_size`), which would cut
wells apart; DataLoader workers likewise get whole files from `datasets`. Rows are read with
`IterableDataset.iter()`, which leaves the split between workers to this reader.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from modeling_phenom import PhenomImageProcessor

from .atomic import atomic_path
from .metadata import MetadataTable
from .paths import UnsafePathError, resolve_inside
from .sources import register_source
from .wells import (
    CORRUPT_IMAGE,
    DUPLICATE_CHANNEL,
    MISSING_CHANNEL,
    NO_METADATA,
    ImageError,
    SiteError,
    SkipLog,
    Well,
    WellSource,
    as_name_set,
    as_well_set,
    contiguous_range,
    decode_image,
    rxrx_channel_name,
    rxrx_channel_numbers,
    stack_channels,
)

HUB_REPO_ID = "recursionpharma/rxrx3-core"
DATA_FILES = "data/train-*.parquet"
METADATA_FILENAME = "metadata_rxrx3_core.csv"
KEY_COLUMN = "__key__"
IMAGE_COLUMN = "jp2"
NUM_CHANNELS = 6
# Rows read past a block's edges (see the module docstring); a well's six rows normally sit together, so the window
# is only used in full for a well that really lacks a channel at the very end of a block.
BOUNDARY_ROWS = 1024
READ_BATCH_ROWS = 256

KEY_PATTERN = re.compile(
    r"^(?P<experiment>[^/]+)/Plate(?P<plate>[^/]+)/(?P<address>[^/_]+)_s(?P<site>\d+)_(?P<channel>\d+)$"
)

# Outcomes of a well this part owns, other than "still collecting rows".
_DONE, _DROPPED = "done", "dropped"


def rxrx3_core_key(experiment: str, plate: int | str, address: str, channel: int, site: int = 1) -> str:
    """The `__key__` of one channel image: `{experiment}/Plate{plate}/{address}_s{site}_{channel}`."""
    return f"{experiment}/Plate{plate}/{address}_s{site}_{channel}"


def rxrx3_core_well_id(experiment: str, plate: int | str, address: str, site: int | str = 1) -> str:
    """`{experiment}_{plate}_{address}`, the metadata's `well_id`; a site other than 1 (RxRx3-core has only s1)
    is appended as `_{site}`, RxRx1's `site_id` convention, so two sites never merge."""
    well_id = f"{experiment}_{plate}_{address}"
    return well_id if str(site) == "1" else f"{well_id}_{site}"


def looks_like_repo_id(source: str) -> bool:
    """`owner/name` (or `name`) that huggingface_hub's own validator accepts, and not a local path (`./data`,
    `/data/x` or an existing `data/x`)."""
    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return not Path(source).exists()


def is_rxrx3_core_source(source: str | os.PathLike) -> bool:
    """A local folder with RxRx3-core's parquet shards (`data/train-*.parquet`) or its metadata CSV, or a Hub
    dataset id (`owner/name`, not a local path)."""
    folder = Path(source)
    if folder.is_dir():
        return (folder / METADATA_FILENAME).is_file() or any(folder.glob(DATA_FILES))
    return looks_like_repo_id(str(source))


def parse_rxrx3_core_key(key: str) -> tuple[str, str, int] | None:
    """`__key__` -> `(well_id, experiment, channel)`, or None when it does not follow the key format."""
    match = KEY_PATTERN.match(key) if isinstance(key, str) else None
    if match is None:
        return None
    well_id = rxrx3_core_well_id(match["experiment"], match["plate"], match["address"], match["site"])
    return well_id, match["experiment"], int(match["channel"])


def _image_file_bytes(path: str, root: str | None) -> bytes | ImageError | None:
    """The bytes of an `Image` feature's `path` (a row without bytes): only a file inside the local dataset folder
    `root` (relative to it) is read; any other path is an `ImageError` (the row's well is skipped as corrupt), so a
    dataset cannot make the reader open, or echo the first bytes of, a file it does not contain."""
    if root is None:
        return ImageError(f"image path {path!r} without bytes in a Hub dataset: only files of a local dataset folder "
                          "are read")
    try:
        file = resolve_inside(root, path, what="image path")
    except UnsafePathError as error:
        return ImageError(str(error))
    return file.read_bytes() if file.is_file() else None


def _image_bytes(column: pa.ChunkedArray, column_name: str, root: str | None = None) -> list:
    """The encoded bytes of every row: an `Image` feature's `bytes` field (or the file its `path` names inside the
    local dataset folder `root`: `_image_file_bytes`), or a binary column."""
    array = column.combine_chunks()
    if pa.types.is_struct(array.type):
        names = [array.type.field(index).name for index in range(array.type.num_fields)]
        if "bytes" not in names:
            raise ValueError(f"column {column_name!r} is a struct without a 'bytes' field: {array.type}")
        data = array.field("bytes").to_pylist()
        paths = array.field("path").to_pylist() if "path" in names else [None] * len(data)
        return [value if value is not None or not path else _image_file_bytes(path, root)
                for value, path in zip(data, paths, strict=True)]
    if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
        return array.to_pylist()
    raise ValueError(
        f"column {column_name!r} has type {array.type}; expected an Image feature (struct of bytes and path) or binary"
    )


def shard_filename(index: int, count: int) -> str:
    """`data/train-000NN-of-000MM.parquet`, the Hub's shard name (relative to the dataset directory)."""
    return f"data/train-{index:05d}-of-{count:05d}.parquet"


def write_rxrx3_core_shard(
    path: str | os.PathLike,
    keys: Sequence[str],
    images: Sequence[bytes],
    row_group_size: int = 100,
    binary: bool = False,
) -> Path:
    """Write one parquet shard in the Hub's schema with `datasets`: `__key__` string and `jp2` an `Image` feature
    (a struct of `bytes` and `path`), or a plain binary `jp2` column with `binary=True`. The file appears
    atomically (temporary name, then rename).

    Args:
        path: the shard file (e.g. `<dir>/` + `shard_filename(0, 3)`).
        keys: `__key__` of each row (`rxrx3_core_key(...)`).
        images: encoded single-channel image bytes of each row (JPEG-2000 for RxRx3-core).
        row_group_size: rows per parquet row group (the unit readers split work by).
    """
    import datasets

    if len(keys) != len(images):
        raise ValueError(f"{len(keys)} keys but {len(images)} images")
    image_feature = datasets.Value("binary") if binary else datasets.Image()
    features = datasets.Features({KEY_COLUMN: datasets.Value("string"), IMAGE_COLUMN: image_feature})
    values = list(images) if binary else [{"bytes": data, "path": None} for data in images]
    table = datasets.Dataset.from_dict({KEY_COLUMN: list(keys), IMAGE_COLUMN: values}, features=features)
    with atomic_path(path) as temporary:
        # The arrow schema carries the `datasets` features (the Image feature) in its metadata, as on the Hub.
        pq.write_table(table.data.table, temporary, row_group_size=row_group_size)
    return Path(path)


@register_source("rxrx3-core", "a folder in RxRx3-core's Hub layout (data/train-*.parquet with __key__ and jp2, "
                 "metadata_rxrx3_core.csv) or a Hub dataset id", order=40, detect=is_rxrx3_core_source)
class RxRx3CoreWells(WellSource):
    """Wells of RxRx3-core (or of anything written in its schema, e.g. `phenom synth`) as `Well`s.

    Args:
        source: a Hub dataset repo id (`"recursionpharma/rxrx3-core"`) or a local directory in the same layout.
        metadata: path of the metadata CSV; None takes `metadata_rxrx3_core.csv` from `source` (a local directory
            without one gives wells with empty metadata); False joins no metadata.
        experiments: keep only these experiments (e.g. `["compound-001"]`).
        perturbation_types: keep only wells whose metadata `perturbation_type` is one of these (needs metadata).
        well_list: a well-list file (one `well_id` per line) or an iterable of well ids to keep.
        rank, world_size: this process's share (accelerate's `process_index`, `num_processes`).
        revision, cache_dir, token: passed to `datasets.load_dataset` and `huggingface_hub.hf_hub_download`.
        num_channels: channels per well (keys carry channels 1..num_channels).
        boundary_rows: rows read past each edge of a part's block (module docstring).
        data_files: the parquet files inside `source`.
        processor: the model's `PhenomImageProcessor` (16-bit rule, crop size); None: the default 16-bit rule and no
            check of the field size.
        channels: channels to stack, in order: numbers 1..num_channels or RxRx names (`nuclei`, `er`, ...); only
            those are decoded. Default: all, 1..num_channels.
        exclude: well ids to leave out (done already): their rows are read, their images never decoded.

    Wells missing from the metadata (when there is metadata) are skipped as `no_metadata`; `stats` holds the
    counts of the last pass.
    """

    source_name = "RxRx3-core"

    def __init__(
        self,
        source: str | os.PathLike = HUB_REPO_ID,
        metadata: str | os.PathLike | bool | None = None,
        experiments: str | Iterable[str] | None = None,
        perturbation_types: str | Iterable[str] | None = None,
        well_list: str | os.PathLike | Iterable[str] | None = None,
        rank: int = 0,
        world_size: int = 1,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
        num_channels: int = NUM_CHANNELS,
        boundary_rows: int = BOUNDARY_ROWS,
        data_files: str = DATA_FILES,
        processor: PhenomImageProcessor | None = None,
        channels: Sequence[str | int] | None = None,
        exclude: Iterable[str] | None = None,
    ):
        super().__init__(rank=rank, world_size=world_size)
        if not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"num_channels must be a positive integer, got {num_channels!r}")
        if not isinstance(boundary_rows, int) or boundary_rows < 0:
            raise ValueError(f"boundary_rows must be a non-negative integer, got {boundary_rows!r}")
        self.source = str(source)
        self.is_local = Path(source).is_dir()
        if not self.is_local and not looks_like_repo_id(self.source):
            raise FileNotFoundError(f"{source} is neither a local directory nor a Hub dataset repo id (owner/name)")
        self.hub_kwargs = {"revision": revision, "cache_dir": cache_dir, "token": token}
        self.num_channels = num_channels
        self.boundary_rows = boundary_rows
        self.data_files = data_files
        self.processor = processor
        self.channels = rxrx_channel_numbers(channels, num_channels)
        self.channel_names = [rxrx_channel_name(channel) for channel in self.channels]
        self.exclude = frozenset(exclude or ())
        self.experiments = as_name_set(experiments, "experiments")
        self.perturbation_types = as_name_set(perturbation_types, "perturbation_types")
        self.well_list = as_well_set(well_list)
        self.metadata = self._load_metadata(metadata)
        if self.perturbation_types is not None:
            if self.metadata is None:
                raise ValueError("perturbation_types needs the metadata CSV (its perturbation_type column)")
            self.metadata.require_column("perturbation_type", "by perturbation_types")
        self.dataset = self._load(columns=None)
        self._key_dataset = None

    # ------------------------------------------------------------------ loading
    def _load(self, columns: list[str] | None):
        """The streaming `IterableDataset` of the parquet files (only `columns` when given)."""
        import datasets

        kwargs = {key: value for key, value in self.hub_kwargs.items() if value is not None}
        if self.is_local:
            kwargs.pop("revision", None)
            matched = sorted(Path(self.source).glob(self.data_files))
            if not matched:
                raise FileNotFoundError(f"no parquet files match {self.data_files!r} in {self.source}")
        dataset = datasets.load_dataset(
            self.source,
            data_files={"train": self.data_files},
            split="train",
            streaming=True,
            columns=columns,
            **kwargs,
        )
        missing = {KEY_COLUMN, IMAGE_COLUMN} - set(dataset.column_names or []) if columns is None else set()
        if missing:
            raise ValueError(
                f"{self.source} parquet files lack the column(s) {sorted(missing)}; RxRx3-core rows have "
                f"{KEY_COLUMN!r} and {IMAGE_COLUMN!r}, got {dataset.column_names}"
            )
        return dataset

    def _load_metadata(self, metadata) -> MetadataTable | None:
        if metadata is False:
            return None
        if metadata is True or metadata is None:
            if self.is_local:
                path = Path(self.source) / METADATA_FILENAME
                if not path.is_file():
                    if metadata is True:
                        raise FileNotFoundError(f"{self.source} has no {METADATA_FILENAME}")
                    return None
            else:
                from huggingface_hub import hf_hub_download

                path = hf_hub_download(self.source, METADATA_FILENAME, repo_type="dataset", **self.hub_kwargs)
            metadata = path
        return MetadataTable.read_csv(metadata, id_column="well_id")

    # ------------------------------------------------------------------ selection
    def _screen(self, well_id: str, experiment: str) -> str | None:
        """Why a newly seen well is not collected: "filtered", "excluded", NO_METADATA, or None to collect it."""
        if well_id in self.exclude:
            return "excluded"
        if self.experiments is not None and experiment not in self.experiments:
            return "filtered"
        if self.well_list is not None and well_id not in self.well_list:
            return "filtered"
        if self.metadata is not None:
            if well_id not in self.metadata:
                return NO_METADATA
            if self.perturbation_types is not None:
                if str(self.metadata.value(well_id, "perturbation_type")) not in self.perturbation_types:
                    return "filtered"
        return None

    def _selected_metadata_ids(self):
        ids = self.metadata.ids_where(
            {"experiment_name": self.experiments, "perturbation_type": self.perturbation_types}
        )
        return [well_id for well_id in ids if self.well_list is None or well_id in self.well_list]

    # ------------------------------------------------------------------ reading
    def _rows(self, dataset) -> Iterator[tuple[str, bytes | None]]:
        """`(key, image bytes)` of every row of a (sharded) stream, in file order."""
        for table in dataset.with_format("arrow").iter(batch_size=READ_BATCH_ROWS):
            keys = table.column(KEY_COLUMN).to_pylist()
            root = self.source if self.is_local else None
            yield from zip(keys, _image_bytes(table.column(IMAGE_COLUMN), IMAGE_COLUMN, root), strict=True)

    def _keys(self, dataset) -> Iterator[str]:
        for table in dataset.with_format("arrow").iter(batch_size=READ_BATCH_ROWS):
            yield from table.column(KEY_COLUMN).to_pylist()

    def _earlier_well_ids(self, start_unit: int, num_units: int) -> set[str]:
        """Well ids among (at least) the `boundary_rows` rows before unit `start_unit`, from their keys only."""
        if start_unit == 0 or self.boundary_rows == 0:
            return set()
        if self._key_dataset is None:
            self._key_dataset = self._load(columns=[KEY_COLUMN]).reshard()
        if self._key_dataset.num_shards != num_units:
            raise RuntimeError(f"key-only stream has {self._key_dataset.num_shards} row groups, not {num_units}")
        well_ids, rows = set(), 0
        for unit in range(start_unit - 1, -1, -1):
            for key in self._keys(self._key_dataset.shard(num_units, unit)):
                parsed = parse_rxrx3_core_key(key)
                if parsed is not None:
                    well_ids.add(parsed[0])
                rows += 1
            if rows >= self.boundary_rows:
                break
        return well_ids

    def _iter_part(self, part: int, num_parts: int, skips: SkipLog) -> Iterator[Well]:
        units = self.dataset.reshard()
        num_units = units.num_shards
        block = contiguous_range(num_units, part, num_parts)
        if not block:
            if num_parts == 1 and self.metadata is not None:
                self.stats.metadata_without_images = len(self._selected_metadata_ids())
            return
        earlier = self._earlier_well_ids(block.start, num_units)
        pending: dict[str, dict[int, bytes | None]] = {}
        outcome: dict[str, str] = {}

        def add(key: str, data: bytes | None, in_block: bool) -> Well | None:
            parsed = parse_rxrx3_core_key(key)
            if parsed is None:
                if in_block:
                    skips.bad_row("bad_key", f"key {key!r} is not {{experiment}}/Plate{{p}}/{{address}}_s1_{{c}}")
                return None
            well_id, experiment, channel = parsed
            if well_id in outcome:
                if outcome[well_id] == _DONE:
                    skips.bad_row("row_of_complete_well", f"{key!r} arrived after well {well_id} was complete")
                return None
            if well_id not in pending:
                # Past the block only wells already started inside it are ours; before it, `earlier` ones are not.
                if not in_block or well_id in earlier:
                    return None
                reason = self._screen(well_id, experiment)
                if reason is not None:
                    outcome[well_id] = _DROPPED
                    if reason == "filtered":
                        self.stats.filtered += 1
                    elif reason == "excluded":
                        self.stats.excluded += 1
                    else:
                        skips.skip(well_id, reason, "no row in the metadata")
                    return None
                pending[well_id] = {}
            if not 1 <= channel <= self.num_channels:
                skips.bad_row("unknown_channel", f"key {key!r}: channel {channel} is not in 1..{self.num_channels}")
                return None
            channels = pending[well_id]
            if channel in channels:
                del pending[well_id]
                outcome[well_id] = _DROPPED
                skips.skip(well_id, DUPLICATE_CHANNEL, f"two rows for channel {channel} ({key!r})")
                return None
            channels[channel] = data
            if len(channels) < self.num_channels:
                return None
            del pending[well_id]
            outcome[well_id] = _DONE
            return self._build(well_id, channels, skips)

        # One shard call for the whole block: each call costs time in proportion to the number of row groups.
        block_units = units.shard(num_parts, part, contiguous=True) if num_parts <= num_units else units.shard(
            num_units, block.start
        )
        if block_units.num_shards != len(block):
            raise RuntimeError(f"datasets gave {block_units.num_shards} row groups for a block of {len(block)}")
        for key, data in self._rows(block_units):
            well = add(key, data, in_block=True)
            if well is not None:
                self.stats.yielded += 1
                yield well
        rows_past_block = 0
        for unit in range(block.stop, num_units):
            if not pending or rows_past_block >= self.boundary_rows:
                break
            for key, data in self._rows(units.shard(num_units, unit)):
                well = add(key, data, in_block=False)
                if well is not None:
                    self.stats.yielded += 1
                    yield well
                rows_past_block += 1
                if not pending or rows_past_block >= self.boundary_rows:
                    break
        for well_id, channels in pending.items():
            missing = sorted(set(range(1, self.num_channels + 1)) - set(channels))
            skips.skip(well_id, MISSING_CHANNEL, f"no image for channel(s) {missing}")
            outcome[well_id] = _DROPPED
        if num_parts == 1 and self.metadata is not None:
            self.stats.metadata_without_images = sum(
                1 for well_id in self._selected_metadata_ids() if well_id not in outcome
            )

    def _build(self, well_id: str, channels: dict[int, bytes | None], skips: SkipLog) -> Well | None:
        """Decode the chosen channels in order and stack them; None (counted) when one does not decode."""
        decoded = []
        for channel in self.channels:
            try:
                data = channels[channel]
                if isinstance(data, ImageError):  # an image path the reader refused to open
                    raise data
                decoded.append(decode_image(data))
            except ImageError as error:
                skips.skip(well_id, CORRUPT_IMAGE, f"channel {channel}: {error}")
                return None
        try:
            image = stack_channels(decoded, self.processor)
        except SiteError as error:
            skips.skip(well_id, error.reason, error.detail)
            return None
        metadata = self.metadata.row(well_id) if self.metadata is not None else {}
        return Well.single(well_id, image, metadata)


__all__ = [
    "HUB_REPO_ID",
    "METADATA_FILENAME",
    "RxRx3CoreWells",
    "is_rxrx3_core_source",
    "parse_rxrx3_core_key",
    "rxrx3_core_key",
    "rxrx3_core_well_id",
    "shard_filename",
    "write_rxrx3_core_shard",
]
