"""Aggregation to perturbations: RxRx3-core labels, compound x concentration rows, controls out of the gene map."""

import numpy as np
import pandas as pd
import pytest

from eval.aggregate import aggregate
from eval.perturbations import RXRX3_CORE, describe_wells

METADATA = pd.DataFrame({
    "well_id": [f"w{index}" for index in range(8)],
    "experiment_name": ["gene-001"] * 4 + ["compound-001"] * 4,
    "treatment": ["RPLP2_guide_1", "RPLP2_guide_4", "MT_ND1_guide_2", "EMPTY_control", "Dequalinium",
                  "Dequalinium", "Dequalinium", "CRISPR_control"],
    "perturbation_type": ["CRISPR", "CRISPR", "CRISPR", "CRISPR", "COMPOUND", "COMPOUND", "COMPOUND", "COMPOUND"],
    "concentration": [np.nan, np.nan, np.nan, np.nan, 0.25, 0.25, 2.5, np.nan],
})
FEATURES = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [9.0, 9.0], [0.0, 1.0], [2.0, 7.0], [4.0, 4.0],
                     [6.0, 6.0]])


def test_labels_take_the_gene_before_guide_and_keep_compounds_and_controls():
    design = describe_wells(METADATA)
    assert list(design.perturbation) == ["RPLP2", "RPLP2", "MT_ND1", "EMPTY_control", "Dequalinium",
                                         "Dequalinium", "Dequalinium", "CRISPR_control"]
    assert list(design.is_negative_control) == [False, False, False, True, False, False, False, False]
    assert list(design.is_control) == [False, False, False, True, False, False, False, True]


def test_mean_map_has_one_row_per_type_perturbation_and_concentration():
    perturbation_map = aggregate(FEATURES, describe_wells(METADATA), "mean")
    columns = zip(perturbation_map.labels, perturbation_map.perturbation_types, perturbation_map.concentrations,
                  perturbation_map.features, perturbation_map.num_wells, strict=True)
    rows = {(label, kind, None if np.isnan(conc) else conc): (tuple(vector), wells)
            for label, kind, conc, vector, wells in columns}
    assert rows == {
        ("RPLP2", "CRISPR", None): ((2.0, 1.0), 2),
        ("MT_ND1", "CRISPR", None): ((5.0, 5.0), 1),
        ("EMPTY_control", "CRISPR", None): ((9.0, 9.0), 1),
        ("Dequalinium", "COMPOUND", 0.25): ((1.0, 4.0), 2),
        ("Dequalinium", "COMPOUND", 2.5): ((4.0, 4.0), 1),
        ("CRISPR_control", "COMPOUND", None): ((6.0, 6.0), 1),
    }
    genes = perturbation_map.gene_rows()
    assert sorted(genes.labels) == ["MT_ND1", "RPLP2"]


def test_median_aggregation():
    metadata = pd.DataFrame({"treatment": ["G_guide_1", "G_guide_2", "G_guide_3"], "experiment_name": "gene-001"})
    features = np.array([[0.0, 10.0], [1.0, -4.0], [7.0, 3.0]])
    perturbation_map = aggregate(features, describe_wells(metadata, RXRX3_CORE.with_options(genes_only=True)),
                                 "median")
    np.testing.assert_array_equal(perturbation_map.features, [[1.0, 3.0]])
    assert list(perturbation_map.labels) == ["G"] and perturbation_map.perturbation_types[0] == "CRISPR"


def test_unknown_aggregation_and_missing_treatment_are_errors():
    with pytest.raises(ValueError, match="unknown aggregation 'max'"):
        aggregate(FEATURES, describe_wells(METADATA), "max")
    with pytest.raises(ValueError, match="no 'treatment' column"):
        describe_wells(METADATA.drop(columns="treatment"))
