"""Perturbation consistency p-values and their Cauchy combination across experiments (paper.md §2, §4d).

Consistency statistic (Celik et al. 2024; EFAAR's perturbation signal consistency): the mean cosine similarity over
all pairs of a perturbation's replicate wells. For `k` unit vectors `u_i` with sum `s`, the mean over the
`k (k - 1) / 2` pairs is `(|s|^2 - k) / (k (k - 1))`, so a well set costs one sum, however large it is.

Null (the older EFAAR recipe, sampled within the batch): the same statistic for `draws` random sets of `k` distinct
wells of the same experiment (its non-control wells), seeded. p-value: `(1 + #{null >= observed}) / (1 + draws)`,
the permutation p-value that never reaches 0 (its smallest value is `1 / (1 + draws)`).

Cauchy combination (Liu & Xie 2020, "ACAT"; the paper combines per-experiment p-values with it):
`T = sum_i w_i tan((0.5 - p_i) pi)` with `w_i = 1 / k`, combined `p = 0.5 - arctan(T) / pi`. Evaluated so that
p-values near 0 and 1 keep their precision: `tan((0.5 - p) pi)` is computed as `1 / tan(p pi)` for `p <= 0.5` and
`-1 / tan((1 - p) pi)` above (the naive form rounds `0.5 - 1e-20` to 0.5), and for `T > 0` the combined p-value as
`arctan(1 / T) / pi` (the naive difference cancels to 0 for large `T`). Exact zeros and ones follow the ACAT
package: any `p = 0` gives 0 (its term is infinite), otherwise any `p = 1` gives 1.

This module scores; `eval/curate.py` decides what to keep. (A sibling benchmark, `signal_consistency_fraction`, is
being written on another branch; both use the same statistic and should share one function once both have landed.)
"""

from __future__ import annotations

import math

import numpy as np

from .recall import unit_rows

DEFAULT_DRAWS = 1000
_SETS_PER_CHUNK_ELEMENTS = 1 << 24  # bound on draws x set size x features held at once


def mean_pairwise_cosine(unit: np.ndarray) -> float:
    """Mean cosine over all pairs of the rows of `unit` (`[k, D]` unit vectors, k >= 2)."""
    count = len(unit)
    if count < 2:
        raise ValueError("the mean pairwise cosine needs at least 2 wells")
    total = unit.sum(axis=0)
    return float((total @ total - count) / (count * (count - 1)))


def set_mean_cosines(unit: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """`[num_sets]` mean pairwise cosine of each row set: `sets` is int `[num_sets, k]` row indices into `unit`."""
    num_sets, count = sets.shape
    chunk = max(1, _SETS_PER_CHUNK_ELEMENTS // max(1, count * unit.shape[1]))
    values = np.empty(num_sets)
    for start in range(0, num_sets, chunk):
        totals = unit[sets[start:start + chunk]].sum(axis=1)
        values[start:start + chunk] = (np.einsum("ij,ij->i", totals, totals) - count) / (count * (count - 1))
    return values


def random_sets(rng: np.random.Generator, pool_size: int, set_size: int, draws: int) -> np.ndarray:
    """int `[draws, set_size]`: `draws` sets of `set_size` distinct positions in `range(pool_size)`, each uniform."""
    if set_size > pool_size:
        raise ValueError(f"cannot draw {set_size} distinct wells from {pool_size}")
    chunk = max(1, (1 << 22) // pool_size)
    parts = []
    for start in range(0, draws, chunk):
        keys = rng.random((min(chunk, draws - start), pool_size))
        parts.append(np.argpartition(keys, set_size - 1, axis=1)[:, :set_size])
    return np.concatenate(parts)


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
        self.draws = draws
        self.rng = rng
        self._null: dict[int, np.ndarray] = {}

    def null(self, set_size: int) -> np.ndarray:
        if set_size not in self._null:
            sets = random_sets(self.rng, len(self.unit), set_size, self.draws)
            self._null[set_size] = set_mean_cosines(self.unit, sets)
        return self._null[set_size]

    def p_value(self, unit_replicates: np.ndarray) -> float:
        """p-value of the replicate set `unit_replicates` (`[k, D]`, k >= 2) against the null of size k."""
        return permutation_p_value(mean_pairwise_cosine(unit_replicates), self.null(len(unit_replicates)))


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
    unit = unit_rows(features, np.arange(len(features)))
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
            results.setdefault(label, {})[experiment] = null.p_value(null.unit[members])
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
    "mean_pairwise_cosine",
    "set_mean_cosines",
    "random_sets",
    "permutation_p_value",
    "ExperimentNull",
    "consistency_p_values",
    "cauchy_combination",
]
