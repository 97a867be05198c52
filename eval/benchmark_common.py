"""What the benchmarks of paper.md §4b-4d share: perturbation keys, unit rows, checks, recipe text.

Every benchmark function returns `eval.context.BenchmarkResult`: four plain dicts that `phenom eval` merges into the
results JSON of DESIGN §6 (`metrics`, `metrics_std`, `baselines`, `counts`). It is a `NamedTuple`, so
`metrics, metrics_std, baselines, counts = benchmark(...)` works as well as attribute access; a map that lacks what a
benchmark needs raises `BenchmarkNotApplicable` (a `ValueError`), which `phenom eval` records in `counts`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from eval.context import BenchmarkNotApplicable, BenchmarkResult

CONTROL_PERTURBATIONS = ("EMPTY_control", "CRISPR_control")


def check_features(features, metadata: pd.DataFrame, what: str = "features") -> np.ndarray:
    """`features` as float64 [N, D], checked against `metadata` (N rows) and for non-finite values."""
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array [rows, dimensions], got shape {array.shape}")
    if len(array) != len(metadata):
        raise ValueError(f"{what} has {len(array)} rows but the metadata has {len(metadata)}")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        raise ValueError(f"{what} has {bad} rows with NaN or infinite values")
    return array


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; an all-zero row stays zero (its cosine with anything is 0, as scikit-learn)."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)


def perturbation_columns_for(metadata: pd.DataFrame, perturbation_columns: Sequence[str] | None) -> list[str]:
    """The columns whose values together name a perturbation.

    `None` means `perturbation`, plus `concentration` when the metadata has it (a compound at two concentrations is
    two perturbations; genes have NaN there).
    """
    if perturbation_columns is None:
        perturbation_columns = ["perturbation"] + (["concentration"] if "concentration" in metadata else [])
    columns = list(perturbation_columns)
    missing = [column for column in columns if column not in metadata]
    if missing:
        raise ValueError(f"metadata lacks the perturbation column(s) {missing}; it has {list(metadata.columns)}")
    return columns


def group_codes(metadata: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer code per row for the combination of `columns` (NaN is a value), and one row of keys per code."""
    keys = metadata[list(columns)].reset_index(drop=True)
    codes = keys.groupby(list(columns), dropna=False, sort=False).ngroup().to_numpy(np.int64)
    first_rows = np.unique(codes, return_index=True)[1]
    return codes, keys.iloc[first_rows].reset_index(drop=True)


def control_mask(metadata: pd.DataFrame, column: str, control_values: Sequence[str]) -> np.ndarray:
    """True for rows whose `column` is one of `control_values`."""
    return metadata[column].isin(list(control_values)).to_numpy()


def recipe_text(parts: dict[str, object]) -> str:
    """A recipe as one line for `counts`: `key: value; key: value`."""
    return "; ".join(f"{key}: {value}" for key, value in parts.items())


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0.0 for a single value) of per-seed values."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return float(array.mean()), std


__all__ = [
    "CONTROL_PERTURBATIONS",
    "BenchmarkNotApplicable",
    "BenchmarkResult",
    "check_features",
    "control_mask",
    "group_codes",
    "mean_and_std",
    "perturbation_columns_for",
    "recipe_text",
    "unit_rows",
]
