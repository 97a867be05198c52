"""On `phenom synth` data (compounds that act like knocking out their active targets), hand-crafted image features
give a compound-gene AP above the random baseline at the `max` pseudo-concentration, through `phenom eval`."""

import json

import numpy as np
import pytest
from test_eval_synth import handcrafted_features

from eval.embeddings_file import write_embeddings
from eval.evaluate import main
from phenom_data import RxRx3CoreWells, synth


@pytest.mark.slow
def test_compound_gene_ap_of_handcrafted_features_beats_random_on_synthetic_wells(tmp_path):
    data = synth.generate(tmp_path / "synth", size="small", seed=0, progress=False, guides=1, experiments=2,
                          plates=2, controls_per_plate=12)
    well_ids, features = [], []
    for well in RxRx3CoreWells(data):
        well_ids.append(well.well_id)
        features.append(handcrafted_features(well.image))
    write_embeddings(tmp_path / "handcrafted.parquet", well_ids, np.stack(features))
    out = tmp_path / "eval"
    assert main(["--embeddings", str(tmp_path / "handcrafted.parquet"), "--metadata",
                 str(data / "metadata_rxrx3_core.csv"), "--out", str(out), "--no-plots"]) == 0
    results = json.loads((out / "results.json").read_text())
    metrics, baselines, stds = results["metrics"], results["baselines"], results["metrics_std"]
    activity = {name: (round(value, 4), round(baselines.get(name, float("nan")), 4)) for name, value in metrics.items()
             if not name.startswith("recall_")}
    print(f"non-recall metrics (value, random baseline) on synthetic wells, hand-crafted features: {activity}")
    print(f"compound-gene AP max: {metrics['compound_gene_ap_max']:.4f} +- {stds['compound_gene_ap_max']:.4f}, "
          f"random {baselines['compound_gene_ap_max']:.4f} +- {stds['compound_gene_ap_max_baseline']:.4f}; "
          f"compounds evaluated {results['counts']['compound_gene_compounds_evaluated']}")
    assert results["counts"]["compound_gene_compounds_evaluated"] >= 5
    margin = 3 * stds["compound_gene_ap_max_baseline"]
    assert metrics["compound_gene_ap_max"] > baselines["compound_gene_ap_max"] + margin
