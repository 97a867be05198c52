"""Metadata tables joined to wells by id: RxRx3-core's `metadata_rxrx3_core.csv` (`well_id`, `experiment_name`,
`plate`, `address`, `gene`, `treatment`, `SMILES`, `concentration`, `perturbation_type`, `cell_type`; paper.md
§7.1) and RxRx1's `metadata.csv` (`site_id`, `well_id`, ...; §7.2)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .wells import metadata_row


class MetadataTable:
    """Rows of a metadata CSV indexed by one id column.

    Args:
        frame: the table.
        id_column: the column that names each row's well (or site); its values must be unique.
        source: where the table came from, for error messages.
    """

    def __init__(self, frame: pd.DataFrame, id_column: str = "well_id", source: str = "metadata"):
        if id_column not in frame.columns:
            raise ValueError(f"{source} has no {id_column!r} column; columns are {list(frame.columns)}")
        ids = frame[id_column].astype(str)
        repeated = ids[ids.duplicated()].unique()
        if len(repeated):
            raise ValueError(f"{source} repeats {id_column} values, e.g. {list(repeated[:5])}")
        self.frame = frame.reset_index(drop=True)
        self.frame[id_column] = ids.to_numpy()
        self.id_column = id_column
        self.source = source
        self._position = {well_id: position for position, well_id in enumerate(self.frame[id_column])}
        self._columns = list(self.frame.columns)
        self._values = [self.frame[column].to_numpy(dtype=object) for column in self._columns]

    @classmethod
    def read_csv(cls, path: str | os.PathLike, id_column: str = "well_id") -> MetadataTable:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"metadata file {path} does not exist")
        # low_memory=False: RxRx3-core's SMILES column otherwise gets mixed types chunk by chunk.
        frame = pd.read_csv(path, low_memory=False, dtype={id_column: str})
        return cls(frame, id_column=id_column, source=str(path))

    def __len__(self) -> int:
        return len(self._position)

    def __contains__(self, well_id: str) -> bool:
        return well_id in self._position

    def row(self, well_id: str) -> dict:
        """The row of `well_id` as plain Python values (blanks as None); KeyError if absent."""
        position = self._position[well_id]
        columns = zip(self._columns, self._values, strict=True)
        return metadata_row({column: values[position] for column, values in columns})

    def value(self, well_id: str, column: str):
        return self.frame.at[self._position[well_id], column]

    def require_column(self, column: str, purpose: str) -> None:
        if column not in self.frame.columns:
            raise ValueError(f"{self.source} has no {column!r} column, needed {purpose}")

    def ids_where(self, column_values: dict[str, Iterable[str] | None]) -> np.ndarray:
        """Ids of the rows whose `column` value (as text) is in the given set, for every column given."""
        keep = np.ones(len(self.frame), dtype=bool)
        for column, values in column_values.items():
            if values is not None:
                self.require_column(column, "to filter on it")
                keep &= self.frame[column].astype(str).isin(list(values)).to_numpy()
        return self.frame[self.id_column].to_numpy()[keep]


__all__ = ["MetadataTable"]
