"""JUMP-CP's mean average precision (mAP) through `copairs` (Kalinin et al. 2025, Nat. Commun. 16, 5181).

Two recipes, each copairs' documented one (`docs/examples/phenotypic_activity.ipynb` and
`phenotypic_consistency.ipynb`), with copairs doing every ranking, null and correction:

- **Activity** (`activity_map`): profiles are wells. Each query well of a perturbation ranks its perturbation's other
  wells (positives) against the negative-control wells (negatives) by cosine similarity; a perturbation's mAP is the
  mean of its wells' average precision. copairs' reference-index rule keeps other perturbations' wells out of a
  query's ranking (positives share `perturbation` and `reference`; negatives differ in both, `reference` being each
  control well's own index and -1 for query wells). Negatives are the control wells of the query's own plate
  (`neg_sameby`: batch x plate), as JUMP-CP normalizes and compares within plates: plate effects that survive the
  correction then do not pass for activity, and the null stays small (copairs draws `null_size` x rank-list size).
- **Consistency** (`consistency_map`): profiles are perturbation profiles (the aggregated map). Profiles sharing an
  annotation label (a CORUM complex for genes, an active target for compounds; several labels per profile allowed,
  copairs' multilabel mode) are positives of each other, profiles sharing none are negatives; positives must be
  different perturbations (a compound's own other concentrations never count). A label's mAP is the mean over its
  members.

p-values are copairs' (`mean_average_precision`): `(1 + #null mAP > observed) / (1 + null_size)` against
`null_size` random rank lists of the same sizes (seeded), corrected for multiple testing with Benjamini-Hochberg
(statsmodels `fdr_bh`, copairs' `apply_fdr_correction`); significant = corrected p < 0.05. copairs caches null
distributions on disk (`~/.copairs` by default); here they go to a temporary folder that is removed after the call,
so nothing is written outside the output folder. `null_size` 10,000 by default: the smallest p is 1e-4.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .context import BenchmarkNotApplicable

P_THRESHOLD = 0.05
MAP_COLUMNS = ("mean_average_precision", "p_value", "corrected_p_value", "below_corrected_p")


def _copairs_map():
    try:
        from copairs import map as copairs_map
    except ImportError as error:  # a dependency; a broken install gets a clear message, not a traceback
        raise ImportError("mAP benchmarks need copairs (pip install copairs)") from error
    return copairs_map


def _unpaired_error():
    from copairs.matching import UnpairedException

    return UnpairedException


def mean_average_precision(ap_scores: pd.DataFrame, sameby: Sequence[str], null_size: int, seed: int) -> pd.DataFrame:
    """copairs' `mean_average_precision` (p-values, BH correction, threshold 0.05) with a private null cache."""
    with tempfile.TemporaryDirectory(prefix="phenom-copairs-") as cache:
        return _copairs_map().mean_average_precision(ap_scores, list(sameby), null_size=null_size,
                                                     threshold=P_THRESHOLD, seed=seed, progress_bar=False,
                                                     cache_dir=cache)


def activity_map(features: np.ndarray, perturbation: np.ndarray, is_query: np.ndarray, is_reference: np.ndarray,
                 plate: np.ndarray, null_size: int, seed: int) -> pd.DataFrame:
    """Phenotypic activity mAP of every query perturbation (module docstring: the recipe).

    Args:
        features: `[num_wells, num_features]` corrected well embeddings.
        perturbation: `[num_wells]` perturbation key of every well (any hashable; text or integers).
        is_query: `[num_wells]` bool, wells of the perturbations to score.
        is_reference: `[num_wells]` bool, negative-control wells (the negatives); wells in neither are left out.
        plate: `[num_wells]` plate key; a query's negatives are the reference wells of its plate.
        null_size, seed: copairs' null distribution.

    Returns:
        One row per perturbation with at least two query wells on plates with references: `perturbation`,
        `mean_average_precision`, `p_value`, `corrected_p_value`, `below_corrected_p`.
    """
    used = np.flatnonzero(np.asarray(is_query, bool) | np.asarray(is_reference, bool))
    reference = np.asarray(is_reference, bool)[used]
    meta = pd.DataFrame({
        "perturbation": pd.Series(np.asarray(perturbation)[used]).astype(str).to_numpy(),
        "reference": np.where(reference, np.arange(len(used)), -1),
        "plate": pd.Series(np.asarray(plate)[used]).astype(str).to_numpy(),
    })
    if reference.all() or not reference.any():
        raise BenchmarkNotApplicable("mAP activity needs query wells and negative-control wells")
    try:
        ap = _copairs_map().average_precision(
            meta, np.asarray(features, dtype=np.float64)[used], pos_sameby=["perturbation", "reference"],
            pos_diffby=[], neg_sameby=["plate"], neg_diffby=["perturbation", "reference"], progress_bar=False)
    except _unpaired_error() as error:
        raise BenchmarkNotApplicable(f"mAP activity: {error} (no perturbation has two wells, or no plate has "
                                     "both query and negative-control wells)") from error
    ap = ap[ap["reference"] < 0]
    if not ((ap["n_pos_pairs"] > 0) & ap["average_precision"].notna()).any():
        raise BenchmarkNotApplicable("mAP activity: no perturbation has two wells on plates with negative controls")
    return mean_average_precision(ap, ["perturbation"], null_size, seed)[["perturbation", *MAP_COLUMNS]]


def consistency_map(features: np.ndarray, names: Sequence[str], labels: Sequence[Sequence[str]], null_size: int,
                    seed: int) -> pd.DataFrame:
    """Phenotypic consistency mAP of every annotation label (module docstring: the recipe).

    Args:
        features: `[num_profiles, num_features]` perturbation profiles.
        names: `[num_profiles]` perturbation name of each profile (positives are different names).
        labels: per profile, its annotation labels (at least one each).
        null_size, seed: copairs' null distribution.

    Returns:
        One row per label shared by at least two perturbations: `label`, `mean_average_precision`, `p_value`,
        `corrected_p_value`, `below_corrected_p`.
    """
    meta = pd.DataFrame({"name": pd.Series(list(names), dtype=object).astype(str).to_numpy(),
                         "label": [list(values) for values in labels]})
    try:
        ap = _copairs_map().multilabel.average_precision(
            meta, np.asarray(features, dtype=np.float64), pos_sameby=["label"], pos_diffby=["name"], neg_sameby=[],
            neg_diffby=["label"], multilabel_col="label", progress_bar=False)
    except _unpaired_error() as error:
        raise BenchmarkNotApplicable(f"mAP consistency: {error} (no annotation label is shared by two "
                                     "perturbations, or every pair shares one)") from error
    return mean_average_precision(ap, ["label"], null_size, seed)[["label", *MAP_COLUMNS]]


def summarize(table: pd.DataFrame, prefix: str) -> dict:
    """`{<prefix>_mean: mean mAP, <prefix>_fraction: fraction with corrected p < 0.05}` over the table's rows."""
    return {f"{prefix}_mean": float(table["mean_average_precision"].mean()),
            f"{prefix}_fraction": float(table["below_corrected_p"].mean())}


__all__ = ["MAP_COLUMNS", "P_THRESHOLD", "activity_map", "consistency_map", "mean_average_precision", "summarize"]
