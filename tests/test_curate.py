"""`phenom curate`: the Cauchy combination against hand computations (p-values near 0 and 1 included), the
replicate-consistency statistic (shared with the signal-consistency benchmark) and its permutation p-value, and
curation of a planted screen: the consistent genes are kept, the no-phenotype genes and the genes below the metadata
thresholds are dropped, controls are down-sampled, and the well list is what pretraining reads."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from planted_screen import planted_screen

from eval import curate
from eval.consistency import ExperimentNull, cauchy_combination, consistency_p_values, permutation_p_value
from phenom.commands import curate as curate_command
from phenom_data import wells


# ----------------------------------------------------------------------------------------------- Cauchy combination
def test_cauchy_combination_equals_hand_computations():
    # One p-value: T = tan((0.5 - p) pi), and 0.5 - arctan(T) / pi gives p back.
    assert cauchy_combination([0.25]) == pytest.approx(0.25, rel=1e-14)
    # tan(pi/4) = 1 and tan(-pi/4) = -1 cancel: T = 0, p = 0.5.
    assert cauchy_combination([0.25, 0.75]) == pytest.approx(0.5, rel=1e-14)
    # tan(pi/4) = 1, tan(pi/6) = 1/sqrt(3): T = (1 + 1/sqrt(3)) / 2 = 0.78867513459481288,
    # arctan(T) / pi = 0.21256647888727694, p = 0.28743352111272306.
    assert cauchy_combination([1 / 4, 1 / 3]) == pytest.approx(0.28743352111272306, rel=1e-13)
    # Weights: 0.8 * 1 + 0.2 * 0 = 0.8, p = 0.5 - arctan(0.8) / pi = 0.5 - 0.21482361... = 0.28517638...
    assert cauchy_combination([0.25, 0.5], weights=[0.8, 0.2]) == pytest.approx(
        0.5 - math.atan(0.8) / math.pi, rel=1e-14)


def test_cauchy_combination_keeps_precision_near_zero_and_one():
    # p -> 0: tan((0.5 - p) pi) = cot(p pi) ~ 1 / (p pi); with another p = 0.5 (term 0), T ~ 1 / (2 pi p) and the
    # combined p ~ arctan(1/T) / pi ~ 2p. The naive formula rounds 0.5 - 1e-300 to 0.5 and returns 0.
    assert cauchy_combination([1e-300, 0.5]) == pytest.approx(2e-300, rel=1e-12)
    naive = 0.5 - math.atan(0.5 * math.tan((0.5 - 1e-300) * math.pi)) / math.pi
    assert naive == 0.0  # (the case the careful evaluation exists for)
    # One dominant tiny p among three: T ~ 1 / (3 pi p), combined ~ 3p = 3e-20 (1e-20, 0.3, 0.9 by mpmath at 50
    # digits: 3.00000000000000000022e-20).
    assert cauchy_combination([1e-20, 0.3, 0.9]) == pytest.approx(3e-20, rel=1e-12)
    # p -> 1: the term is -cot((1 - p) pi) ~ -1 / ((1 - p) pi); with 0.5 beside it the combined p ~ 1 - 2 (1 - p).
    assert abs(cauchy_combination([1 - 1e-12, 0.5]) - (1 - 2e-12)) < 1e-15
    # Exact 0 and 1 as the ACAT package: 0 wins, then 1.
    assert cauchy_combination([0.0, 0.3]) == 0.0 and cauchy_combination([1.0, 0.3]) == 1.0
    assert cauchy_combination([0.0, 1.0]) == 0.0


def test_cauchy_combination_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one p-value"):
        cauchy_combination([])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        cauchy_combination([0.5, 1.5])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        cauchy_combination([np.nan])
    with pytest.raises(ValueError, match="sum to 1"):
        cauchy_combination([0.1, 0.2], weights=[0.5, 0.6])


# ----------------------------------------------------------------------------------------------- the statistic
def test_the_replicate_statistic_is_the_mean_cosine_over_all_pairs_and_the_null_is_seeded():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(12, 4))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    null = ExperimentNull(unit, draws=300, rng=np.random.default_rng(5))
    members = np.array([0, 3, 4, 9])
    pairs = [unit[i] @ unit[j] for index, i in enumerate(members) for j in members[index + 1:]]
    assert null.statistic(members[None, :])[0] == pytest.approx(np.mean(pairs), rel=1e-12)
    observed = np.mean(pairs)
    expected = (1 + np.count_nonzero(null.null(4) >= observed)) / 301
    assert null.p_value(members) == pytest.approx(expected)
    again = ExperimentNull(unit, draws=300, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(again.null(4), null.null(4))


def test_permutation_p_value_counts_null_values_at_least_the_observed_one():
    null = np.array([0.1, 0.2, 0.3])
    assert permutation_p_value(0.2, null) == pytest.approx(3 / 4)  # (1 + #{0.2, 0.3}) / (1 + 3)
    assert permutation_p_value(0.9, null) == pytest.approx(1 / 4)  # never 0
    assert permutation_p_value(0.0, null) == 1.0


def test_consistent_replicates_get_small_p_values_and_random_ones_do_not():
    rng = np.random.default_rng(1)
    direction = rng.normal(size=8)
    features = np.vstack([direction + 0.3 * rng.normal(size=(4, 8)), rng.normal(size=(40, 8))])
    labels = np.array(["HIT"] * 4 + [f"W{index // 4}" for index in range(40)], dtype=object)
    p_values = consistency_p_values(features, labels, np.array(["e1"] * 44, dtype=object),
                                    np.zeros(44, dtype=bool), draws=500, seed=0)
    assert p_values["HIT"]["e1"] == pytest.approx(1 / 501)
    assert np.median([p_values[f"W{index}"]["e1"] for index in range(10)]) > 0.1


# ----------------------------------------------------------------------------------------------- curation
@pytest.fixture(scope="module")
def screen():
    return planted_screen()


@pytest.fixture(scope="module")
def curated(screen, tmp_path_factory):
    directory = tmp_path_factory.mktemp("curate")
    paths, metadata = screen.write(directory)
    out = directory / "out"
    run = curate.run_curation(paths[1], metadata, out, show_progress=False)
    assert run.paths == {"well_list": out / "well_list.txt", "table": out / "perturbations.csv",
                         "summary": out / "curation_summary.json"}
    assert run.result.well_ids == (out / "well_list.txt").read_text().split()
    return out


def test_curation_keeps_the_consistent_genes_and_drops_no_phenotype_and_rare_ones(screen, curated):
    table = pd.read_csv(curated / "perturbations.csv", keep_default_na=False)
    kept = set(table.loc[table["kept"], "perturbation"])
    assert kept == set(screen.phenotype_genes)  # precision 1, recall 1 against the planted truth
    reasons = dict(zip(table["perturbation"], table["reason"], strict=True))
    assert all(reasons[gene] == "not_consistent" for gene in screen.no_phenotype_genes)
    assert {gene: reasons[gene] for gene in screen.rare_genes} == screen.rare_genes
    assert (table.loc[table["kept"], "combined_p"].astype(float) < 0.01).all()
    assert (table.loc[table["reason"] == "not_consistent", "combined_p"].astype(float) >= 0.01).all()


def test_the_well_list_holds_the_kept_genes_wells_and_a_share_of_each_experiments_controls(screen, curated):
    text = (curated / "well_list.txt").read_text()
    well_ids = text.splitlines()
    assert text.endswith("\n") and well_ids == sorted(well_ids) and len(set(well_ids)) == len(well_ids)
    metadata = screen.metadata.set_index("well_id")
    chosen = metadata.loc[well_ids]
    genes = chosen["gene"].dropna()
    assert set(genes) == set(screen.phenotype_genes)
    assert len(genes) == (metadata["gene"].isin(screen.phenotype_genes)).sum()  # every well of a kept gene
    controls = chosen[chosen["treatment"] == "EMPTY_control"]
    assert controls.groupby("experiment_name").size().to_dict() == {f"gene-00{index}": 3 for index in range(1, 5)}
    summary = json.loads((curated / "curation_summary.json").read_text())
    assert summary["perturbations"] == {"total": 16, "kept": 8, "dropped": {
        "too_few_experiments": 1, "too_few_wells": 1, "untestable": 0, "not_consistent": 6}}
    assert summary["wells"]["written"] == len(well_ids) and summary["wells"]["control_wells_kept"] == 12
    assert summary["options"]["p_threshold"] == 0.01 and summary["options"]["min_wells"] == 20


def test_the_well_list_reads_back_with_the_pretraining_reader(curated):
    assert wells.read_well_list(curated / "well_list.txt") == (curated / "well_list.txt").read_text().split()


def test_thresholds_and_control_fraction_are_options(screen):
    features = screen.features[2]
    loose = curate.curate(features, screen.metadata, curate.CurationOptions(min_experiments=2, min_wells=8,
                                                                            control_fraction=1.0),
                          show_progress=False)
    kept = set(loose.table.loc[loose.table["kept"], "perturbation"])
    assert kept == set(screen.phenotype_genes) | set(screen.rare_genes)
    assert loose.summary["wells"]["control_wells_kept"] == loose.summary["wells"]["control_wells"] == 40
    again = curate.curate(features, screen.metadata, curate.CurationOptions(min_experiments=2, min_wells=8,
                                                                            control_fraction=1.0),
                          show_progress=False)
    pd.testing.assert_frame_equal(loose.table, again.table)  # seeded: the same p-values
    assert again.well_ids == loose.well_ids


def test_bad_curation_options_and_input_are_clear_errors(screen, tmp_path, capsys):
    with pytest.raises(ValueError, match="cannot give a p-value below"):
        curate.curate(screen.features[2], screen.metadata, curate.CurationOptions(draws=50))
    without_experiments = screen.metadata.drop(columns=["experiment_name"])
    with pytest.raises(ValueError, match="no experiment column"):
        curate.curate(screen.features[2], without_experiments)
    paths, metadata = screen.write(tmp_path)
    no_controls = screen.metadata.assign(treatment=screen.metadata["treatment"].str.replace("EMPTY", "NONE"))
    no_controls.to_csv(metadata, index=False)
    with pytest.raises(ValueError, match="too few control wells"):
        curate.run_curation(paths[1], metadata, tmp_path / "o", show_progress=False)
    status = curate_command.main(["--embeddings", str(paths[1]), "--metadata", str(metadata), "--out",
                                  str(tmp_path / "o")], prog="phenom curate")
    error = capsys.readouterr().err
    assert status == 2 and error.startswith("phenom curate: error: ") and "too few control wells" in error
    assert not (tmp_path / "o" / "well_list.txt").exists()
