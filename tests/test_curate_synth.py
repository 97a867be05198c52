"""On `phenom synth` data (planted gene phenotypes, genes without one, batch effects), curation of CellProfiler-like
well profiles keeps the genes with a phenotype and drops every gene without one, scored against
`ground_truth.json`; the probe predicts the gene on a held-out experiment far above chance once the profiles are
batch-corrected on the controls. (About a minute: generating the images dominates.)"""

import json

import numpy as np
import pandas as pd
import pytest
from test_eval_synth import handcrafted_features

from eval import curate, probe
from eval.embeddings_file import write_embeddings
from phenom_data import RxRx3CoreWells, synth

WELLS_PER_GENE = 12  # 2 guides x 2 replicates x 3 experiments
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic_profiles(tmp_path_factory):
    directory = tmp_path_factory.mktemp("synth_curate")
    data = synth.generate(directory / "data", size="tiny", seed=0, progress=False, num_genes=16, experiments=3,
                          guides=2, replicates=2, num_compounds=0, compound_experiments=0, null_fraction=0.5,
                          controls_per_plate=8)
    well_ids, features = [], []
    for well in RxRx3CoreWells(data):
        well_ids.append(well.well_id)
        features.append(handcrafted_features(well.image))
    write_embeddings(directory / "profiles.parquet", well_ids, np.stack(features))
    truth = json.loads((data / "ground_truth.json").read_text())
    return directory / "profiles.parquet", data / "metadata_rxrx3_core.csv", truth


def test_curation_of_synthetic_wells_against_the_ground_truth(synthetic_profiles, tmp_path):
    profiles, metadata, truth = synthetic_profiles
    curate.run_curation(profiles, metadata, tmp_path, curate.CurationOptions(min_wells=WELLS_PER_GENE),
                        show_progress=False)
    table = pd.read_csv(tmp_path / "perturbations.csv", keep_default_na=False).set_index("perturbation")
    consistent = {gene for gene, record in truth["genes"].items() if record["has_phenotype"]}
    no_phenotype = set(truth["genes_without_phenotype"])
    assert set(table.index) == consistent | no_phenotype and no_phenotype and consistent
    kept = set(table.index[table["kept"]])
    precision = len(kept & consistent) / max(1, len(kept))
    recall = len(kept & consistent) / len(consistent)
    print(f"curation vs ground truth: kept {len(kept)} of {len(table)}, precision {precision:.3f}, "
          f"recall {recall:.3f}; no-phenotype genes dropped {len(no_phenotype - kept)} of {len(no_phenotype)}")
    assert not kept & no_phenotype  # every gene without a phenotype is dropped ...
    assert (table.loc[sorted(no_phenotype), "reason"] == "not_consistent").all()
    assert recall >= 0.8  # ... and the planted phenotypes are found (all of them with seed 0)
    well_list = (tmp_path / "well_list.txt").read_text().split()
    wells = pd.read_csv(metadata).set_index("well_id").loc[well_list]
    assert set(wells["gene"]) - {"EMPTY_control"} == kept


def test_probe_predicts_the_synthetic_gene_on_a_held_out_experiment(synthetic_profiles, tmp_path):
    profiles, metadata, _ = synthetic_profiles
    # Uncorrected, the plate and experiment effects of the held-out experiment hide the genes (0.09 with seed 0,
    # chance 0.06); PCA-CenterScale on the controls removes them.
    probe.probe(tmp_path, embeddings=[profiles], metadata=metadata, task="gene", correction="pca-centerscale",
                plots=False, show_progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    chance = results["baselines"]["probe_balanced_accuracy_block1"]
    print(f"probe on synthetic profiles: {results['metrics']['probe_balanced_accuracy_block1']:.3f} "
          f"(chance {chance:.3f})")
    assert results["metrics"]["probe_balanced_accuracy_block1"] > 4 * chance
