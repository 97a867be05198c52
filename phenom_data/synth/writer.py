"""Write a synthetic dataset in the RxRx3-core layout of the Hub (paper.md §7.1, DESIGN §4).

`data/train-000NN-of-000MM.parquet` shards written with `datasets`: features `__key__` (string,
`{experiment}/Plate{plate}/{address}_s1_{channel}`) and `jp2` (an `Image` feature: a struct of JPEG-2000 `bytes` and
`path`), one 8-bit channel image per row, six consecutive rows per well; `metadata_rxrx3_core.csv` with exactly the
RxRx3-core columns; `ground_truth.json`; `README.md`. Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, Jpeg2KImagePlugin  # noqa: F401  (loaded before render workers fork)

from phenom_data.atomic import atomic_path, atomic_write_json

METADATA_FILE = "metadata_rxrx3_core.csv"
GROUND_TRUTH_FILE = "ground_truth.json"
METADATA_COLUMNS = ("well_id", "experiment_name", "plate", "address", "gene", "treatment", "SMILES", "concentration",
                    "perturbation_type", "cell_type")
CELL_TYPE = "HUVEC"
NUM_CHANNELS = 6
ROW_GROUP_ROWS = 600  # parquet row group: 100 wells, the unit readers split work by


def image_features():
    """The RxRx3-core image parquet features: `__key__` string and `jp2` Image."""
    from datasets import Features, Value
    from datasets import Image as ImageFeature

    return Features({"__key__": Value("string"), "jp2": ImageFeature()})


def shard_name(index: int, num_shards: int) -> str:
    return f"train-{index:05d}-of-{num_shards:05d}.parquet"


def encode_jp2(image: np.ndarray, compression: float) -> bytes:
    """One uint8 [H, W] channel image -> JPEG-2000 (JP2 container) bytes; `compression` 1 is lossless."""
    buffer = io.BytesIO()
    options = {} if compression <= 1 else {"quality_mode": "rates", "quality_layers": [float(compression)]}
    Image.fromarray(image).save(buffer, format="JPEG2000", **options)
    return buffer.getvalue()


def write_shard(path: Path, keys: list[str], images: list[bytes]) -> None:
    """One parquet shard of image rows, written with `datasets` and renamed into place."""
    from datasets import Dataset
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    dataset = Dataset.from_dict(
        {"__key__": keys, "jp2": [{"bytes": data, "path": None} for data in images]}, features=image_features()
    )
    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # one bar per shard would break the generator's own bar
    try:
        with atomic_path(path) as temporary:
            dataset.to_parquet(str(temporary), batch_size=ROW_GROUP_ROWS)
    finally:
        if not was_disabled:
            enable_progress_bars()


def write_metadata(path: Path, rows: Iterable[dict]) -> None:
    """`metadata_rxrx3_core.csv`: one row per well, exactly `METADATA_COLUMNS`."""
    with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: Path, payload: dict) -> None:
    atomic_write_json(path, payload, indent=1)


__all__ = ["CELL_TYPE", "GROUND_TRUTH_FILE", "METADATA_COLUMNS", "METADATA_FILE", "NUM_CHANNELS", "encode_jp2",
           "image_features", "shard_name", "write_json", "write_metadata", "write_shard"]
