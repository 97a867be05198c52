"""Replicate consistency across batches: KS and Cramér-von Mises (paper.md §4b; Table 1's "KS" and "CM", §6.1).

The paper reports two numbers per model but its exact construction was not recovered (paper.md §4b, §10.5). This
module implements the reconstruction paper.md §4b proposes, consistent with EFAAR's `cluster_benchmark` (a KS
statistic between two cosine distributions). The recipe, also written into `counts["replicate_consistency_recipe"]`:

1. Control wells (`is_control`: in `phenom eval`, every control of the metadata's column mapping) are left out.
2. Replicate profiles: the mean (or median) of a perturbation's wells within one batch, where a perturbation is
   `perturbation` (+ `concentration` when present) and a batch is `experiment_name` + `plate` by default (a plate
   is RxRx3's physical batch; pass `batch_columns=("experiment_name",)` for experiment-level replicates).
3. Replicate cosines (distribution A): the cosine of every pair of profiles of the same perturbation (so from two
   different batches); a perturbation contributes at most `max_pairs_per_perturbation` pairs (100; drawn uniformly
   without replacement), so that the few perturbations present on most plates (RxRx3-core's PLK1 and MTOR guides)
   do not make up the distribution.
4. Null cosines (distribution B): as many pairs as A, drawn uniformly among profile pairs of *different*
   perturbations from *different* batches.
5. KS = `scipy.stats.ks_2samp(A, B).statistic`, CM = `scipy.stats.cramervonmises_2samp(A, B).statistic`, for seeds
   0..9 (each seed redraws the capped pairs and the null); metrics are means, `metrics_std` standard deviations.
   Both grow as replicates become more alike than random pairs; CM also grows with the sample size, so compare CM
   only between models on the same data (the paper's 12-18 anchors ordering, not magnitude).
6. Baseline: the same statistics between B and a second, independent null sample of the same size: what "no
   replicate consistency" gives at this sample size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import cramervonmises_2samp, ks_2samp

from eval.benchmark_common import (
    BenchmarkNotApplicable,
    BenchmarkResult,
    check_features,
    control_wells,
    group_codes,
    mean_and_std,
    perturbation_columns_for,
    recipe_text,
    unit_rows,
)

DEFAULT_SEEDS = tuple(range(10))
DEFAULT_BATCH_COLUMNS = ("experiment_name", "plate")
MAX_PAIRS_PER_PERTURBATION = 100


@dataclass(frozen=True)
class ReplicateProfiles:
    """Unit-norm replicate profiles and their labels.

    Attributes:
        unit_profiles: float [profiles, dimensions], each row a perturbation's aggregated wells in one batch, L2 = 1.
        perturbation: int [profiles], the perturbation code of each profile.
        batch: int [profiles], the batch code of each profile.
        wells: int [profiles], how many wells each profile aggregates.
    """

    unit_profiles: np.ndarray
    perturbation: np.ndarray
    batch: np.ndarray
    wells: np.ndarray


@dataclass(frozen=True)
class ReplicateCosines:
    """The two distributions the statistics compare (for one seed).

    Attributes:
        replicate: float [pairs], cosines of same-perturbation profiles from different batches (A).
        null: float [pairs], cosines of different-perturbation profiles from different batches (B).
    """

    replicate: np.ndarray
    null: np.ndarray


def replicate_profiles(
    features,
    metadata: pd.DataFrame,
    *,
    perturbation_columns: Sequence[str] | None = None,
    batch_columns: Sequence[str] = DEFAULT_BATCH_COLUMNS,
    is_control: np.ndarray | None = None,
    aggregate: str = "mean",
) -> ReplicateProfiles:
    """Aggregate wells [N, D] (+ metadata, N rows) to one profile per perturbation and batch."""
    features = check_features(features, metadata)
    perturbation_columns = perturbation_columns_for(metadata, perturbation_columns)
    missing = [column for column in batch_columns if column not in metadata]
    if missing:
        raise ValueError(f"metadata lacks the batch column(s) {missing}; it has {list(metadata.columns)}")
    if aggregate not in ("mean", "median"):
        raise ValueError(f"aggregate must be 'mean' or 'median', got {aggregate!r}")
    keep = ~control_wells(is_control, metadata)
    features, metadata = features[keep], metadata[keep]
    perturbation, _ = group_codes(metadata, perturbation_columns)
    batch, _ = group_codes(metadata, batch_columns)
    profile_code = np.unique(perturbation * (batch.max() + 1) + batch, return_inverse=True)[1]
    grouped = pd.DataFrame(features).groupby(profile_code, sort=True)
    aggregated = (grouped.mean() if aggregate == "mean" else grouped.median()).to_numpy()
    first_rows = np.unique(profile_code, return_index=True)[1]
    return ReplicateProfiles(
        unit_profiles=unit_rows(aggregated),
        perturbation=perturbation[first_rows],
        batch=batch[first_rows],
        wells=np.bincount(profile_code),
    )


def _pairs_within(rng: np.random.Generator, members: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """All unordered pairs of `members`, or `cap` of them drawn uniformly without replacement."""
    count = len(members)
    total = count * (count - 1) // 2
    if total <= cap:
        first, second = np.triu_indices(count, k=1)
        return members[first], members[second]
    chosen = np.sort(rng.choice(total, cap, replace=False))
    # Row i of the upper triangle starts at linear index i * count - i * (i + 1) / 2.
    starts = np.arange(count) * count - np.arange(count) * (np.arange(count) + 1) // 2
    first = np.searchsorted(starts, chosen, side="right") - 1
    second = chosen - starts[first] + first + 1
    return members[first], members[second]


def _null_pairs(rng: np.random.Generator, profiles: ReplicateProfiles, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` pairs drawn uniformly among profiles of different perturbations from different batches."""
    firsts, seconds, have = [], [], 0
    total = len(profiles.perturbation)
    for _ in range(1000):
        first = rng.integers(total, size=2 * (count - have) + 16)
        second = rng.integers(total, size=len(first))
        keep = (profiles.perturbation[first] != profiles.perturbation[second]) & (
            profiles.batch[first] != profiles.batch[second]
        )
        firsts.append(first[keep])
        seconds.append(second[keep])
        have += int(keep.sum())
        if have >= count:
            return np.concatenate(firsts)[:count], np.concatenate(seconds)[:count]
    raise BenchmarkNotApplicable("too few profile pairs of different perturbations from different batches")


