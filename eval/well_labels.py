"""Reading labels and experiments of wells from a metadata table, shared by `phenom probe` and `phenom curate`.

RxRx3-core names the experiment `experiment_name`, RxRx1 `experiment`; a label is missing when it is None, NaN or
blank text (an RxRx3-core control has no `gene`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EXPERIMENT_COLUMNS = ("experiment_name", "experiment")  # RxRx3-core, RxRx1


def has_label(value) -> bool:
    """A value that is not missing (None, NaN) and not blank text."""
    return not (value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "")


def experiment_column_of(metadata: pd.DataFrame, requested: str | None = None) -> str:
    """`requested`, else the first of `experiment_name` (RxRx3-core) and `experiment` (RxRx1) the metadata has."""
    candidates = [requested] if requested else list(EXPERIMENT_COLUMNS)
    for column in candidates:
        if column in metadata.columns:
            return column
    raise ValueError(f"the metadata has no experiment column {' or '.join(map(repr, candidates))} "
                     f"(columns: {list(metadata.columns)}); pass --experiment-column")


__all__ = ["EXPERIMENT_COLUMNS", "has_label", "experiment_column_of"]
