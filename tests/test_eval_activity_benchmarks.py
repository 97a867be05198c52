"""`phenom eval` runs replicate consistency, compound-gene activity and signal consistency/magnitude and writes them
into results.json (DESIGN §6 names) with their plots, on planted wells in the RxRx3-core schema."""

import json

import numpy as np
import pandas as pd
import pytest

from eval.compound_gene import load_compound_gene_interactions
from eval.embeddings_file import write_embeddings
from eval.evaluate import main


def planted_compound_wells(hidden_size=24, noise=0.4, seed=0):
    """Truth genes and compounds of the bundled table: every gene screened in two gene experiments (one plate
    each, two guides, three wells per guide); each compound in one compound experiment at two concentrations, its
    profile the sum of its active targets' at the top concentration (a tenth of it at the low one). Every plate
    has its own offset; 12 EMPTY_control wells per plate."""
    rng = np.random.default_rng(seed)
    truth = load_compound_gene_interactions()
    actives = truth[truth["nM_value"] <= 1000].groupby("treatment")["gene_symbol"].apply(list)
    compounds = [name for name, genes in actives.items() if 1 <= len(genes) <= 3][:15]
    genes = sorted({gene for name in compounds for gene in actives[name]} | set(truth["gene_symbol"].unique()[:40]))
    direction = {gene: rng.normal(size=hidden_size) for gene in genes}
    rows, features = [], []

    def add(experiment, plate, treatment, gene, concentration, kind, vector, offset):
        address = f"A{len(rows):04d}"
        rows.append({"well_id": f"{experiment}_{plate}_{address}", "experiment_name": experiment, "plate": plate,
                     "address": address, "gene": gene, "treatment": treatment, "SMILES": None,
                     "concentration": concentration, "perturbation_type": kind, "cell_type": "HUVEC"})
        features.append(vector + offset + noise * rng.normal(size=hidden_size))

    for plate, experiment in enumerate(("gene-001", "gene-002"), start=1):
        offset = 3 * rng.normal(size=hidden_size)
        for gene in genes:
            for guide in (1, 2):
                for _ in range(3):
                    add(experiment, plate, f"{gene}_guide_{guide}", gene, np.nan, "CRISPR", direction[gene], offset)
        for _ in range(12):
            add(experiment, plate, "EMPTY_control", "EMPTY_control", np.nan, "CRISPR", 0.0, offset)
    offset = 3 * rng.normal(size=hidden_size)
    for name in compounds:
        signal = sum(direction[gene] for gene in actives[name])
        for dose, strength in ((0.1, 0.1), (1.0, 1.0)):
            for _ in range(2):
                add("compound-001", 3, name, None, dose, "COMPOUND", strength * signal, offset)
    for _ in range(12):
        add("compound-001", 3, "EMPTY_control", None, np.nan, "COMPOUND", 0.0, offset)
    return pd.DataFrame(rows), np.asarray(features, dtype=np.float32)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("activity")
    metadata, features = planted_compound_wells()
    metadata.to_csv(folder / "metadata.csv", index=False)
    write_embeddings(folder / "planted.parquet", metadata["well_id"].tolist(), features)
    assert main(["--embeddings", str(folder / "planted.parquet"), "--metadata", str(folder / "metadata.csv"),
                 "--out", str(folder / "out"), "--seeds", "5", "--compound-gene-seeds", "7"]) == 0
    return folder / "out", json.loads((folder / "out" / "results.json").read_text())


def test_results_json_holds_compound_replicate_and_signal_metrics_above_their_baselines(evaluated):
    _, results = evaluated
    metrics, baselines, stds = results["metrics"], results["baselines"], results["metrics_std"]
    for name in ("compound_gene_ap_0.1", "compound_gene_ap_1.0", "compound_gene_ap_max", "compound_gene_auc_max"):
        assert name in metrics and name in baselines and name in stds
    assert metrics["compound_gene_ap_max"] > baselines["compound_gene_ap_max"] + 0.3
    assert metrics["compound_gene_ap_1.0"] > metrics["compound_gene_ap_0.1"]
    assert metrics["replicate_consistency_ks"] > baselines["replicate_consistency_ks"] + 0.5
    assert metrics["replicate_consistency_cm"] > baselines["replicate_consistency_cm"]
    assert metrics["signal_consistency_fraction"] > 0.7 > baselines["signal_consistency_fraction"]  # weak low doses
    assert metrics["signal_magnitude_fraction"] > 0.9 > baselines["signal_magnitude_fraction"]
    counts = results["counts"]
    assert counts["compound_gene_compounds_evaluated"] == 15 and "seeds: 7 (0..6)" in counts["compound_gene_recipe"]
    assert "seeds: 5 (0..4)" in counts["replicate_consistency_recipe"] and results["seeds"] == list(range(5))
    assert "batch" in counts["replicate_consistency_recipe"] and counts["replicate_consistency_pairs"] > 0
    assert not any(name.endswith("_not_applicable") for name in counts)


def test_compound_gene_and_replicate_plots_are_written_beside_results(evaluated):
    out, _ = evaluated
    for name in ("compound_gene.png", "replicate_cosines.png"):
        assert (out / name).stat().st_size > 10_000
