"""Batch correction of well embeddings on control wells (paper.md §5; EFAAR `efaar.py`).

Every method is fitted on the control wells (`EMPTY_control` in RxRx3-core) and applied to all wells; a batch is an
experiment by default. Features come in as `[num_wells, hidden_size]` and leave as float64
`[num_wells, num_components]` (`num_components = hidden_size` unless fewer controls than features limit the PCA).

- `centerscale`: per batch, a StandardScaler fitted on that batch's controls (EFAAR `centerscale_on_controls` with a
  batch column).
- `pca-centerscale`: PCA (all components unless `num_components`) fitted on the controls pooled over all batches,
  applied to every well, then `centerscale` per batch (EFAAR `pca_centerscale_on_controls`; the OpenPhenom card and
  the released RxRx3-core benchmark).
- `tvn`: typical variation normalization in EFAAR `tvn_on_controls` order: (a) StandardScaler fitted on all
  controls, (b) PCA with all components fitted on the controls, (c) StandardScaler on the controls again, (d) per
  batch, one-sided CORAL whitening: that batch's rows times `(cov(batch controls, ddof=1) + 0.5 I)^(-1/2)`.
- `none`: the features as float64.

A batch with fewer than `min_controls` control wells is an error that names it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

CORRECTIONS = ("none", "centerscale", "pca-centerscale", "tvn")
# EFAAR's CORAL regularizer: the identity added to each batch's control covariance before whitening.
CORAL_RIDGE = 0.5
# Fewest controls a batch may have: a sample covariance (ddof=1) and a standard deviation need two.
MIN_CONTROLS_PER_BATCH = 2


def _batch_rows(is_control: np.ndarray, batches: np.ndarray, min_controls: int) -> dict:
    """`{batch: (row indices, control row indices)}`; raise naming every batch with too few controls."""
    is_control = np.asarray(is_control, dtype=bool)
    batches = np.asarray(batches)
    if is_control.shape != batches.shape:
        raise ValueError(f"is_control has {is_control.shape[0]} entries but batches has {batches.shape[0]}")
    codes, names = pd.factorize(batches, sort=True)
    if (codes < 0).any():
        raise ValueError(f"{int((codes < 0).sum())} wells have no batch label")
    rows = {}
    too_few = []
    for code, name in enumerate(names):
        batch_rows = np.flatnonzero(codes == code)
        control_rows = batch_rows[is_control[batch_rows]]
        if len(control_rows) < min_controls:
            too_few.append(f"'{name}' ({len(control_rows)} of {len(batch_rows)} wells)")
        rows[name] = (batch_rows, control_rows)
    if too_few:
        raise ValueError(f"too few control wells (fewer than {min_controls}) in batch {', '.join(too_few[:10])}"
                         f"{' ...' if len(too_few) > 10 else ''}; batch correction fits each batch on its controls: "
                         "choose another batch column, another control key, or --correction none")
    return rows


def _as_float64(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be [num_wells, hidden_size], got shape {features.shape}")
    return features


def _centerscale(features: np.ndarray, rows: dict) -> np.ndarray:
    corrected = np.empty_like(features)
    for batch_rows, control_rows in rows.values():
        scaler = StandardScaler().fit(features[control_rows])
        corrected[batch_rows] = scaler.transform(features[batch_rows])
    return corrected


def centerscale_per_batch(features: np.ndarray, is_control: np.ndarray, batches: np.ndarray,
                          min_controls: int = MIN_CONTROLS_PER_BATCH) -> np.ndarray:
    """Per batch: subtract the mean and divide by the standard deviation (ddof=0) of that batch's controls."""
    features = _as_float64(features)
    return _centerscale(features, _batch_rows(is_control, batches, min_controls))


def pca_centerscale(features: np.ndarray, is_control: np.ndarray, batches: np.ndarray,
                    num_components: int | None = None, min_controls: int = MIN_CONTROLS_PER_BATCH) -> np.ndarray:
    """PCA fitted on all control wells, applied to every well, then per-batch center-scale on the controls."""
    features = _as_float64(features)
    rows = _batch_rows(is_control, batches, min_controls)
    controls = np.asarray(is_control, dtype=bool)
    projected = PCA(n_components=num_components).fit(features[controls]).transform(features)
    return _centerscale(projected, rows)


def coral_whitening(batch_controls: np.ndarray, ridge: float = CORAL_RIDGE) -> np.ndarray:
    """`(cov(batch_controls, ddof=1) + ridge * I)^(-1/2)`, `[num_features, num_features]`.

    The matrix is symmetric positive definite, so its inverse square root comes from an eigendecomposition
    (real and symmetric, unlike a general fractional matrix power).
    """
    covariance = np.cov(batch_controls, rowvar=False, ddof=1) + ridge * np.eye(batch_controls.shape[1])
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    return (eigenvectors / np.sqrt(eigenvalues)) @ eigenvectors.T


def tvn(features: np.ndarray, is_control: np.ndarray, batches: np.ndarray, ridge: float = CORAL_RIDGE,
        min_controls: int = MIN_CONTROLS_PER_BATCH) -> np.ndarray:
    """Typical variation normalization with per-batch CORAL whitening, in EFAAR `tvn_on_controls` order."""
    features = _as_float64(features)
    rows = _batch_rows(is_control, batches, min_controls)
    controls = np.asarray(is_control, dtype=bool)
    features = StandardScaler().fit(features[controls]).transform(features)
    features = PCA().fit(features[controls]).transform(features)
    features = StandardScaler().fit(features[controls]).transform(features)
    for batch_rows, control_rows in rows.values():
        features[batch_rows] = features[batch_rows] @ coral_whitening(features[control_rows], ridge)
    return features


def correct(features: np.ndarray, is_control: np.ndarray, batches: np.ndarray, method: str = "pca-centerscale",
            min_controls: int = MIN_CONTROLS_PER_BATCH) -> np.ndarray:
    """Apply the correction named `method` (one of `CORRECTIONS`); float64 `[num_wells, num_components]`."""
    if method == "none":
        return _as_float64(features).copy()
    if method == "centerscale":
        return centerscale_per_batch(features, is_control, batches, min_controls=min_controls)
    if method == "pca-centerscale":
        return pca_centerscale(features, is_control, batches, min_controls=min_controls)
    if method == "tvn":
        return tvn(features, is_control, batches, min_controls=min_controls)
    raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")


__all__ = [
    "CORRECTIONS",
    "CORAL_RIDGE",
    "MIN_CONTROLS_PER_BATCH",
    "centerscale_per_batch",
    "pca_centerscale",
    "coral_whitening",
    "tvn",
    "correct",
]
