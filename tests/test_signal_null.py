"""On `phenom synth` data with strong plate effects that survive the correction (every well of a gene on one plate,
batch strength 8, one experiment corrected as one batch), genes without a phenotype are called significant against
random well sets far above that null's own baseline, and at about their baseline against the negative-control genes
(EFAAR's null, `phenom eval`'s default where the data has them).

Measured (seed 0, 50 genes without a phenotype, 25 of them given as negative controls; hand-crafted features):
random wells 0.22 against a baseline of 0.00; negative-control genes 0.00 against a baseline of 0.08 (leave one
out over 25 null genes; the resolution is 1/25)."""

import json

import numpy as np
import pandas as pd
import pytest
from test_eval_synth import handcrafted_features

from eval.embeddings_file import write_embeddings
from eval.evaluate import main
from phenom_data import RxRx3CoreWells, synth


@pytest.mark.slow
def test_negative_control_null_keeps_no_phenotype_genes_at_their_baseline(tmp_path):
    data = synth.generate(tmp_path / "synth", size="small", seed=0, progress=False, num_genes=60, num_complexes=2,
                          num_compounds=0, compound_experiments=0, num_interaction_genes=0, null_fraction=1.0,
                          guides=4, experiments=1, plates=4, controls_per_plate=12, batch_strength=8.0)
    truth = json.loads((data / "ground_truth.json").read_text())
    no_phenotype = sorted(truth["genes_without_phenotype"])
    assert len(no_phenotype) == 50
    null_genes, held_out = no_phenotype[::2], no_phenotype[1::2]
    # Only the controls and the genes without a phenotype: the correction fits on the controls alone, so their
    # corrected wells are those of the whole screen, and every scored perturbation is a gene without a phenotype.
    metadata = pd.read_csv(data / "metadata_rxrx3_core.csv")
    keep = metadata["treatment"].eq("EMPTY_control") | metadata["gene"].isin(no_phenotype)
    metadata[keep].to_csv(tmp_path / "metadata.csv", index=False)
    kept = set(metadata.loc[keep, "well_id"])
    wells = [well for well in RxRx3CoreWells(data) if well.well_id in kept]
    write_embeddings(tmp_path / "handcrafted.parquet", [well.well_id for well in wells],
                     np.stack([handcrafted_features(well.image) for well in wells]))
    (tmp_path / "negative_controls.txt").write_text("\n".join(null_genes) + "\n")

    def signal(name, *extra):
        assert main(["--embeddings", str(tmp_path / "handcrafted.parquet"), "--metadata",
                     str(tmp_path / "metadata.csv"), "--out", str(tmp_path / name), "--no-plots", *extra]) == 0
        results = json.loads((tmp_path / name / "results.json").read_text())
        return (results["metrics"]["signal_consistency_fraction"], results["baselines"]["signal_consistency_fraction"],
                results["counts"])

    fraction, baseline, counts = signal("negative_controls", "--negative-control-genes",
                                        str(tmp_path / "negative_controls.txt"))
    assert counts["signal_consistency_null"] == "negative-controls (25 perturbations in the data)"
    assert counts["signal_consistency_perturbations"] == len(held_out)
    random_fraction, random_baseline, random_counts = signal("random_wells", "--signal-null", "random-wells")
    assert random_counts["signal_consistency_perturbations"] == len(no_phenotype)
    print(f"no-phenotype genes called significant: negative-control null {fraction:.3f} (baseline {baseline:.3f}), "
          f"random wells {random_fraction:.3f} (baseline {random_baseline:.3f})")
    assert abs(fraction - baseline) <= 0.12
    assert random_fraction >= random_baseline + 0.12
