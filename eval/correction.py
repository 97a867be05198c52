"""Batch correction of well embeddings on control wells (paper.md §5; EFAAR `efaar.py`).

Every method is fitted on the control wells (`EMPTY_control` in RxRx3-core) and applied to all wells; a batch is an
experiment by default. Features come in as `[num_wells, hidden_size]` and leave as float64
`[num_wells, num_components]`: `num_components = hidden_size` for `none` and `centerscale`; the PCA methods keep the
principal directions the control wells actually span (at most `num_controls - 1`, so a 384-d model evaluated on 300
controls keeps 299). A direction without control variance cannot be scaled by it: EFAAR keeps such directions and
divides by the round-off left in them, which turns them into values near 1e15 that swamp every cosine similarity.

- `centerscale`: per batch, a StandardScaler fitted on that batch's controls (EFAAR `centerscale_on_controls` with a
  batch column).
- `pca-centerscale`: PCA (every direction the controls span unless `num_components`) fitted on the controls pooled
  over all batches, applied to every well, then `centerscale` per batch (EFAAR `pca_centerscale_on_controls`; the
  OpenPhenom card and the released RxRx3-core benchmark).
- `tvn`: typical variation normalization in EFAAR `tvn_on_controls` order: (a) StandardScaler fitted on all
  controls, (b) PCA fitted on the controls (the directions they span), (c) StandardScaler on the controls again,
  (d) per batch, one-sided CORAL whitening: that batch's rows times `(cov(batch controls, ddof=1) + 0.5 I)^(-1/2)`.
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
# A principal direction is spanned by the controls when its variance exceeds this fraction of the largest one; the
# null directions of a rank-deficient fit sit near 1e-30 of it (round-off), genuine ones far above 1e-10.
SPANNED_VARIANCE_FRACTION = 1e-10


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


def _control_pca(features: np.ndarray, controls: np.ndarray, num_components: int | None = None) -> np.ndarray:
    """Project every well on the principal directions the control wells span, `[num_wells, kept]`.

    `kept` is `num_components`, or when that is None every direction whose control variance is above
    `SPANNED_VARIANCE_FRACTION` of the largest (at most `num_controls - 1`).
    """
    pca = PCA(svd_solver="full").fit(features[controls])
    variances = pca.explained_variance_
    spanned = int((variances > SPANNED_VARIANCE_FRACTION * variances[0]).sum()) if variances[0] > 0 else 0
    if spanned == 0:
        raise ValueError(f"the {int(controls.sum())} control wells have identical features: no direction to "
                         "correct along (are the controls' embeddings all the same?)")
    if num_components is not None and num_components > spanned:
        raise ValueError(f"asked for {num_components} components, but the {int(controls.sum())} control wells span "
                         f"only {spanned} directions of the {features.shape[1]} features; ask for at most {spanned}")
    kept = spanned if num_components is None else num_components
    return pca.transform(features)[:, :kept]


def pca_centerscale(features: np.ndarray, is_control: np.ndarray, batches: np.ndarray,
                    num_components: int | None = None, min_controls: int = MIN_CONTROLS_PER_BATCH) -> np.ndarray:
    """PCA fitted on all control wells, applied to every well, then per-batch center-scale on the controls.

    Keeps `num_components` directions, or every direction the controls span when None (see the module docstring).
    """
    features = _as_float64(features)
    rows = _batch_rows(is_control, batches, min_controls)
    controls = np.asarray(is_control, dtype=bool)
    return _centerscale(_control_pca(features, controls, num_components), rows)


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
    features = _control_pca(features, controls)
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
    "SPANNED_VARIANCE_FRACTION",
    "centerscale_per_batch",
    "pca_centerscale",
    "coral_whitening",
    "tvn",
    "correct",
]
