"""Perturbation consistency p-values per experiment and their Cauchy combination across experiments (paper.md §2,
§4d), for curation.

Statistic: the one of `phenom eval`'s signal-consistency benchmark (`eval/perturbation_signal.py`, EFAAR; Celik et
al. 2024), reused here: the mean cosine over all pairs of a perturbation's wells, `mean_pairwise_cosine`, computed
from the squared norm of the sum of unit rows; random well sets are drawn with its `random_well_sets`.

Null (the older EFAAR recipe, sampled within the batch): the statistic for `draws` random sets of `k` distinct
wells of the same experiment (its non-control wells), seeded per experiment. p-value: `(1 + #{null >= observed}) /
(1 + draws)`, the permutation p-value that never reaches 0 (its smallest value is `1 / (1 + draws)`). It differs on
purpose from the benchmark's share of null >= observed, which can be 0: one p = 0 decides a Cauchy combination.

Cauchy combination (Liu & Xie 2020, "ACAT"; the paper combines per-experiment p-values with it):
`T = sum_i w_i tan((0.5 - p_i) pi)` with `w_i = 1 / k`, combined `p = 0.5 - arctan(T) / pi`. Evaluated so that
p-values near 0 and 1 keep their precision: `tan((0.5 - p) pi)` is computed as `1 / tan(p pi)` for `p <= 0.5` and
`-1 / tan((1 - p) pi)` above (the naive form rounds `0.5 - 1e-20` to 0.5), and for `T > 0` the combined p-value as
`arctan(1 / T) / pi` (the naive difference cancels to 0 for large `T`). Exact zeros and ones follow the ACAT
package: any `p = 0` gives 0 (its term is infinite), otherwise any `p = 1` gives 1.

This module scores; `eval/curate.py` decides what to keep.
"""

from __future__ import annotations

import math

import numpy as np

from .benchmark_common import unit_rows
from .perturbation_signal import mean_pairwise_cosine, random_well_sets

DEFAULT_DRAWS = 1000


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """`(1 + #{null >= observed}) / (1 + len(null))`."""
    return float((1 + np.count_nonzero(null >= observed)) / (1 + len(null)))


class ExperimentNull:
    """Null distributions of the consistency statistic within one experiment, one per set size, drawn on demand.

    Args:
        unit: `[num_pool_wells, D]` unit-length embeddings of the experiment's non-control wells.
        draws: random well sets per set size.
        rng: the generator the sets are drawn from (the order of set sizes asked for is part of the seed's effect).
    """

    def __init__(self, unit: np.ndarray, draws: int, rng: np.random.Generator):
        if draws < 1:
            raise ValueError(f"draws must be >= 1, got {draws}")
        self.unit = unit
        self.squared_norms = np.einsum("ij,ij->i", unit, unit)
        self.draws = draws
        self.rng = rng
        self._null: dict[int, np.ndarray] = {}

    def statistic(self, sets: np.ndarray) -> np.ndarray:
        """`[num_sets]` mean pairwise cosine of each row set (int `[num_sets, k]` rows of `unit`)."""
        return mean_pairwise_cosine(self.unit, self.squared_norms, sets)

    def null(self, set_size: int) -> np.ndarray:
        if set_size not in self._null:
            self._null[set_size] = self.statistic(random_well_sets(self.rng, len(self.unit), set_size, self.draws))
        return self._null[set_size]

    def p_value(self, replicates: np.ndarray) -> float:
        """p-value of the replicate rows `replicates` (int `[k]`, k >= 2) against the null of size k."""
        if len(replicates) < 2:
            raise ValueError("the consistency statistic needs at least 2 wells")
        observed = float(self.statistic(np.asarray(replicates)[None, :])[0])
        return permutation_p_value(observed, self.null(len(replicates)))


def consistency_p_values(features: np.ndarray, perturbations: np.ndarray, experiments: np.ndarray,
                         is_control: np.ndarray, draws: int = DEFAULT_DRAWS, seed: int = 0,
                         query: set | None = None) -> dict[str, dict[str, float]]:
    """Per experiment, the consistency p-value of every perturbation with >= 2 wells there.

    Args:
        features: `[num_wells, D]` well embeddings.
        perturbations, experiments: `[num_wells]` labels (text).
        is_control: `[num_wells]` bool; control wells are neither scored nor drawn into the null.
        draws: random sets per set size and experiment.
        seed: one `numpy.random.default_rng([seed, experiment index])` per experiment (sorted by name), so an
            experiment's null does not depend on the others.
        query: score only these perturbations (all when None).

    Returns:
        `{perturbation: {experiment: p-value}}`.
    """
    perturbations = np.asarray(perturbations, dtype=object)
    experiments = np.asarray(experiments, dtype=object)
    is_control = np.asarray(is_control, dtype=bool)
    unit = unit_rows(np.asarray(features, dtype=np.float64))
    results: dict[str, dict[str, float]] = {}
    for index, experiment in enumerate(sorted(set(experiments[~is_control]))):
        pool = np.flatnonzero((experiments == experiment) & ~is_control)
        null = ExperimentNull(unit[pool], draws, np.random.default_rng([seed, index]))
        labels = perturbations[pool]
        order = np.argsort(labels, kind="stable")
        boundaries = np.flatnonzero(labels[order][1:] != labels[order][:-1]) + 1
        for members in np.split(order, boundaries):
            label = labels[members[0]]
            if len(members) < 2 or (query is not None and label not in query):
                continue
            results.setdefault(label, {})[experiment] = null.p_value(members)
    return results


def _cauchy_term(p_value: float) -> float:
    """`tan((0.5 - p) pi)` without the cancellation of `0.5 - p` near 0 and of `tan` near its poles."""
    if p_value <= 0.5:
        return 1.0 / math.tan(p_value * math.pi)
    return -1.0 / math.tan((1.0 - p_value) * math.pi)


def cauchy_combination(p_values, weights=None) -> float:
    """The Cauchy combination test of `p_values` (see the module docstring); `weights` default to `1 / k`."""
    p_values = np.asarray(p_values, dtype=np.float64).ravel()
    if p_values.size == 0:
        raise ValueError("the Cauchy combination needs at least one p-value")
    if not np.isfinite(p_values).all() or (p_values < 0).any() or (p_values > 1).any():
        bad = p_values[~((p_values >= 0) & (p_values <= 1))]
        raise ValueError(f"p-values must be finite and in [0, 1], got {bad[:5]}")
    if weights is None:
        weights = np.full(p_values.size, 1.0 / p_values.size)
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if weights.shape != p_values.shape or (weights < 0).any() or not math.isclose(weights.sum(), 1.0, rel_tol=1e-9):
        raise ValueError("weights must be non-negative, one per p-value, and sum to 1")
    if (p_values == 0).any():
        return 0.0
    if (p_values == 1).any():
        return 1.0
    statistic = math.fsum(weight * _cauchy_term(p) for weight, p in zip(weights, p_values, strict=True))
    if statistic > 0:
        return math.atan(1.0 / statistic) / math.pi
    return 0.5 + math.atan(-statistic) / math.pi


__all__ = [
    "DEFAULT_DRAWS",
    "permutation_p_value",
    "ExperimentNull",
    "consistency_p_values",
    "cauchy_combination",
]
