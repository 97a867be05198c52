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

# scikit-learn's `normalize` leaves a row whose norm is below 10 machine epsilons unscaled (`_handle_zeros_in_scale`):
# a map row that is zero up to round-off (the CRISPR control row after centring on the controls, norm ~3e-16) keeps
# cosines of ~1e-16 with everything, as in EFAAR, instead of becoming a unit vector pointing at round-off noise.
NEAR_ZERO_NORM = 10 * np.finfo(np.float64).eps


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
    """float64 rows scaled to unit L2 norm, by scikit-learn's rule (`sklearn.preprocessing.normalize`, which EFAAR's
    `cosine_similarity` uses): a row whose norm is below `NEAR_ZERO_NORM` is left as it is, so a zero row stays zero
    and its cosine with anything is (near) 0."""
    features = np.asarray(features, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", features, features))[:, None]
    return features / np.where(norms < NEAR_ZERO_NORM, 1.0, norms)


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


def control_wells(is_control, metadata: pd.DataFrame) -> np.ndarray:
    """`is_control` as bool [rows] checked against `metadata` (None: no control rows)."""
    if is_control is None:
        return np.zeros(len(metadata), dtype=bool)
    mask = np.asarray(is_control, dtype=bool)
    if mask.shape != (len(metadata),):
        raise ValueError(f"is_control has shape {mask.shape} for {len(metadata)} metadata rows")
    return mask


def recipe_text(parts: dict[str, object]) -> str:
    """A recipe as one line for `counts`: `key: value; key: value`."""
    return "; ".join(f"{key}: {value}" for key, value in parts.items())


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0.0 for a single value) of per-seed values."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return float(array.mean()), std


__all__ = [
    "NEAR_ZERO_NORM",
    "BenchmarkNotApplicable",
    "BenchmarkResult",
    "check_features",
    "control_wells",
    "group_codes",
    "mean_and_std",
    "perturbation_columns_for",
    "recipe_text",
    "unit_rows",
]
