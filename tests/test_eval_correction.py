"""Batch correction equals a direct numpy/scipy computation of the paper.md §5 steps, and refuses thin batches.

PCA axes are defined up to sign, so results are compared after matching each output column's sign to the direct
computation (a sign flip of a principal axis changes no cosine similarity).
"""

import numpy as np
import pytest
import scipy.linalg

from eval.correction import centerscale_per_batch, coral_whitening, correct, pca_centerscale, tvn


def small_plate(num_wells=40, num_features=5, seed=0):
    rng = np.random.default_rng(seed)
    batches = np.array(["exp-A"] * 18 + ["exp-B"] * 22)
    features = rng.normal(size=(num_wells, num_features)) @ rng.normal(size=(num_features, num_features))
    features += np.where(batches == "exp-A", 3.0, -2.0)[:, None]
    is_control = np.zeros(num_wells, dtype=bool)
    is_control[[0, 2, 4, 6, 8, 10, 12, 18, 20, 22, 24, 26, 28, 30, 32]] = True
    return features, is_control, batches


def direct_pca_projection(fit_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Project `rows` on the principal axes of `fit_rows` (centred by their mean), from numpy's SVD."""
    mean = fit_rows.mean(axis=0)
    _, _, axes = np.linalg.svd(fit_rows - mean, full_matrices=False)
    return (rows - mean) @ axes.T


def standardize_on(rows: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    return (rows - fit_rows.mean(axis=0)) / fit_rows.std(axis=0)


def assert_equal_up_to_column_signs(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    signs = np.sign((actual * expected).sum(axis=0))
    np.testing.assert_allclose(actual * signs, expected, rtol=1e-9, atol=1e-9)


def test_centerscale_standardizes_each_batch_on_its_own_controls():
    features, is_control, batches = small_plate()
    expected = np.empty_like(features)
    for batch in ("exp-A", "exp-B"):
        rows = batches == batch
        expected[rows] = standardize_on(features[rows], features[rows & is_control])
    np.testing.assert_allclose(centerscale_per_batch(features, is_control, batches), expected, rtol=1e-12)


def test_pca_centerscale_matches_direct_pca_on_pooled_controls_then_per_batch_scaling():
    features, is_control, batches = small_plate()
    projected = direct_pca_projection(features[is_control], features)
    expected = np.empty_like(projected)
    for batch in ("exp-A", "exp-B"):
        rows = batches == batch
        expected[rows] = standardize_on(projected[rows], projected[rows & is_control])
    assert_equal_up_to_column_signs(pca_centerscale(features, is_control, batches), expected)


def test_tvn_matches_direct_efaar_order_with_scipy_fractional_matrix_power():
    features, is_control, batches = small_plate()
    step = standardize_on(features, features[is_control])  # (a) scale on all controls
    step = direct_pca_projection(step[is_control], step)  # (b) PCA fitted on the controls
    step = standardize_on(step, step[is_control])  # (c) scale on all controls again
    expected = step.copy()
    for batch in ("exp-A", "exp-B"):  # (d) per batch: rows @ (cov(controls, ddof=1) + 0.5 I)^(-1/2)
        rows = batches == batch
        covariance = np.cov(step[rows & is_control], rowvar=False, ddof=1) + 0.5 * np.eye(step.shape[1])
        expected[rows] = step[rows] @ np.real(scipy.linalg.fractional_matrix_power(covariance, -0.5))
    assert_equal_up_to_column_signs(tvn(features, is_control, batches), expected)


def test_coral_whitening_is_the_inverse_square_root_of_the_regularized_covariance():
    rng = np.random.default_rng(1)
    controls = rng.normal(size=(12, 4)) * [1.0, 2.0, 0.5, 3.0]
    whitening = coral_whitening(controls)
    covariance = np.cov(controls, rowvar=False) + 0.5 * np.eye(4)
    np.testing.assert_allclose(whitening @ covariance @ whitening, np.eye(4), atol=1e-10)
    np.testing.assert_allclose(whitening, whitening.T, atol=1e-12)


def test_a_batch_with_too_few_controls_is_an_error_naming_it():
    features, is_control, batches = small_plate()
    is_control[(batches == "exp-B")] = False
    is_control[20] = True  # exp-B keeps a single control
    for method in ("centerscale", "pca-centerscale", "tvn"):
        with pytest.raises(ValueError, match=r"too few control wells .* in batch 'exp-B' \(1 of 22 wells\)"):
            correct(features, is_control, batches, method)


def test_none_returns_the_features_unchanged_and_unknown_methods_are_refused():
    features, is_control, batches = small_plate()
    np.testing.assert_array_equal(correct(features, is_control, batches, "none"), features)
    with pytest.raises(ValueError, match="unknown correction 'combat'"):
        correct(features, is_control, batches, "combat")


def wide_plate(num_features=12, controls_per_batch=4, seed=0):
    """Two batches, more features than control wells: pooled controls span at most 7 of 12 directions."""
    rng = np.random.default_rng(seed)
    batches = np.array(["exp-A"] * 10 + ["exp-B"] * 10)
    features = rng.normal(size=(20, num_features)) + np.where(batches == "exp-A", 1.0, -1.0)[:, None]
    is_control = np.zeros(20, dtype=bool)
    is_control[:controls_per_batch] = True
    is_control[10:10 + controls_per_batch] = True
    return features, is_control, batches


@pytest.mark.parametrize("method", ["pca-centerscale", "tvn"])
def test_more_features_than_controls_keeps_only_directions_the_controls_span(method):
    # 8 controls centred on their mean span 7 directions; the 5 others have zero control variance, and scaling them
    # by their (round-off) standard deviation used to give values near 1e15 instead of an error or a finite answer.
    features, is_control, batches = wide_plate()
    corrected = correct(features, is_control, batches, method=method)
    assert corrected.shape == (20, 7)
    assert np.abs(corrected).max() < 100
    if method == "pca-centerscale":
        projected = direct_pca_projection(features[is_control], features)[:, :7]
        expected = np.empty_like(projected)
        for batch in ("exp-A", "exp-B"):
            rows = batches == batch
            expected[rows] = standardize_on(projected[rows], projected[rows & is_control])
        assert_equal_up_to_column_signs(corrected, expected)


def test_asking_for_more_components_than_the_controls_span_is_an_error_naming_both():
    features, is_control, batches = wide_plate()
    with pytest.raises(ValueError, match=r"10 components.*8 control wells span only 7"):
        pca_centerscale(features, is_control, batches, num_components=10)
