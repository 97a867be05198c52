"""Replicate consistency (paper.md §4b reconstruction): the statistics, the pairs it compares, caps, seeds, errors."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import cramervonmises_2samp, ks_2samp

from eval.benchmark_common import BenchmarkNotApplicable
from eval.replicate_consistency import replicate_consistency_benchmark, replicate_cosines, replicate_profiles


def cramer_von_mises_by_hand(first, second):
    """T = U / (n m (n + m)) - (4 m n - 1) / (6 (m + n)), U from the ranks in the pooled sample (no ties)."""
    n, m = len(first), len(second)
    ranks = np.argsort(np.argsort(np.concatenate([first, second]))) + 1
    first_ranks, second_ranks = np.sort(ranks[:n]), np.sort(ranks[n:])
    u = n * ((first_ranks - np.arange(1, n + 1)) ** 2).sum() + m * ((second_ranks - np.arange(1, m + 1)) ** 2).sum()
    return u / (n * m * (n + m)) - (4 * m * n - 1) / (6 * (m + n))


def test_ks_and_cramer_von_mises_of_two_tiny_samples():
    # Interleaved samples: the empirical CDFs differ by at most 1/3; U = 3 * 5 + 3 * 14 = 57, T = 57/54 - 35/36.
    assert ks_2samp([1, 3, 5], [2, 4, 6]).statistic == pytest.approx(1 / 3)
    assert cramervonmises_2samp([1, 3, 5], [2, 4, 6]).statistic == pytest.approx(57 / 54 - 35 / 36)
    assert cramer_von_mises_by_hand([1, 3, 5], [2, 4, 6]) == pytest.approx(57 / 54 - 35 / 36)
    # Separated samples: KS 1; U = 3 * 27, T = 81/54 - 35/36.
    assert ks_2samp([1, 2, 3], [4, 5, 6]).statistic == 1.0
    assert cramervonmises_2samp([1, 2, 3], [4, 5, 6]).statistic == pytest.approx(81 / 54 - 35 / 36)


def two_by_two_map():
    """Two perturbations on two plates; each profile is the mean of two wells. Replicate cosines 1/sqrt(2) and
    1/sqrt(1.25); every cross-perturbation profile pair is orthogonal; control wells would spoil all of it."""
    e = np.eye(5)
    profiles = {("p1", 1): e[0], ("p1", 2): e[0] + e[1], ("p2", 1): e[2], ("p2", 2): e[2] + 0.5 * e[3]}
    rows, features = [], []
    for (perturbation, plate), profile in profiles.items():
        for sign in (1, -1):
            rows.append({"perturbation": perturbation, "experiment_name": "exp", "plate": plate})
            features.append(profile + sign * 0.3 * e[4])
        rows.append({"perturbation": "EMPTY_control", "experiment_name": "exp", "plate": plate})
        features.append(np.ones(5))
    return np.array(features), pd.DataFrame(rows)


def test_distributions_are_replicate_pairs_across_batches_and_different_perturbation_pairs():
    features, metadata = two_by_two_map()
    is_control = metadata["perturbation"].eq("EMPTY_control").to_numpy()
    profiles = replicate_profiles(features, metadata, is_control=is_control)
    assert len(profiles.perturbation) == 4 and list(profiles.wells) == [2, 2, 2, 2]  # controls left out
    cosines, second_null = replicate_cosines(profiles, seed=0)
    assert sorted(cosines.replicate) == pytest.approx(sorted([1 / np.sqrt(2), 1 / np.sqrt(1.25)]))
    assert len(cosines.null) == 2 and np.allclose(cosines.null, 0) and np.allclose(second_null, 0)
    result = replicate_consistency_benchmark(features, metadata, is_control=is_control, seeds=[0, 1])
    assert result.metrics["replicate_consistency_ks"] == 1.0
    expected_cm = cramervonmises_2samp(cosines.replicate, cosines.null).statistic
    assert result.metrics["replicate_consistency_cm"] == pytest.approx(expected_cm)
    assert result.metrics_std["replicate_consistency_ks"] == 0.0
    assert result.counts["replicate_consistency_pairs"] == 2
    assert result.counts["replicate_consistency_perturbations_with_replicates"] == 2


def plate_map(signal: float, perturbations=40, plates=5, wells=3, dimensions=24, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((perturbations, dimensions))
    rows, features = [], []
    for plate in range(plates):
        plate_effect = 0.5 * rng.standard_normal(dimensions)
        for perturbation in range(perturbations):
            for _ in range(wells):
                rows.append({"perturbation": f"g{perturbation}", "experiment_name": f"e{plate % 2}", "plate": plate})
                features.append(signal * centres[perturbation] + plate_effect + rng.standard_normal(dimensions))
    return np.array(features), pd.DataFrame(rows)


def test_consistent_replicates_score_high_and_noise_scores_like_the_baseline():
    features, metadata = plate_map(signal=0.7)
    consistent = replicate_consistency_benchmark(features, metadata, seeds=range(3))
    assert consistent.metrics["replicate_consistency_ks"] > 0.5
    assert consistent.metrics["replicate_consistency_cm"] > 10 * consistent.baselines["replicate_consistency_cm"]
    assert consistent.counts["replicate_consistency_mean_cosine_replicates"] > 0.2
    noise_features, _ = plate_map(signal=0.0)
    noise = replicate_consistency_benchmark(noise_features, metadata, seeds=range(3))
    assert noise.metrics["replicate_consistency_ks"] < 0.15
    assert abs(noise.metrics["replicate_consistency_ks"] - noise.baselines["replicate_consistency_ks"]) < 0.1


def test_seeds_reproduce_and_pairs_per_perturbation_are_capped():
    features, metadata = plate_map(signal=0.7, perturbations=10, plates=12, wells=1)
    first = replicate_consistency_benchmark(features, metadata, seeds=range(4), max_pairs_per_perturbation=20)
    again = replicate_consistency_benchmark(features, metadata, seeds=range(4), max_pairs_per_perturbation=20)
    assert first == again
    assert first.counts["replicate_consistency_pairs"] == 10 * 20  # 66 pairs per perturbation, capped at 20
    uncapped = replicate_consistency_benchmark(features, metadata, seeds=[0])
    assert uncapped.counts["replicate_consistency_pairs"] == 10 * 66


def test_experiment_level_batches_and_bad_input():
    features, metadata = plate_map(signal=0.7, perturbations=6, plates=4)
    by_experiment = replicate_consistency_benchmark(features, metadata, batch_columns=("experiment_name",), seeds=[0])
    assert by_experiment.counts["replicate_consistency_profiles"] == 6 * 2
    with pytest.raises(ValueError, match="batch column"):
        replicate_consistency_benchmark(features, metadata.drop(columns="plate"))
    one_plate = metadata["plate"] == 0
    with pytest.raises(BenchmarkNotApplicable, match="at least two batches"):
        replicate_consistency_benchmark(features[one_plate], metadata[one_plate])
    with pytest.raises(ValueError, match="NaN"):
        replicate_consistency_benchmark(np.where(np.eye(len(features), features.shape[1]), np.nan, features), metadata)