def replicate_cosines(profiles: ReplicateProfiles, seed: int = 0, max_pairs_per_perturbation: int = 100):
    """Distributions A (replicates) and B (null) for one seed, plus a second null sample (the baseline's).

    Returns:
        (ReplicateCosines, second_null float [pairs]).
    """
    rng = np.random.default_rng(seed)
    order = np.argsort(profiles.perturbation, kind="stable")
    boundaries = np.flatnonzero(np.diff(profiles.perturbation[order])) + 1
    firsts, seconds = [], []
    for members in np.split(order, boundaries):
        if len(members) >= 2:
            first, second = _pairs_within(rng, members, max_pairs_per_perturbation)
            firsts.append(first)
            seconds.append(second)
    if not firsts:
        raise BenchmarkNotApplicable(
            "replicate consistency needs a perturbation profiled in at least two batches; none is"
        )
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    unit = profiles.unit_profiles
    replicate = np.einsum("ij,ij->i", unit[first], unit[second])
    null_first, null_second = _null_pairs(rng, profiles, 2 * len(first))
    null = np.einsum("ij,ij->i", unit[null_first], unit[null_second])
    return ReplicateCosines(replicate=replicate, null=null[: len(first)]), null[len(first) :]


def replicate_consistency_benchmark(
    features,
    metadata: pd.DataFrame,
    *,
    perturbation_columns: Sequence[str] | None = None,
    batch_columns: Sequence[str] = DEFAULT_BATCH_COLUMNS,
    is_control: np.ndarray | None = None,
    aggregate: str = "mean",
    seeds: Sequence[int] = DEFAULT_SEEDS,
    max_pairs_per_perturbation: int = MAX_PAIRS_PER_PERTURBATION,
) -> BenchmarkResult:
    """KS and Cramér-von Mises statistics of replicate vs random-pair cosines (module docstring: the recipe).

    Args:
        features: float [wells, dimensions], well embeddings after batch correction.
        metadata: one row per well with the perturbation and batch columns.
        perturbation_columns: what names a perturbation (default `perturbation` + `concentration` if present).
        batch_columns: what names a batch (default experiment + plate).
        is_control: bool [wells], control wells, left out (None: none).
        aggregate: `mean` (EFAAR's default) or `median` of a perturbation's wells in a batch.
        seeds: one draw of capped replicate pairs and null pairs per seed.
        max_pairs_per_perturbation: the most replicate pairs one perturbation contributes.

    Returns:
        `BenchmarkResult` with `replicate_consistency_ks` and `replicate_consistency_cm`.
    """
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    profiles = replicate_profiles(
        features, metadata, perturbation_columns=perturbation_columns, batch_columns=batch_columns,
        is_control=is_control, aggregate=aggregate,
    )
    statistics = {name: [] for name in ("ks", "cm", "ks_baseline", "cm_baseline", "mean_a", "mean_b")}
    for seed in seeds:
        cosines, second_null = replicate_cosines(profiles, seed, max_pairs_per_perturbation)
        statistics["ks"].append(ks_2samp(cosines.replicate, cosines.null).statistic)
        statistics["cm"].append(cramervonmises_2samp(cosines.replicate, cosines.null).statistic)
        statistics["ks_baseline"].append(ks_2samp(second_null, cosines.null).statistic)
        statistics["cm_baseline"].append(cramervonmises_2samp(second_null, cosines.null).statistic)
        statistics["mean_a"].append(cosines.replicate.mean())
        statistics["mean_b"].append(cosines.null.mean())

    metrics, metrics_std, baselines = {}, {}, {}
    for name in ("ks", "cm"):
        key = f"replicate_consistency_{name}"
        metrics[key], metrics_std[key] = mean_and_std(statistics[name])
        baselines[key] = mean_and_std(statistics[f"{name}_baseline"])[0]
    per_perturbation = np.bincount(profiles.perturbation)
    counts = {
        "replicate_consistency_profiles": len(profiles.perturbation),
        "replicate_consistency_perturbations_with_replicates": int((per_perturbation >= 2).sum()),
        "replicate_consistency_perturbations_without_replicates": int((per_perturbation == 1).sum()),
        "replicate_consistency_pairs": len(cosines.replicate),
        "replicate_consistency_null_pairs": len(cosines.null),
        "replicate_consistency_mean_cosine_replicates": float(np.mean(statistics["mean_a"])),
        "replicate_consistency_mean_cosine_null": float(np.mean(statistics["mean_b"])),
        "replicate_consistency_recipe": recipe_text({
            "profile": f"{aggregate} of a perturbation's wells per batch ({' + '.join(batch_columns)})",
            "perturbation": " + ".join(perturbation_columns_for(metadata, perturbation_columns)),
            "controls_left_out": f"{int(control_wells(is_control, metadata).sum())} control wells",
            "replicate_pairs": f"same perturbation, different batches; at most {max_pairs_per_perturbation} "
            "per perturbation",
            "null_pairs": "as many, uniform over different perturbations from different batches",
            "statistics": "scipy ks_2samp and cramervonmises_2samp statistics (replicates vs null)",
            "baseline": "the same statistics between the null and a second null sample of equal size",
            "seeds": f"{len(seeds)} ({seeds[0]}..{seeds[-1]})",
        }),
    }
    return BenchmarkResult(metrics, metrics_std, baselines, counts)


__all__ = [
    "DEFAULT_BATCH_COLUMNS",
    "DEFAULT_SEEDS",
    "MAX_PAIRS_PER_PERTURBATION",
    "ReplicateCosines",
    "ReplicateProfiles",
    "replicate_consistency_benchmark",
    "replicate_cosines",
    "replicate_profiles",
]
