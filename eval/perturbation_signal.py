"""Perturbation signal consistency and magnitude (paper.md §4d; EFAAR `pert_signal_consistency_benchmark` and
`pert_signal_magnitude_benchmark`).

Both score each (non-control) perturbation from its replicate wells, compare the score with a null distribution,
and report the fraction of perturbations with p <= 0.05. A perturbation is `perturbation` (+ `concentration` when
the metadata has it); control wells (`is_control`) are never queries.

Consistency (`signal_consistency_fraction`): the mean cosine over all pairs of the perturbation's wells (EFAAR's
mean lower-triangle cosine); p = 1 - searchsorted(null, score, "left") / len(null) (EFAAR: the share of null
values >= the score). Needs >= 2 wells.

Magnitude (`signal_magnitude_fraction`): the energy distance between the perturbation's wells X and up to 1,000
control wells C sampled once (seeded), `2 E|X - C| - E|X - X'| - E|C - C'|` with Euclidean distances averaged over
all pairs including an item with itself (what EFAAR gets from geomloss `SamplesLoss("energy")` x 2); p = 1 -
searchsorted(null, score, "right") / len(null) (the share of null values > the score). Needs >= 5 wells;
perturbations with more than `max_replicates` (256) wells are scored on 256 of them drawn uniformly (seeded), so the
size-matched null stays affordable on a CPU (EFAAR uses all wells, on a GPU).

Nulls (`null=`):
- `"negative-controls"`: EFAAR's null, the same score for each perturbation named in
  `negative_control_perturbations` (e.g. genes not expressed in the cell type); those perturbations are then not
  queries. Negative-control genes are screened like every gene (on the same kind of plates, with as many wells),
  so they carry whatever plate effects survive the correction, as the queries do. Baseline: the fraction of the
  negative-control perturbations themselves with p <= 0.05 against the null of the others (leave one out): the
  false-positive rate the null gives.
- `"random-wells"`: for each set size k among the queries, `n_null` sets of k distinct non-control wells drawn
  uniformly; a query is compared with the null of its own size (both scores depend on k). Baseline: the fraction
  for one fresh random well set per query, same size, same null (about 0.05 by construction). Random wells come
  from all plates, so when a perturbation's wells share a plate and plate effects survive the correction, its wells
  agree more than random sets even without a phenotype: this null then calls too many perturbations (measured on
  `phenom synth` data with strong plate effects, tests/test_signal_null.py).
`phenom eval` uses the negative controls where the data has them (`--negative-control-genes`), else random wells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eval.benchmark_common import (
    BenchmarkNotApplicable,
    BenchmarkResult,
    check_features,
    control_wells,
    group_codes,
    perturbation_columns_for,
    recipe_text,
    unit_rows,
)

NULL_KINDS = ("random-wells", "negative-controls")
P_THRESHOLD = 0.05
MAGNITUDE_MIN_REPLICATES = 5
MAX_CONTROLS = 1000
MAX_REPLICATES = 256


@dataclass(frozen=True)
class _Queries:
    """Non-control wells grouped by perturbation.

    Attributes:
        wells: per query perturbation, int [its wells], row indices into the features.
        labels: per query perturbation, its key as text (for the null of negative controls and for counts).
        is_negative_control: bool [perturbations], named in `negative_control_perturbations`.
        pool: int [non-control wells], the wells random sets are drawn from.
    """

    wells: list[np.ndarray]
    labels: list[str]
    is_negative_control: np.ndarray
    pool: np.ndarray


def _queries(
    metadata: pd.DataFrame,
    perturbation_columns: Sequence[str] | None,
    is_control: np.ndarray | None,
    negative_control_perturbations: Sequence[str] | None,
) -> _Queries:
    columns = perturbation_columns_for(metadata, perturbation_columns)
    pool = np.flatnonzero(~control_wells(is_control, metadata))
    if len(pool) == 0:
        raise BenchmarkNotApplicable("no non-control wells to score")
    codes, keys = group_codes(metadata.iloc[pool], columns)
    order = np.argsort(codes, kind="stable")
    wells = np.split(pool[order], np.flatnonzero(np.diff(codes[order])) + 1)
    labels = keys[columns[0]].astype(str).tolist()
    negatives = set(negative_control_perturbations or ())
    is_negative_control = np.array([label in negatives for label in labels], dtype=bool)
    return _Queries(wells, labels, is_negative_control, pool)


def choose_null(requested: str, negative_control_perturbations, labels) -> tuple[str, list[str], str]:
    """The null to use and its negative controls: `auto` takes the negative-control perturbations present among
    `labels` (the scored perturbations' names) when there are any, else random well sets.

    Returns:
        `(null, negative controls present, why)`, `why` a short text for `counts`.
    """
    present = sorted(set(negative_control_perturbations or ()) & {str(label) for label in labels})
    if requested == "random-wells":
        return "random-wells", [], "random-wells (asked for)"
    if requested == "negative-controls" or present:
        return "negative-controls", present, f"negative-controls ({len(present)} perturbations in the data)"
    if requested != "auto":
        raise ValueError(f"null must be 'auto' or one of {NULL_KINDS}, got {requested!r}")
    given = len(set(negative_control_perturbations or ()))
    return "random-wells", [], (f"random-wells (none of the {given} negative-control perturbations is in the data)"
                                if given else "random-wells (no negative-control perturbations given)")


def random_well_sets(rng: np.random.Generator, pool_size: int, set_size: int, count: int) -> np.ndarray:
    """int [count, set_size]: `count` sets of `set_size` distinct positions in range(pool_size), each uniform."""
    if set_size > pool_size:
        raise ValueError(f"cannot draw {set_size} distinct wells from {pool_size}")
    if set_size * set_size <= pool_size:  # duplicates are rare: draw with replacement, redraw the sets that have one
        sets = rng.integers(pool_size, size=(count, set_size))
        while True:
            ordered = np.sort(sets, axis=1)
            repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
            if not repeated.any():
                return sets
            sets[repeated] = rng.integers(pool_size, size=(int(repeated.sum()), set_size))
    chunk = max(1, (1 << 22) // pool_size)
    parts = []
    for start in range(0, count, chunk):
        keys = rng.random((min(chunk, count - start), pool_size))
        parts.append(np.argpartition(keys, set_size - 1, axis=1)[:, :set_size])
    return np.concatenate(parts)


def _right_tail_p(sorted_null: np.ndarray, scores: np.ndarray, side: str) -> np.ndarray:
    return 1.0 - np.searchsorted(sorted_null, scores, side=side) / len(sorted_null)


@dataclass(frozen=True)
class _Scored:
    """Scores and p-values of the query perturbations (NaN where skipped)."""

    scores: np.ndarray
    p_values: np.ndarray
    baseline_p_values: np.ndarray | None
    is_query: np.ndarray
    skipped: int
    null_size: object


def _score_against_null(
    score_sets,
    queries: _Queries,
    used_wells: list[np.ndarray],
    *,
    min_replicates: int,
    null: str,
    n_null: int,
    rng: np.random.Generator,
    side: str,
) -> _Scored:
    """Score each perturbation's wells, build the null, and turn scores into right-tail p-values.

    Args:
        score_sets: int [sets, k] well indices -> float [sets] scores (higher = more signal).
        used_wells: per perturbation, the wells it is scored on.
        side: `left` (p = share of null >= score) or `right` (p = share of null > score).
    """
    sizes = np.array([len(wells) for wells in used_wells])
    enough = sizes >= min_replicates
    scores = np.full(len(sizes), np.nan)
    for size in np.unique(sizes[enough]):  # all perturbations of one size in one call
        chosen = np.flatnonzero(enough & (sizes == size))
        scores[chosen] = score_sets(np.stack([used_wells[index] for index in chosen]))
    is_query = enough & ~queries.is_negative_control
    p_values = np.full(len(sizes), np.nan)
    baseline_p_values = None
    if null == "random-wells":
        baseline_p_values = np.full(len(sizes), np.nan)
        for size in np.unique(sizes[is_query]):
            sorted_null = np.sort(score_sets(queries.pool[random_well_sets(rng, len(queries.pool), size, n_null)]))
            chosen = is_query & (sizes == size)
            p_values[chosen] = _right_tail_p(sorted_null, scores[chosen], side)
            fresh = queries.pool[random_well_sets(rng, len(queries.pool), size, int(chosen.sum()))]
            baseline_p_values[chosen] = _right_tail_p(sorted_null, score_sets(fresh), side)
        baseline_p_values = baseline_p_values[is_query]
        null_size = f"{n_null} random well sets per set size"
    else:
        null_scores = scores[enough & queries.is_negative_control]
        sorted_null = np.sort(null_scores)
        if len(sorted_null) == 0:
            raise BenchmarkNotApplicable(
                "none of negative_control_perturbations is in the map with enough replicate wells"
            )
        p_values[is_query] = _right_tail_p(sorted_null, scores[is_query], side)
        null_size = len(sorted_null)
        if null_size >= 2:  # each negative control against the others: its own score is >= itself, never > itself
            at_least = null_size - np.searchsorted(sorted_null, null_scores, side=side) - (side == "left")
            baseline_p_values = at_least / (null_size - 1)
    skipped = int((~enough & ~queries.is_negative_control).sum())
    return _Scored(scores, p_values, baseline_p_values, is_query, skipped, null_size)


def _result(name: str, scored: _Scored, recipe: dict, p_threshold: float, extra_counts=None) -> BenchmarkResult:
    if not scored.is_query.any():
        raise BenchmarkNotApplicable(f"{name}: no perturbation has enough replicate wells")
    metrics = {f"{name}_fraction": float(np.mean(scored.p_values[scored.is_query] <= p_threshold))}
    baselines = {}
    if scored.baseline_p_values is not None:
        baselines[f"{name}_fraction"] = float(np.mean(scored.baseline_p_values <= p_threshold))
    counts = {
        f"{name}_perturbations": int(scored.is_query.sum()),
        f"{name}_skipped_too_few_replicates": scored.skipped,
        f"{name}_mean_score": float(np.mean(scored.scores[scored.is_query])),
        **(extra_counts or {}),
        f"{name}_recipe": recipe_text({**recipe, "null_size": scored.null_size, "threshold": p_threshold}),
    }
    return BenchmarkResult(metrics, {}, baselines, counts)


# --- consistency ---------------------------------------------------------------------------------------------------


def mean_pairwise_cosine(unit: np.ndarray, squared_norms: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """float [sets]: mean cosine over the pairs of each set, from |sum of unit rows|^2 (no k x k matrix)."""
    size = sets.shape[1]
    out = np.empty(len(sets))
    chunk = max(1, (1 << 23) // (size * unit.shape[1]))
    for start in range(0, len(sets), chunk):
        members = sets[start : start + chunk]
        summed = unit[members].sum(axis=1)
        out[start : start + chunk] = (np.einsum("ij,ij->i", summed, summed) - squared_norms[members].sum(axis=1)) / (
            size * (size - 1)
        )
    return out


def signal_consistency_benchmark(
    features,
    metadata: pd.DataFrame,
    *,
    perturbation_columns: Sequence[str] | None = None,
    is_control: np.ndarray | None = None,
    null: str = "random-wells",
    negative_control_perturbations: Sequence[str] | None = None,
    n_null: int = 1000,
    min_replicates: int = 2,
    p_threshold: float = P_THRESHOLD,
    seed: int = 0,
) -> BenchmarkResult:
    """Fraction of perturbations whose wells agree more than the null allows (module docstring: the recipe).

    Args:
        features: float [wells, dimensions], well embeddings after batch correction.
        metadata: one row per well with the perturbation column(s).
        is_control: bool [wells], the control wells (never scored, never in a random set); None for none.
        null: `random-wells` or `negative-controls` (then `negative_control_perturbations` names them).
        n_null: random well sets per set size.
        min_replicates: perturbations with fewer wells are skipped and counted.
        seed: seeds the random well sets.

    Returns:
        `BenchmarkResult` with `signal_consistency_fraction`.
    """
    features = check_features(features, metadata)
    _check_null(null, negative_control_perturbations, min_replicates, 2)
    queries = _queries(metadata, perturbation_columns, is_control, negative_control_perturbations)
    unit = unit_rows(features)
    squared_norms = np.einsum("ij,ij->i", unit, unit)
    scored = _score_against_null(
        lambda sets: mean_pairwise_cosine(unit, squared_norms, sets),
        queries,
        queries.wells,
        min_replicates=min_replicates,
        null=null,
        n_null=n_null,
        rng=np.random.default_rng(seed),
        side="left",
    )
    recipe = {
        "score": "mean cosine over all pairs of the perturbation's wells",
        "null": null,
        "p": "share of null scores >= the score",
        "min_replicates": min_replicates,
        "seed": seed,
    }
    return _result("signal_consistency", scored, recipe, p_threshold)


def _check_null(null: str, negative_control_perturbations, min_replicates: int, floor: int) -> None:
    if null not in NULL_KINDS:
        raise ValueError(f"null must be one of {NULL_KINDS}, got {null!r}")
    if null == "negative-controls" and not negative_control_perturbations:
        raise ValueError("null='negative-controls' needs negative_control_perturbations (e.g. unexpressed genes)")
    if min_replicates < floor:
        raise ValueError(f"min_replicates must be at least {floor}, got {min_replicates}")


# --- magnitude -----------------------------------------------------------------------------------------------------


def _pairwise_distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Euclidean distances [..., n, m] between rows of [..., n, D] and [..., m, D] (batched), float64."""
    squared = (
        np.einsum("...ij,...ij->...i", first, first)[..., :, None]
        + np.einsum("...ij,...ij->...i", second, second)[..., None, :]
        - 2.0 * first @ np.swapaxes(second, -1, -2)
    )
    return np.sqrt(np.maximum(squared, 0.0))


def _mean_within_distance(sets: np.ndarray) -> np.ndarray:
    """float [sets]: mean distance over all ordered pairs of each set [sets, k, D], self-pairs (0) included."""
    distances = _pairwise_distances(sets, sets)
    diagonal = np.arange(sets.shape[1])
    distances[:, diagonal, diagonal] = 0.0  # exact zeros: the Gram form leaves rounding noise on the diagonal
    return distances.mean(axis=(1, 2))


def energy_distance(first, second) -> float:
    """Energy distance between two samples [n, D] and [m, D]: 2 E|X - Y| - E|X - X'| - E|Y - Y'|.

    Means run over all pairs, an item with itself included (V-statistics, as geomloss); this is the square of what
    `scipy.stats.energy_distance` returns for one-dimensional samples.
    """
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.ndim != 2 or second.ndim != 2 or first.shape[1] != second.shape[1]:
        raise ValueError(f"samples must be [n, D] and [m, D], got {first.shape} and {second.shape}")
    cross = _pairwise_distances(first, second).mean()
    return float(2 * cross - _mean_within_distance(first[None])[0] - _mean_within_distance(second[None])[0])


class _EnergyToControls:
    """Energy distances of many well sets to one control sample, sharing the control terms.

    `2 E|X - C|` is the mean over X's wells of each well's mean distance to C, computed once per well of `wells`
    (the wells sets may hold); `E|C - C'|` once; only `E|X - X'|` is computed per set.
    """

    def __init__(self, features: np.ndarray, controls: np.ndarray, wells: np.ndarray):
        self.features = features
        self.control_term = float(_mean_within_distance(controls[None])[0])
        self.mean_to_controls = np.full(len(features), np.nan)
        chunk = max(1, (1 << 22) // max(1, len(controls)))
        for start in range(0, len(wells), chunk):
            index = wells[start : start + chunk]
            self.mean_to_controls[index] = _pairwise_distances(features[index], controls).mean(axis=1)

    def __call__(self, sets: np.ndarray) -> np.ndarray:
        """float [sets]: energy distance of each row's wells (int [sets, k]) to the controls."""
        size = sets.shape[1]
        out = np.empty(len(sets))
        chunk = max(1, (1 << 22) // (size * max(size, self.features.shape[1])))
        for start in range(0, len(sets), chunk):
            members = sets[start : start + chunk]
            within = _mean_within_distance(self.features[members])
            cross = self.mean_to_controls[members].mean(axis=1)
            out[start : start + chunk] = 2 * cross - within - self.control_term
        return out


def signal_magnitude_benchmark(
    features,
    metadata: pd.DataFrame,
    *,
    perturbation_columns: Sequence[str] | None = None,
    is_control: np.ndarray | None = None,
    reference_control_mask: np.ndarray | None = None,
    null: str = "random-wells",
    negative_control_perturbations: Sequence[str] | None = None,
    n_null: int = 200,
    min_replicates: int = MAGNITUDE_MIN_REPLICATES,
    max_replicates: int = MAX_REPLICATES,
    max_controls: int = MAX_CONTROLS,
    p_threshold: float = P_THRESHOLD,
    seed: int = 0,
) -> BenchmarkResult:
    """Fraction of perturbations whose wells sit farther from the controls than the null allows.

    Args:
        features: float [wells, dimensions], well embeddings after batch correction.
        metadata: one row per well with the perturbation column(s).
        is_control: bool [wells], the control wells (never scored, never in a random set); None for none.
        reference_control_mask: bool [wells], the wells the energy distance is measured to (e.g. the negative
            controls the correction was fitted on); None: the `is_control` wells.
        null: `random-wells` or `negative-controls` (then `negative_control_perturbations` names them).
        n_null: random well sets per set size.
        min_replicates: perturbations with fewer wells are skipped and counted (EFAAR: 5).
        max_replicates: larger perturbations are scored on this many of their wells (seeded).
        max_controls: control wells sampled once (seeded) for every distance (EFAAR: 1000).

    Returns:
        `BenchmarkResult` with `signal_magnitude_fraction`.
    """
    features = check_features(features, metadata)
    _check_null(null, negative_control_perturbations, min_replicates, 2)
    is_control = control_wells(is_control, metadata)
    reference = control_wells(is_control if reference_control_mask is None else reference_control_mask, metadata)
    references = np.flatnonzero(reference)
    if len(references) == 0:
        raise BenchmarkNotApplicable("signal magnitude needs control wells to measure the distance to; none found")
    rng = np.random.default_rng(seed)
    sampled_controls = np.sort(rng.choice(references, min(max_controls, len(references)), replace=False))
    queries = _queries(metadata, perturbation_columns, is_control, negative_control_perturbations)
    distance = _EnergyToControls(features, features[sampled_controls], queries.pool)

    used_wells = [
        wells if len(wells) <= max_replicates else np.sort(rng.choice(wells, max_replicates, replace=False))
        for wells in queries.wells
    ]
    scored = _score_against_null(
        distance,
        queries,
        used_wells,
        min_replicates=min_replicates,
        null=null,
        n_null=n_null,
        rng=rng,
        side="right",
    )
    recipe = {
        "score": "energy distance 2E|X-C| - E|X-X'| - E|C-C'| (V-statistics) to sampled control wells",
        "controls": f"{len(references)} control wells",
        "max_controls": max_controls,
        "null": null,
        "p": "share of null scores > the score",
        "min_replicates": min_replicates,
        "max_replicates": max_replicates,
        "seed": seed,
    }
    sizes = np.array([len(wells) for wells in queries.wells])
    extra = {
        "signal_magnitude_subsampled_to_max_replicates": int((scored.is_query & (sizes > max_replicates)).sum()),
        "signal_magnitude_control_wells": len(sampled_controls),
    }
    return _result("signal_magnitude", scored, recipe, p_threshold, extra)


__all__ = [
    "NULL_KINDS",
    "choose_null",
    "energy_distance",
    "mean_pairwise_cosine",
    "random_well_sets",
    "signal_consistency_benchmark",
    "signal_magnitude_benchmark",
]
