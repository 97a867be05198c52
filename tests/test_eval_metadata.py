"""`phenom eval` reads what a perturbation, a control, a batch and a plate are once, through a column mapping:
a JUMP-CP table (`--metadata-format jump`), renamed RxRx3-core columns, controls named DMSO, metadata that cannot
say genes from compounds; and the mAP benchmarks equal copairs called directly on the same corrected profiles."""

import json

import numpy as np
import pandas as pd
import pytest
from copairs import map as copairs_map
from eval_data import planted_wells
from jump_data import DMSO, NO_GUIDE, NON_TARGETING, jump_screen

from eval.embeddings_file import read_metadata, write_embeddings
from eval.evaluate import evaluate_file
from eval.perturbations import JUMP, describe_wells, with_well_ids
from eval.plots import read_complexes
from phenom.commands.eval import build_parser, main, options_from_args
from phenom_data import ANNOTATIONS_DIR

NULL_SIZE = 2000  # copairs' null; smaller than the default to keep the test fast


@pytest.fixture(scope="module")
def jump(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jump")
    screen = jump_screen(crispr_plates=5)
    embeddings, metadata, crispr = screen.write(folder)
    argv = ["--embeddings", str(embeddings), "--metadata", str(metadata), "--out", str(folder / "out"),
            "--metadata-format", "jump", "--annotations-table", str(crispr), "--map-null-size", str(NULL_SIZE)]
    assert main(argv) == 0
    options = options_from_args(build_parser().parse_args(argv))
    table = read_metadata(metadata, prepare=lambda frame: with_well_ids(frame, JUMP))
    _, context = evaluate_file(embeddings, table, options)
    results = json.loads((folder / "out" / "results.json").read_text())
    return screen, folder, context, results


def test_jump_table_gene_map_holds_exactly_the_genes_and_dmso_is_never_scored(jump):
    screen, folder, context, results = jump
    gene_map = context.perturbation_map.gene_rows()
    assert sorted(gene_map.labels) == sorted(screen.genes)
    design = context.design
    controls = np.isin(screen.metadata["Metadata_JCP2022"], [DMSO, NO_GUIDE, NON_TARGETING])
    np.testing.assert_array_equal(design.is_negative_control, controls)
    np.testing.assert_array_equal(design.is_control, controls)
    scored = set(context.perturbation_map.select(~context.perturbation_map.is_control).labels)
    assert scored == set(screen.genes) | set(screen.compounds)
    assert not scored & {DMSO, NO_GUIDE, NON_TARGETING, "non-targeting", "no-guide"}
    counts = results["counts"]
    assert counts["metadata_format"] == "jump" and counts["map_genes"] == len(screen.genes)
    assert counts["gene_wells"] == 5 * len(screen.genes) and counts["compound_wells"] == 3 * len(screen.compounds)
    assert counts["batches"] == 8  # JUMP's plates are the correction batches
    # Every perturbation scored by the well-level benchmarks, and no control.
    perturbations = len(screen.genes) + len(screen.compounds)
    assert counts["signal_consistency_perturbations"] == counts["map_activity_perturbations"] == perturbations
    assert set(context.tables["map_activity"]["perturbation"]) == scored
    assert results["metrics"]["recall_CORUM_0.05_0.95"] > 3 * results["baselines"]["recall_CORUM_0.05_0.95"]
    # The JUMP compounds are not RxRx3-core's: compound-gene says why it did not run.
    assert "compound_gene_not_applicable" in counts
    for name in ("map_activity.png", "map_consistency.png", "complex_heatmap.png", "replicate_cosines.png"):
        assert (folder / "out" / name).stat().st_size > 0


def direct_activity(context, screen, shuffle_seed=None):
    """copairs' documented activity recipe on the corrected wells, keys read from the raw JUMP columns."""
    metadata = screen.metadata
    keys = metadata["Metadata_JCP2022"].to_numpy(dtype=object)
    control = np.isin(keys, [DMSO, NO_GUIDE, NON_TARGETING])
    if shuffle_seed is not None:
        queries = np.flatnonzero(~control)
        keys = keys.copy()
        keys[queries] = keys[np.random.default_rng(shuffle_seed).permutation(queries)]
    meta = pd.DataFrame({"Metadata_JCP2022": keys, "Metadata_Plate": metadata["Metadata_Plate"].to_numpy(),
                         "Metadata_Reference": np.where(control, np.arange(len(keys)), -1)})
    ap = copairs_map.average_precision(meta, context.well_features, ["Metadata_JCP2022", "Metadata_Reference"], [],
                                       ["Metadata_Plate"], ["Metadata_JCP2022", "Metadata_Reference"],
                                       progress_bar=False)
    ap = ap[ap["Metadata_Reference"] < 0]
    return copairs_map.mean_average_precision(ap, ["Metadata_JCP2022"], null_size=NULL_SIZE, threshold=0.05, seed=0,
                                              progress_bar=False)


def test_map_activity_equals_copairs_called_directly(jump):
    screen, _, context, results = jump
    direct = direct_activity(context, screen)
    assert results["metrics"]["map_activity_mean"] == pytest.approx(direct["mean_average_precision"].mean(), abs=1e-9)
    assert results["metrics"]["map_activity_fraction"] == pytest.approx(direct["below_corrected_p"].mean(), abs=1e-9)
    symbol = dict(zip(screen.crispr["Metadata_JCP2022"], screen.crispr["Metadata_Symbol"], strict=True))
    direct = direct.assign(perturbation=direct["Metadata_JCP2022"].map(lambda key: symbol.get(key, key)))
    ours = context.tables["map_activity"].set_index("perturbation").loc[direct["perturbation"]]
    np.testing.assert_allclose(ours["mean_average_precision"], direct["mean_average_precision"], atol=1e-9, rtol=0)
    np.testing.assert_allclose(ours["corrected_p_value"], direct["corrected_p_value"], atol=1e-9, rtol=0)
    shuffled = direct_activity(context, screen, shuffle_seed=0)
    assert results["baselines"]["map_activity_mean"] == pytest.approx(shuffled["mean_average_precision"].mean(),
                                                                      abs=1e-9)
    assert results["metrics"]["map_activity_fraction"] > 0.7 and results["baselines"]["map_activity_fraction"] < 0.1


def test_map_consistency_equals_copairs_called_directly(jump):
    screen, _, context, results = jump
    direct = direct_activity(context, screen)
    active = set(direct.loc[direct["below_corrected_p"], "Metadata_JCP2022"])
    symbol = dict(zip(screen.crispr["Metadata_JCP2022"], screen.crispr["Metadata_Symbol"], strict=True))
    genes = screen.metadata["Metadata_JCP2022"].map(symbol)
    wells = genes.notna() & screen.metadata["Metadata_JCP2022"].isin(active)
    profiles = pd.DataFrame(context.well_features[wells.to_numpy()]).groupby(genes[wells].to_numpy()).mean()
    complexes = {}
    for name, members in read_complexes(ANNOTATIONS_DIR / "CORUM_clusters.tsv").items():
        for gene in dict.fromkeys(members):
            complexes.setdefault(gene, []).append(f"complex:{name}")
    profiles = profiles[profiles.index.isin(list(complexes))]
    meta = pd.DataFrame({"name": profiles.index, "label": [complexes[gene] for gene in profiles.index]})
    ap = copairs_map.multilabel.average_precision(meta, profiles.to_numpy(), ["label"], ["name"], [], ["label"],
                                                  multilabel_col="label", progress_bar=False)
    direct = copairs_map.mean_average_precision(ap, ["label"], null_size=NULL_SIZE, threshold=0.05, seed=0,
                                                progress_bar=False)
    assert len(direct) == results["counts"]["map_consistency_labels"] > 0
    assert results["metrics"]["map_consistency_mean"] == pytest.approx(direct["mean_average_precision"].mean(),
                                                                       abs=1e-9)
    assert results["metrics"]["map_consistency_fraction"] == pytest.approx(direct["below_corrected_p"].mean(),
                                                                           abs=1e-9)


def test_jump_gene_wells_need_the_crispr_table_and_every_id_in_it(jump, capsys):
    screen, folder, _, _ = jump
    base = ["--embeddings", str(folder / "embeddings.parquet"), "--metadata", str(folder / "metadata.csv"),
            "--metadata-format", "jump", "--no-plots"]
    assert main([*base, "--out", str(folder / "no_table")]) == 2
    assert "give the table of their gene symbols with --annotations-table" in capsys.readouterr().err
    partial = folder / "partial_crispr.csv"
    screen.crispr.iloc[:-3].to_csv(partial, index=False)
    assert main([*base, "--out", str(folder / "partial"), "--annotations-table", str(partial)]) == 2
    assert "3 Metadata_JCP2022 values of gene wells are not in the annotations table" in capsys.readouterr().err


# --- RxRx3-core-shaped metadata ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    metadata, features = planted_wells()
    write_embeddings(folder / "embeddings.parquet", metadata["well_id"], features)
    metadata.to_csv(folder / "metadata.csv", index=False)
    return folder, metadata, features


def run_eval(folder, metadata, name, *extra):
    metadata.to_csv(folder / f"{name}.csv", index=False)
    code = main(["--embeddings", str(folder / "embeddings.parquet"), "--metadata", str(folder / f"{name}.csv"),
                 "--out", str(folder / name), "--no-plots", "--seeds", "3", *extra])
    return code, (json.loads((folder / name / "results.json").read_text()) if code == 0 else None)


def test_controls_named_dmso_with_control_key_score_exactly_as_empty_control(planted):
    folder, metadata, _ = planted
    _, default = run_eval(folder, metadata, "default")
    dmso = metadata.assign(treatment=metadata["treatment"].replace("EMPTY_control", "DMSO"),
                           gene=metadata["gene"].replace("EMPTY_control", "DMSO"))
    code, renamed = run_eval(folder, dmso, "dmso", "--control-key", "DMSO")
    assert code == 0
    # DMSO is a control: not a gene of the map, never scored; every number is the EMPTY_control run's.
    assert renamed["counts"]["map_genes"] == default["counts"]["map_genes"] == 90
    assert renamed["counts"]["signal_consistency_perturbations"] == 90
    for part in ("metrics", "metrics_std", "baselines"):
        assert renamed[part] == default[part]


def test_renamed_columns_given_by_flags_score_exactly_as_the_defaults(planted):
    folder, metadata, _ = planted
    _, default = run_eval(folder, metadata, "default_flags")
    renamed = metadata.rename(columns={"treatment": "reagent", "experiment_name": "run", "plate": "plate_id",
                                       "perturbation_type": "kind", "concentration": "dose_uM"})
    code, results = run_eval(folder, renamed, "renamed", "--perturbation-col", "reagent", "--batch-col", "run",
                             "--plate-col", "plate_id", "--type-col", "kind", "--concentration-col", "dose_uM")
    assert code == 0
    for part in ("metrics", "metrics_std", "baselines"):
        assert results[part] == default[part]


def test_metadata_that_cannot_tell_genes_from_compounds_is_refused_naming_the_column(planted, capsys):
    folder, metadata, features = planted
    # Compounds among the gene wells, and no perturbation_type / concentration to tell them apart.
    compound_rows = metadata.index[metadata["treatment"].str.endswith("_guide_1")][:20]
    mixed = metadata.copy()
    mixed.loc[compound_rows, "treatment"] = [f"COMPOUND{index}" for index in range(len(compound_rows))]
    mixed = mixed.drop(columns=["perturbation_type", "concentration"])
    code, _ = run_eval(folder, mixed, "untyped")
    assert code == 2
    error = capsys.readouterr().err
    assert "has no 'perturbation_type' column" in error and "--type-col" in error and "--genes-only" in error
    assert not (folder / "untyped" / "results.json").exists()
    # A pure gene screen without the column runs when the user says so.
    code, results = run_eval(folder, metadata.drop(columns=["perturbation_type"]), "genes_only", "--genes-only")
    assert code == 0 and results["counts"]["map_genes"] == 90


def test_a_named_column_that_is_absent_is_refused(planted, capsys):
    folder, metadata, _ = planted
    code, _ = run_eval(folder, metadata, "no_dose", "--concentration-col", "dose")
    assert code == 2 and "has no 'dose' column for --concentration-col" in capsys.readouterr().err


def test_a_screen_without_genes_skips_recall_with_the_reason_and_runs_the_rest(planted):
    folder, metadata, _ = planted
    control = metadata["treatment"] == "EMPTY_control"
    # Each gene's two guide wells become two wells of one compound at 1 uM.
    compounds = metadata.assign(treatment=metadata["gene"].where(~control, "EMPTY_control"),
                                perturbation_type=np.where(control, "CRISPR", "COMPOUND"),
                                concentration=np.where(control, np.nan, 1.0))
    code, results = run_eval(folder, compounds, "compounds_only")
    assert code == 0
    assert "the gene map has 0 genes" in results["counts"]["recall_not_applicable"]
    assert not any(name.startswith("recall_") for name in results["metrics"])
    assert {"signal_consistency_fraction", "map_activity_mean", "map_activity_fraction"} <= set(results["metrics"])


def test_out_holding_results_is_refused_without_overwrite(planted, capsys):
    folder, metadata, _ = planted
    out = folder / "kept"
    argv = ["--embeddings", str(folder / "embeddings.parquet"), "--metadata", str(folder / "metadata.csv"),
            "--out", str(out), "--no-plots", "--seeds", "2"]
    assert main(argv) == 0
    mine = '{"model": "the user\'s own results"}\n'
    (out / "results.json").write_text(mine)
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "already holds results" in error and "pass --overwrite" in error
    assert (out / "results.json").read_text() == mine
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads((out / "results.json").read_text())["model"] == "embeddings"


def test_a_jump_table_reads_with_derived_well_ids():
    screen = jump_screen(crispr_plates=1, compound_plates=1)
    table = with_well_ids(screen.metadata, JUMP)
    assert table["well_id"].tolist() == screen.well_ids and table["well_id"].str.startswith("source_").all()
    design = describe_wells(table, JUMP, screen.crispr.set_index("Metadata_JCP2022")["Metadata_Symbol"])
    assert set(design.perturbation[(design.modality == "gene") & ~design.is_control]) == set(screen.genes)
    assert set(design.batch) == set(screen.metadata["Metadata_Plate"])
    with pytest.raises(ValueError, match="no 'well_id' column and no"):
        with_well_ids(screen.metadata.drop(columns="Metadata_Well"), JUMP)
