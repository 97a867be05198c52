"""Compound-gene activity benchmark (paper.md §4c): AP/AUC, sampling rules, seeds, the whole benchmark, the bench."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from sklearn.metrics import average_precision_score, roc_auc_score

from eval.benchmark_common import BenchmarkNotApplicable
from eval.compound_gene import (
    compound_gene_benchmark,
    draw_negatives,
    format_concentration,
    load_compound_gene_interactions,
    ranking_metrics,
    sampling_plans,
)

# --- average precision and ROC-AUC -------------------------------------------------------------------------------


def test_ap_and_auc_of_a_known_ranking_by_hand():
    # Ranked: + - + - -. Precision at the positives: 1/1 and 2/3. Positive-negative pairs won: 3 + 2 of 6.
    average_precision, roc_auc = ranking_metrics([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 0, 0])
    assert average_precision[0] == pytest.approx((1 + 2 / 3) / 2)
    assert roc_auc[0] == pytest.approx(5 / 6)


def test_ties_count_as_scikit_learn_counts_them():
    # 0.5 ties a positive with a negative: precision there 1/2 (recall 1/2), then 2/3 at recall 1 -> AP 7/12.
    # AUC: the tied pair counts one half, the lower positive loses to the negative -> 0.5 / 2.
    average_precision, roc_auc = ranking_metrics([0.5, 0.5, 0.2], [1, 0, 1])
    assert average_precision[0] == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert roc_auc[0] == pytest.approx(0.25)
    assert average_precision[0] == pytest.approx(average_precision_score([1, 0, 1], [0.5, 0.5, 0.2]))


def test_vectorized_rows_with_padding_and_ties_match_scikit_learn():
    rng = np.random.default_rng(0)
    rows, width = 300, 12
    tied = rng.integers(0, 3, (rows, width)) / 2  # three values: many ties
    scores = np.where(rng.random((rows, width)) < 0.5, tied, rng.random((rows, width)))
    lengths = rng.integers(2, width + 1, rows)
    valid = np.arange(width)[None, :] < lengths[:, None]
    labels = rng.random((rows, width)) < 0.4
    labels[:, 0], labels[:, 1] = True, False  # every row has a positive and a negative
    padded_scores = np.where(valid, scores, 99.0)  # padding must not count, whatever it holds
    average_precision, roc_auc = ranking_metrics(padded_scores, labels | ~valid, valid)
    for row in range(rows):
        kept = slice(0, lengths[row])
        assert average_precision[row] == pytest.approx(average_precision_score(labels[row, kept], scores[row, kept]))
        assert roc_auc[row] == pytest.approx(roc_auc_score(labels[row, kept], scores[row, kept]))


def test_rows_without_positives_or_negatives_are_nan_and_bad_shapes_are_refused():
    average_precision, roc_auc = ranking_metrics([[0.1, 0.2], [0.3, 0.4]], [[0, 0], [1, 1]])
    assert np.isnan(average_precision[0]) and np.isnan(roc_auc[0]) and np.isnan(roc_auc[1])
    assert average_precision[1] == 1.0
    with pytest.raises(ValueError, match="one shape"):
        ranking_metrics([[0.1, 0.2]], [[1, 0, 0]])
    with pytest.raises(ValueError, match="finite"):
        ranking_metrics([[np.nan, 0.2]], [[1, 0]])


# --- sampling rules ----------------------------------------------------------------------------------------------

GENES = [f"G{index:02d}" for index in range(60)]


def truth_table(rows):
    return pd.DataFrame(rows, columns=["treatment", "gene_symbol", "nM_value"])


def test_negative_count_is_twice_the_actives_with_a_floor_of_20():
    one_active = [("A", "G00", 5.0)]
    fifteen_actives = [("B", gene, 1000.0) for gene in GENES[:15]]  # 1000 nM is still active (<=)
    plans, skipped, _ = sampling_plans(truth_table(one_active + fifteen_actives), GENES, ["A", "B"])
    assert [len(plan.actives) for plan in plans] == [1, 15]
    assert [plan.n_negatives for plan in plans] == [20, 30]
    assert [len(plan.negatives(seed=3)) for plan in plans] == [20, 30]
    assert skipped == {"no_active": 0, "not_enough_negatives": 0}


def test_grey_zone_genes_are_never_negatives_and_inactive_genes_are():
    rows = [("A", "G00", 10.0), ("A", "G01", 1000.1), ("A", "G02", 10000.0), ("A", "G03", 10000.1)]
    (plan,), _, _ = sampling_plans(truth_table(rows), GENES, ["A"])
    eligible = {GENES[index] for index in plan.eligible_negatives}
    assert "G01" not in eligible and "G02" not in eligible  # grey zone (1000, 10000] nM
    assert "G00" not in eligible  # the active
    assert "G03" in eligible and len(eligible) == 57
    drawn = {GENES[index] for seed in range(100) for index in plan.negatives(seed)}
    assert drawn.isdisjoint({"G00", "G01", "G02"}) and "G03" in drawn


def test_compounds_without_actives_or_enough_negatives_are_skipped_and_counted():
    rows = [("inactive", "G00", 50000.0), ("grey_only", "G01", 5000.0)]
    rows += [("too_many", gene, 1.0) for gene in GENES[:21]]  # needs 42 negatives, 39 genes are left
    plans, skipped, not_in_map = sampling_plans(
        truth_table(rows + [("A", "ABSENT", 1.0)]), GENES, ["inactive", "grey_only", "too_many", "A", "unknown"]
    )
    assert plans == []
    assert skipped == {"no_active": 4, "not_enough_negatives": 1}
    assert not_in_map == 1


def test_negatives_are_the_draw_of_a_fresh_default_rng_over_the_sorted_pool():
    (plan,), _, _ = sampling_plans(truth_table([("A", "G05", 1.0)]), GENES, ["A"])
    pool = [gene for gene in GENES if gene != "G05"]
    expected = np.random.default_rng(7).choice(pool, 20, replace=False)
    assert [GENES[index] for index in plan.negatives(7)] == list(expected)
    assert np.array_equal(plan.negatives(7), plan.negatives(7))
    assert not np.array_equal(plan.negatives(7), plan.negatives(8))
    assert np.array_equal(draw_negatives(59, 20, 7), np.random.default_rng(7).choice(59, 20, replace=False))


# --- the benchmark -----------------------------------------------------------------------------------------------


def planted_map(concentrations=(0.1, 1.0), dimensions=16, noise=0.3, seed=0):
    """Genes with random profiles; each compound's profile at the top concentration is the sum of its actives'."""
    rng = np.random.default_rng(seed)
    gene_profiles = {gene: rng.standard_normal(dimensions) for gene in GENES}
    truth_rows, rows, features = [], [], []
    for gene in GENES:
        rows.append((gene, np.nan))
        features.append(gene_profiles[gene])
    for number in range(12):
        compound = f"C{number}"
        actives = [GENES[(3 * number + offset) % 60] for offset in range(1 + number % 3)]
        truth_rows += [(compound, gene, 10.0) for gene in actives]
        truth_rows += [(compound, GENES[(3 * number + 30) % 60], 3000.0), (compound, GENES[(7 * number) % 59], 5e4)]
        signal = sum(gene_profiles[gene] for gene in actives)
        for dose in concentrations:
            strength = dose / max(concentrations)
            rows.append((compound, dose))
            features.append(strength * signal + noise * rng.standard_normal(dimensions))
    metadata = pd.DataFrame(rows, columns=["perturbation", "concentration"])
    return np.array(features), metadata, truth_table(truth_rows)


def test_benchmark_equals_a_plain_scikit_learn_loop_on_the_same_sets():
    features, metadata, truth = planted_map()
    seeds = [0, 1, 2]
    result = compound_gene_benchmark(features, metadata, interactions=truth, seeds=seeds)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    gene_rows = {gene: index for index, gene in enumerate(metadata["perturbation"]) if gene in GENES}
    truth_genes = sorted(set(truth["gene_symbol"]))  # the negative pool: truth genes in the map, not all map genes
    assert len(truth_genes) < len(GENES)
    for dose_name, dose in (("0.1", 0.1), ("1.0", 1.0), ("max", None)):
        per_seed_ap, per_seed_auc, per_seed_spread = [], [], []
        for seed in seeds:
            aps, aucs = [], []
            for compound, rows in truth.groupby("treatment"):
                actives = sorted(rows.loc[rows["nM_value"] <= 1000, "gene_symbol"])
                grey = set(rows.loc[(rows["nM_value"] > 1000) & (rows["nM_value"] <= 10000), "gene_symbol"])
                pool = [gene for gene in truth_genes if gene not in set(actives) | grey]
                negatives = list(np.random.default_rng(seed).choice(pool, max(2 * len(actives), 20), replace=False))
                members = actives + negatives
                compound_rows = metadata.index[metadata["perturbation"] == compound]
                doses = metadata.loc[compound_rows, "concentration"]
                chosen = compound_rows if dose is None else compound_rows[doses == dose]
                scores = np.abs(unit[chosen] @ unit[[gene_rows[gene] for gene in members]].T).max(axis=0)
                labels = [1] * len(actives) + [0] * len(negatives)
                aps.append(average_precision_score(labels, scores))
                aucs.append(roc_auc_score(labels, scores))
            per_seed_ap.append(np.mean(aps))
            per_seed_auc.append(np.mean(aucs))
            per_seed_spread.append({f"{kind}_{dose_name}_{name}": np.quantile(values, quantile)
                                    for kind, values in (("ap", aps), ("auc", aucs))
                                    for name, quantile in (("median", 0.5), ("q25", 0.25), ("q75", 0.75))})
        for name in per_seed_spread[0]:  # median and quartiles over compounds, per seed, averaged over seeds
            expected = np.mean([spread[name] for spread in per_seed_spread])
            assert result.metrics[f"compound_gene_{name}"] == pytest.approx(expected, abs=1e-12)
        assert result.metrics[f"compound_gene_ap_{dose_name}"] == pytest.approx(np.mean(per_seed_ap), abs=1e-12)
        assert result.metrics_std[f"compound_gene_ap_{dose_name}"] == pytest.approx(np.std(per_seed_ap, ddof=1),
                                                                                   abs=1e-12)
        assert result.metrics[f"compound_gene_auc_{dose_name}"] == pytest.approx(np.mean(per_seed_auc), abs=1e-12)
    assert result.counts["compound_gene_compounds_evaluated"] == 12
    assert [result.counts[f"compound_gene_compounds_{dose}"] for dose in ("0.1", "1.0", "max")] == [12, 12, 12]


def test_planted_activity_beats_the_random_baseline_and_seeds_reproduce():
    features, metadata, truth = planted_map(concentrations=(0.0025, 0.25, 2.5))
    result = compound_gene_benchmark(features, metadata, interactions=truth, seeds=range(10))
    again = compound_gene_benchmark(features, metadata, interactions=truth, seeds=range(10))
    assert result == again
    other = compound_gene_benchmark(features, metadata, interactions=truth, seeds=range(10, 20))
    assert other.metrics["compound_gene_ap_max"] != result.metrics["compound_gene_ap_max"]
    assert set(result.metrics) == {
        f"compound_gene_{kind}_{dose}{statistic}" for kind in ("ap", "auc")
        for dose in ("0.0025", "0.25", "2.5", "max") for statistic in ("", "_median", "_q25", "_q75")
    }
    assert result.metrics["compound_gene_ap_2.5"] > 0.9 and result.metrics["compound_gene_auc_2.5"] > 0.9
    assert result.metrics["compound_gene_ap_max"] > result.baselines["compound_gene_ap_max"] + 0.4
    # The random baseline's AP is about the positive fraction (1-3 actives among 21-23) and its AUC about 1/2.
    assert 0.05 < result.baselines["compound_gene_ap_max"] < 0.25
    assert abs(result.baselines["compound_gene_auc_max"] - 0.5) < 0.1
    assert result.metrics_std["compound_gene_ap_max_baseline"] > 0


def test_concentration_names_follow_the_metadata_floats():
    assert [format_concentration(value) for value in (1, 0.0025, 10, 0.01)] == ["1.0", "0.0025", "10.0", "0.01"]


def test_rare_stray_concentrations_are_left_out_and_counted():
    features, metadata, truth = planted_map(concentrations=(0.1, 1.0))
    stray = metadata[metadata["concentration"] == 1.0].iloc[:1].assign(concentration=0.26)
    metadata = pd.concat([metadata, stray], ignore_index=True)
    features = np.vstack([features, features[stray.index]])
    result = compound_gene_benchmark(features, metadata, interactions=truth, seeds=[0])
    assert "compound_gene_ap_0.26" not in result.metrics
    assert result.counts["compound_gene_concentrations_skipped"] == "0.26"


def test_bad_maps_get_clear_errors():
    features, metadata, truth = planted_map()
    duplicated = pd.concat([metadata, metadata.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="several profiles for gene"):
        compound_gene_benchmark(np.vstack([features, features[:1]]), duplicated, interactions=truth, seeds=[0])
    genes_only = metadata["concentration"].isna()
    with pytest.raises(BenchmarkNotApplicable, match="truth compounds"):
        compound_gene_benchmark(features[genes_only], metadata[genes_only], interactions=truth, seeds=[0])
    with pytest.raises(ValueError, match="lacks column"):
        compound_gene_benchmark(features, metadata.drop(columns="concentration"), interactions=truth)
    with pytest.raises(ValueError, match="rows but the metadata"):
        compound_gene_benchmark(features[:-1], metadata, interactions=truth)
    with pytest.raises(ValueError, match="nM_value is not a number"):
        compound_gene_benchmark(features, metadata, interactions=truth.assign(nM_value="n/a"))


def test_bundled_interactions_load_with_the_documented_columns():
    truth = load_compound_gene_interactions()
    assert len(truth) == 2921 and truth["treatment"].nunique() == 779 and truth["gene_symbol"].nunique() == 351


def test_bench_smoke_mode_runs_and_agrees_with_the_scikit_learn_loop(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.eval_compound_gene", "--smoke", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "speed-up per seed" in result.stdout
    import json

    report = json.loads(out.read_text())
    assert report["smoke"] and report["max_abs_difference_vs_peer"] < 1e-9
