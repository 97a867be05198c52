"""`phenom eval`'s map and recall against EFAAR's way of computing them, written out here the straightforward way
(pandas group means, scikit-learn `cosine_similarity`, the upper triangle as the null, `searchsorted`), on a
RxRx3-core-shaped screen with gene and compound experiments, after PCA-CenterScale on the controls.

After centring each batch on its controls, the CRISPR `EMPTY_control` map row (the mean of the gene experiments'
control wells) is zero up to round-off (norm ~1e-16). scikit-learn's `normalize` leaves such a row as it is, so its
cosines with everything are ~1e-16; normalizing it to unit length instead points it at round-off noise and puts
random cosines into the `all-rows` null.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.preprocessing import normalize
from test_eval_activity_benchmarks import planted_compound_wells

from eval.aggregate import aggregate
from eval.benchmark_common import unit_rows
from eval.correction import correct
from eval.perturbations import describe_wells
from eval.recall import (
    BENCHMARK_SOURCES,
    RECALL_THRESHOLDS,
    cosine_percentile_ranks,
    known_relationship_recall,
    load_relationships,
    null_rows,
)
from phenom_data import ANNOTATIONS_DIR, RXRX3_CORE_CONCENTRATIONS


@pytest.fixture(scope="module")
def screen():
    metadata, features = planted_compound_wells(seed=2)  # its CRISPR control row: norm 1.0e-15 here, below 10 eps
    control = (metadata["treatment"] == "EMPTY_control").to_numpy()
    corrected = correct(features, control, metadata["experiment_name"].to_numpy(), "pca-centerscale")
    return metadata, corrected


def efaar_map(metadata: pd.DataFrame, features: np.ndarray) -> pd.DataFrame:
    """EFAAR `aggregate`: the mean of each (perturbation type, gene or treatment, concentration) group's wells."""
    gene = metadata["treatment"].str.split("_guide_").str[0]
    label = np.where((metadata["perturbation_type"] == "CRISPR"), gene, metadata["treatment"])
    keys = pd.MultiIndex.from_arrays([metadata["perturbation_type"], label, metadata["concentration"]])
    return pd.DataFrame(features, index=keys).groupby(level=[0, 1, 2], dropna=False).mean()


def efaar_recall(null_features: pd.DataFrame, genes: list[str], source: str) -> dict[str, float]:
    """EFAAR `known_relationship_benchmark` with the null of every row of `null_features` (labels as index)."""
    similarity = pd.DataFrame(cosine_similarity(null_features.to_numpy()), index=null_features.index,
                              columns=null_features.index)
    null = np.sort(similarity.to_numpy()[np.triu_indices(len(similarity), k=1)])
    pairs = pd.DataFrame(load_relationships(ANNOTATIONS_DIR, source), columns=["entity1", "entity2"])
    pairs = pairs[pairs["entity1"].isin(genes) & pairs["entity2"].isin(genes)]
    query = np.array([similarity.loc[first, second] for first, second in pairs.itertuples(index=False)])
    left = np.searchsorted(null, query, side="left") / len(null)
    right = np.searchsorted(null, query, side="right") / len(null)
    return {f"{lower}_{upper}": float(((right <= lower) | (left >= upper)).mean())
            for lower, upper in RECALL_THRESHOLDS}


def test_map_rows_equal_efaar_group_means(screen):
    metadata, corrected = screen
    ours = aggregate(corrected, describe_wells(metadata))
    theirs = efaar_map(metadata, corrected)
    assert len(ours) == len(theirs)
    keys = list(zip(ours.perturbation_types, ours.labels, ours.concentrations, strict=True))
    np.testing.assert_allclose(ours.features, theirs.loc[keys].to_numpy(), rtol=0, atol=1e-12)


def all_rows_null(metadata, corrected):
    perturbation_map = aggregate(corrected, describe_wells(metadata))
    null_map = null_rows(perturbation_map, "all-rows")
    return perturbation_map, null_map


def test_the_crispr_control_row_is_zero_up_to_round_off_and_stays_so(screen):
    metadata, corrected = screen
    _, null_map = all_rows_null(metadata, corrected)
    control_row = np.flatnonzero(null_map.is_control)
    assert len(control_row) == 1 and null_map.perturbation_types[control_row[0]] == "CRISPR"
    assert np.linalg.norm(null_map.features[control_row[0]]) < 1e-14
    np.testing.assert_array_equal(unit_rows(null_map.features), normalize(null_map.features))


def test_a_round_off_control_row_keeps_round_off_cosines_as_in_efaar():
    # The RxRx3-core case: the CRISPR control row of norm ~3e-16 among unit-scale gene rows.
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 16))
    features[7] = 3e-16 * rng.normal(size=16) / 4
    unit = unit_rows(features)
    np.testing.assert_array_equal(unit, normalize(features))
    assert np.abs(unit[7]).max() < 1e-15 and np.abs(unit @ unit[7]).max() < 1e-14
    pairs = np.column_stack(np.triu_indices(30, k=1))
    values, left, right, null_size = cosine_percentile_ranks(unit, pairs)
    similarity = cosine_similarity(features)
    null = np.sort(similarity[np.triu_indices(30, k=1)])
    np.testing.assert_array_equal(values, similarity[pairs[:, 0], pairs[:, 1]])
    np.testing.assert_array_equal(left, np.searchsorted(null, values, side="left") / null_size)


def test_all_rows_null_ranks_and_recall_equal_efaar_exactly(screen):
    metadata, corrected = screen
    perturbation_map, null_map = all_rows_null(metadata, corrected)
    assert set(null_map.concentrations[null_map.modalities == "compound"]) <= set(RXRX3_CORE_CONCENTRATIONS)
    labels = [label if kind == "CRISPR" else f"{label}@{dose}"
              for label, kind, dose in zip(null_map.labels, null_map.perturbation_types, null_map.concentrations,
                                           strict=True)]
    null_features = pd.DataFrame(null_map.features, index=labels)
    similarity = cosine_similarity(null_map.features)
    # Every pair's percentile ranks, against the EFAAR null (sklearn cosines, upper triangle): identical.
    pairs = np.column_stack(np.triu_indices(len(null_map), k=1))
    values, left, right, null_size = cosine_percentile_ranks(unit_rows(null_map.features), pairs)
    null = np.sort(similarity[np.triu_indices(len(null_map), k=1)])
    np.testing.assert_array_equal(values, similarity[pairs[:, 0], pairs[:, 1]])
    np.testing.assert_array_equal(left, np.searchsorted(null, values, side="left") / null_size)
    np.testing.assert_array_equal(right, np.searchsorted(null, values, side="right") / null_size)
    genes = list(perturbation_map.gene_rows().labels)
    for result in known_relationship_recall(perturbation_map, ANNOTATIONS_DIR, null="all-rows"):
        if result.query_size:
            assert result.recall == efaar_recall(null_features, genes, result.source), result.source
    assert {result.source for result in known_relationship_recall(perturbation_map, ANNOTATIONS_DIR)} \
        == set(BENCHMARK_SOURCES)


def test_gene_null_recall_equals_efaar_exactly(screen):
    metadata, corrected = screen
    perturbation_map = aggregate(corrected, describe_wells(metadata))
    genes = perturbation_map.gene_rows()
    gene_features = pd.DataFrame(genes.features, index=genes.labels)
    for result in known_relationship_recall(perturbation_map, ANNOTATIONS_DIR):
        if result.query_size:
            assert result.recall == efaar_recall(gene_features, list(genes.labels), result.source), result.source
