"""Perturbation signal consistency and magnitude (paper.md §4d): scores, p-value rules, nulls, skips, errors."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import energy_distance as scipy_energy_distance
from sklearn.metrics.pairwise import cosine_similarity

from eval.benchmark_common import BenchmarkNotApplicable
from eval.perturbation_signal import (
    energy_distance,
    random_well_sets,
    signal_consistency_benchmark,
    signal_magnitude_benchmark,
)


def control_rows(metadata: pd.DataFrame) -> np.ndarray:
    """The control wells of these tests' maps (never scored; magnitude's reference)."""
    return metadata["perturbation"].eq("EMPTY_control").to_numpy()


def test_energy_distance_by_hand_and_against_scipy():
    # X = {0, 2}, Y = {1}: E|X - Y| = 1, E|X - X'| = (0 + 2 + 2 + 0) / 4 = 1, E|Y - Y'| = 0 -> 2 - 1 - 0 = 1.
    assert energy_distance([[0.0], [2.0]], [[1.0]]) == pytest.approx(1.0)
    assert energy_distance([[0.0]], [[3.0]]) == pytest.approx(6.0)
    rng = np.random.default_rng(0)
    first, second = rng.standard_normal(7), rng.standard_normal(11) + 0.5
    # scipy's one-dimensional energy distance is the square root of the same V-statistic combination.
    expected = scipy_energy_distance(first, second) ** 2
    assert energy_distance(first[:, None], second[:, None]) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match=r"\[n, D\]"):
        energy_distance(np.zeros((3, 2)), np.zeros((3, 4)))


def pairs_map(cosines: dict[str, float]) -> tuple[np.ndarray, pd.DataFrame]:
    """Each perturbation has two wells whose cosine is given, so its consistency score is exactly that cosine."""
    rows, features = [], []
    for index, (name, cosine) in enumerate(cosines.items()):
        angle = np.arccos(cosine)
        plane = np.zeros((2, 2 * len(cosines)))
        plane[0, 2 * index], plane[1, 2 * index + 1] = 1.0, 1.0
        for vector in (plane[0], np.cos(angle) * plane[0] + np.sin(angle) * plane[1]):
            rows.append({"perturbation": name})
            features.append(vector)
    rows.append({"perturbation": "EMPTY_control"})
    features.append(np.ones(2 * len(cosines)))
    return np.array(features), pd.DataFrame(rows)


def test_consistency_p_value_is_the_share_of_null_at_least_as_high():
    null = {"n1": 0.1, "n2": 0.2, "n3": 0.3, "n4": 0.4}
    queries = {"q_between": 0.35, "q_above": 0.5, "q_tied": 0.3}  # p = 1/4, 0, 2/4 (a tie counts against it)
    features, metadata = pairs_map({**null, **queries})
    result = signal_consistency_benchmark(
        features, metadata, is_control=control_rows(metadata), null="negative-controls",
        negative_control_perturbations=list(null)
    )
    assert result.metrics["signal_consistency_fraction"] == pytest.approx(1 / 3)
    assert result.counts["signal_consistency_perturbations"] == 3
    assert result.counts["signal_consistency_mean_score"] == pytest.approx(np.mean(list(queries.values())))
    # Baseline, each negative control against the other three: n4 (0.4) p = 0, n3 1/3, n2 2/3, n1 1 -> 1/4.
    assert result.baselines == {"signal_consistency_fraction": pytest.approx(1 / 4)}
    lenient = signal_consistency_benchmark(
        features, metadata, is_control=control_rows(metadata), null="negative-controls",
        negative_control_perturbations=list(null), p_threshold=0.25
    )
    assert lenient.metrics["signal_consistency_fraction"] == pytest.approx(2 / 3)
    assert lenient.baselines == {"signal_consistency_fraction": pytest.approx(1 / 4)}


def test_consistency_score_is_the_mean_lower_triangle_cosine():
    rng = np.random.default_rng(1)
    features = rng.standard_normal((7, 5))
    metadata = pd.DataFrame({"perturbation": ["a"] * 4 + ["b"] * 3})
    expected = [
        cosine_similarity(block)[np.tril_indices(len(block), k=-1)].mean() for block in (features[:4], features[4:])
    ]
    result = signal_consistency_benchmark(features, metadata, null="negative-controls",
                                          negative_control_perturbations=["b"])
    assert result.counts["signal_consistency_mean_score"] == pytest.approx(expected[0])


def magnitude_map(seed=0):
    """One-dimensional wells: controls near 0; null perturbations near 0; queries shifted by 0.2 and by 3."""
    rng = np.random.default_rng(seed)
    groups = {"EMPTY_control": 0.0, "n1": 0.0, "n2": 0.0, "n3": 0.0, "n4": 0.0, "small": 0.2, "large": 3.0}
    rows, values = [], []
    for name, shift in groups.items():
        count = 40 if name == "EMPTY_control" else 5
        values.extend(shift + rng.standard_normal(count))
        rows += [{"perturbation": name}] * count
    rows.append({"perturbation": "too_few"})
    values.append(9.0)
    return np.array(values)[:, None], pd.DataFrame(rows)


def test_magnitude_p_value_is_the_share_of_null_strictly_higher_with_scipy_distances():
    features, metadata = magnitude_map()
    values = features[:, 0]
    controls = values[metadata["perturbation"] == "EMPTY_control"]
    squared = {
        name: scipy_energy_distance(values[metadata["perturbation"] == name], controls) ** 2
        for name in ("n1", "n2", "n3", "n4", "small", "large")
    }
    null = np.array([squared[name] for name in ("n1", "n2", "n3", "n4")])
    expected_p = {name: np.mean(null > squared[name]) for name in ("small", "large")}
    result = signal_magnitude_benchmark(
        features, metadata, is_control=control_rows(metadata), null="negative-controls",
        negative_control_perturbations=["n1", "n2", "n3", "n4"]
    )
    expected_fraction = np.mean([expected_p[name] <= 0.05 for name in ("small", "large")])
    assert result.metrics["signal_magnitude_fraction"] == pytest.approx(expected_fraction)
    assert expected_p["large"] == 0.0
    assert result.counts["signal_magnitude_mean_score"] == pytest.approx((squared["small"] + squared["large"]) / 2)
    assert result.counts["signal_magnitude_skipped_too_few_replicates"] == 1  # "too_few" has one well
    assert result.counts["signal_magnitude_control_wells"] == 40
    # Baseline: each negative control's p against the other three (share strictly higher).
    loo = [np.mean(np.delete(null, index) > null[index]) for index in range(len(null))]
    assert result.baselines["signal_magnitude_fraction"] == pytest.approx(np.mean(np.array(loo) <= 0.05))


def planted_wells(signal_share=0.5, perturbations=40, wells=8, dimensions=16, seed=0):
    rng = np.random.default_rng(seed)
    rows, features = [], []
    for index in range(perturbations):
        centre = rng.standard_normal(dimensions) * (index < signal_share * perturbations)
        for _ in range(wells):
            rows.append({"perturbation": f"g{index}"})
            features.append(centre + rng.standard_normal(dimensions))
    for _ in range(200):
        rows.append({"perturbation": "EMPTY_control"})
        features.append(rng.standard_normal(dimensions))
    return np.array(features), pd.DataFrame(rows)


def test_random_well_null_finds_planted_signal_and_about_five_percent_of_noise():
    features, metadata = planted_wells(signal_share=0.5)
    for benchmark, name in ((signal_consistency_benchmark, "signal_consistency_fraction"),
                            (signal_magnitude_benchmark, "signal_magnitude_fraction")):
        planted = benchmark(features, metadata, is_control=control_rows(metadata), seed=0)
        assert planted.metrics[name] == pytest.approx(0.5, abs=0.05)
        assert planted == benchmark(features, metadata, is_control=control_rows(metadata), seed=0)  # seeded
    noise_features, noise_metadata = planted_wells(signal_share=0.0, perturbations=200, wells=6)
    for benchmark, name in ((signal_consistency_benchmark, "signal_consistency_fraction"),
                            (signal_magnitude_benchmark, "signal_magnitude_fraction")):
        noise = benchmark(noise_features, noise_metadata, is_control=control_rows(noise_metadata), seed=1)
        assert noise.metrics[name] < 0.15 and noise.baselines[name] < 0.15


def test_large_perturbations_are_subsampled_for_magnitude_and_counted():
    features, metadata = planted_wells(perturbations=6, wells=30)
    result = signal_magnitude_benchmark(features, metadata, is_control=control_rows(metadata), max_replicates=10,
                                        n_null=50)
    assert result.counts["signal_magnitude_subsampled_to_max_replicates"] == 6
    assert "max_replicates: 10" in result.counts["signal_magnitude_recipe"]


@pytest.mark.parametrize("pool_size, set_size", [(1000, 5), (12, 9)])  # both drawing paths
def test_random_well_sets_hold_distinct_wells_and_cover_the_pool(pool_size, set_size):
    sets = random_well_sets(np.random.default_rng(0), pool_size, set_size, 400)
    assert sets.shape == (400, set_size)
    assert all(len(set(row)) == set_size for row in sets.tolist())
    assert sets.min() >= 0 and sets.max() < pool_size
    counts = np.bincount(sets.ravel(), minlength=pool_size)
    assert (counts > 0).mean() > 0.85
    with pytest.raises(ValueError, match="distinct"):
        random_well_sets(np.random.default_rng(0), 3, 4, 1)


def test_bad_arguments_get_clear_errors():
    features, metadata = planted_wells(perturbations=4)
    with pytest.raises(ValueError, match="null must be one of"):
        signal_consistency_benchmark(features, metadata, null="shuffled")
    with pytest.raises(ValueError, match="needs negative_control_perturbations"):
        signal_magnitude_benchmark(features, metadata, null="negative-controls")
    with pytest.raises(BenchmarkNotApplicable, match="none of negative_control_perturbations"):
        signal_consistency_benchmark(features, metadata, null="negative-controls",
                                     negative_control_perturbations=["absent"])
    no_controls = metadata["perturbation"] != "EMPTY_control"
    with pytest.raises(BenchmarkNotApplicable, match="control wells"):
        signal_magnitude_benchmark(features[no_controls], metadata[no_controls],
                                   is_control=control_rows(metadata[no_controls]))
    with pytest.raises(ValueError, match="is_control has shape"):
        signal_consistency_benchmark(features, metadata, is_control=control_rows(metadata)[:-1])
    with pytest.raises(ValueError, match="perturbation column"):
        signal_consistency_benchmark(features, metadata.rename(columns={"perturbation": "gene"}))
