"""The embeddings file contract (DESIGN §6) and its join with the well metadata.

An embeddings file has the layout of Recursion's `OpenPhenom_rxrx3_core_embeddings.parquet`: a `well_id` column and
`feature_0 ... feature_{D-1}` (float32), one row per well. `phenom embed --per-site` adds a `site` column after
`well_id` and writes one row per site (such a file repeats well ids: `phenom eval --merge-duplicate-wells` averages
them). `phenom embed` writes one such file per block
(`<name>_block<k>.parquet` when several blocks are written) and records where the embeddings came from (model,
dataset, block) as JSON under the parquet schema-metadata key `phenom`; files without it (the official one) are read
the same way. Metadata stays in the metadata CSV (`metadata_rxrx3_core.csv` schema) and is joined on `well_id`.

Bad input is refused with the reason: missing or misnamed feature columns, non-finite values (naming the wells),
duplicated `well_id`s, and wells that the metadata does not describe.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phenom_data.atomic import atomic_path

WELL_ID_COLUMN = "well_id"
SITE_COLUMN = "site"
FEATURE_PREFIX = "feature_"
PROVENANCE_KEY = b"phenom"
_BLOCK_SUFFIX = re.compile(r"^(?P<name>.+)_block(?P<block>\d+)$")


@dataclass
class WellEmbeddings:
    """The rows of one embeddings file.

    Args:
        well_ids: `[num_wells]` object array of well ids, in file order.
        features: `[num_wells, hidden_size]` float32 embeddings.
        provenance: what `phenom embed` recorded (`model`, `dataset`, `block`, ...); empty for other files.
        merged_rows: rows folded into another row of the same well by `merge_duplicates` (0 otherwise).
    """

    well_ids: np.ndarray
    features: np.ndarray
    provenance: dict = field(default_factory=dict)
    merged_rows: int = 0

    @property
    def num_wells(self) -> int:
        return len(self.well_ids)


def block_from_path(path: str | os.PathLike) -> tuple[str, int | None]:
    """`(name, block)` from a file named `<name>_block<k>.parquet`; `(stem, None)` for any other name."""
    stem = Path(path).name.removesuffix(".parquet")
    match = _BLOCK_SUFFIX.match(stem)
    return (match["name"], int(match["block"])) if match else (stem, None)


def feature_columns(hidden_size: int) -> list[str]:
    return [f"{FEATURE_PREFIX}{index}" for index in range(hidden_size)]


def _check_layout(columns: list[str], path: Path) -> list[str]:
    if WELL_ID_COLUMN not in columns:
        raise ValueError(f"{path}: no '{WELL_ID_COLUMN}' column; an embeddings file has '{WELL_ID_COLUMN}' and "
                         f"'{FEATURE_PREFIX}0 ... {FEATURE_PREFIX}{{D-1}}' (the OpenPhenom embeddings layout)")
    found = [name for name in columns if name.startswith(FEATURE_PREFIX)]
    if not found:
        raise ValueError(f"{path}: no '{FEATURE_PREFIX}<k>' columns")
    expected = feature_columns(len(found))
    if sorted(found) != sorted(expected):
        missing = sorted(set(expected) - set(found), key=len)[:5]
        unexpected = sorted(set(found) - set(expected))[:5]
        raise ValueError(f"{path}: feature columns must be {FEATURE_PREFIX}0 ... {FEATURE_PREFIX}{len(found) - 1}; "
                         f"missing {missing}, unexpected {unexpected}")
    return expected


def check_features(well_ids: np.ndarray, features: np.ndarray, source: str, allow_duplicates: bool = False) -> None:
    """Raise `ValueError` for non-finite embeddings or (unless allowed) duplicated well ids, naming the wells."""
    finite_rows = np.isfinite(features).all(axis=1)
    if not finite_rows.all():
        bad = well_ids[~finite_rows]
        raise ValueError(f"{source}: {len(bad)} wells have NaN or infinite embedding values, e.g. "
                         f"{list(bad[:5])}; re-embed them or drop them before evaluating")
    duplicated = pd.Index(well_ids).duplicated(keep=False)
    if duplicated.any() and not allow_duplicates:
        names = pd.unique(well_ids[duplicated])
        raise ValueError(f"{source}: {len(names)} well_id values occur more than once, e.g. {list(names[:5])}; "
                         "an embeddings file holds one row per well (--merge-duplicate-wells averages them, as the "
                         "RxRx3-core benchmark notebook does)")


def check_embeddings_file(path: str | os.PathLike) -> list[str]:
    """Cheap checks of an embeddings file from its parquet footer alone (no rows read): it exists, is parquet, has
    the layout and at least one row. Returns its feature columns; raises `ValueError` / `FileNotFoundError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file not found: {path}")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path} is not a readable parquet file ({error})") from None
    columns = _check_layout(list(parquet.schema_arrow.names), path)
    if parquet.metadata.num_rows == 0:
        raise ValueError(f"{path} holds no wells (0 rows): embed some wells before evaluating")
    return columns


def read_embeddings(path: str | os.PathLike, merge_duplicates: bool = False) -> WellEmbeddings:
    """Read and check an embeddings parquet file (DESIGN §6 layout).

    A `well_id` on several rows is an error, or with `merge_duplicates` one row holding their mean (the RxRx3-core
    notebook's defensive `groupby("well_id").mean()`), in order of first appearance.
    """
    path = Path(path)
    columns = check_embeddings_file(path)
    schema = pq.read_schema(path)
    table = pq.read_table(path, columns=[WELL_ID_COLUMN, *columns])
    well_ids = np.asarray(table.column(WELL_ID_COLUMN).to_pylist(), dtype=object)
    if any(well_id is None for well_id in well_ids):
        raise ValueError(f"{path}: some rows have no well_id")
    features = np.column_stack([table.column(name).to_numpy(zero_copy_only=False) for name in columns])
    features = features.astype(np.float32, copy=False)
    check_features(well_ids, features, str(path), allow_duplicates=merge_duplicates)
    provenance = json.loads(schema.metadata[PROVENANCE_KEY]) if schema.metadata and PROVENANCE_KEY in schema.metadata \
        else {}
    merged_rows = 0
    if merge_duplicates:
        codes, unique_ids = pd.factorize(well_ids)
        merged_rows = len(well_ids) - len(unique_ids)
        if merged_rows:
            features = pd.DataFrame(features).groupby(codes, sort=True).mean().to_numpy(dtype=np.float32)
            well_ids = np.asarray(unique_ids, dtype=object)
    return WellEmbeddings(well_ids=well_ids, features=features, provenance=provenance, merged_rows=merged_rows)


def embeddings_table(well_ids, features: np.ndarray, provenance: dict | None = None, sites=None) -> pa.Table:
    """A pyarrow table in the embeddings layout: `well_id` (then `site` when `sites` are given) then `feature_<k>`
    float32 columns."""
    features = np.asarray(features, dtype=np.float32)
    arrays, names = [pa.array(list(well_ids), type=pa.string())], [WELL_ID_COLUMN]
    if sites is not None:
        arrays.append(pa.array([str(site) for site in sites], type=pa.string()))
        names.append(SITE_COLUMN)
    arrays += [pa.array(features[:, index]) for index in range(features.shape[1])]
    table = pa.Table.from_arrays(arrays, names=[*names, *feature_columns(features.shape[1])])
    if provenance:
        table = table.replace_schema_metadata({PROVENANCE_KEY: json.dumps(provenance).encode()})
    return table


def write_embeddings(path: str | os.PathLike, well_ids, features: np.ndarray, provenance: dict | None = None,
                     sites=None) -> None:
    """Write an embeddings file atomically (a temporary name in the same folder, then a rename); `sites` (one per
    row) adds the `site` column of per-site rows."""
    with atomic_path(path) as temporary:
        pq.write_table(embeddings_table(well_ids, features, provenance, sites), temporary)


def read_metadata(path: str | os.PathLike, prepare=None) -> pd.DataFrame:
    """Read a well metadata CSV (RxRx3-core schema; gzipped too) with `well_id` kept as text and checked to be
    unique; `prepare(table) -> table` may first add the `well_id` (e.g. from JUMP-CP's plate and well columns)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metadata file not found: {path}")
    metadata = pd.read_csv(path, low_memory=False, dtype={WELL_ID_COLUMN: str})
    if prepare is not None:
        metadata = prepare(metadata)
    if WELL_ID_COLUMN not in metadata.columns:
        raise ValueError(f"{path}: no '{WELL_ID_COLUMN}' column (columns: {list(metadata.columns)})")
    duplicated = metadata[WELL_ID_COLUMN].duplicated(keep=False)
    if duplicated.any():
        names = metadata.loc[duplicated, WELL_ID_COLUMN].unique()
        raise ValueError(f"{path}: {len(names)} well_id values occur in several rows, e.g. {list(names[:5])}")
    return metadata


def join_metadata(embeddings: WellEmbeddings, metadata: pd.DataFrame, source: str = "embeddings") -> pd.DataFrame:
    """The metadata rows of the embedded wells, in the order of `embeddings` (index reset).

    Every embedded well must be described by the metadata; metadata rows of wells that were not embedded are left
    out (their number is `len(metadata) - embeddings.num_wells`).
    """
    positions = pd.Index(metadata[WELL_ID_COLUMN]).get_indexer(embeddings.well_ids)
    if (positions < 0).any():
        missing = embeddings.well_ids[positions < 0]
        raise ValueError(f"{source}: {len(missing)} of {embeddings.num_wells} embedded wells are not in the metadata, "
                         f"e.g. {list(missing[:5])}; embeddings and metadata must come from the same dataset")
    return metadata.iloc[positions].reset_index(drop=True)


__all__ = [
    "WELL_ID_COLUMN",
    "SITE_COLUMN",
    "FEATURE_PREFIX",
    "PROVENANCE_KEY",
    "WellEmbeddings",
    "block_from_path",
    "feature_columns",
    "check_features",
    "check_embeddings_file",
    "read_embeddings",
    "embeddings_table",
    "write_embeddings",
    "read_metadata",
    "join_metadata",
]
