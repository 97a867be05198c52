"""`phenom eval` from an embeddings file in the official layout and a metadata CSV: no model involved; results JSON
in the DESIGN §6 contract; batch correction raises recall on planted biology; bad input is named, never scored."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from eval_data import planted_wells

from eval.embeddings_file import read_embeddings, write_embeddings
from eval.evaluate import EvalOptions, evaluate
from eval.results import EvalResults, write_results
from phenom.commands.eval import main

RESULT_KEYS = ["model", "dataset", "block", "correction", "metrics", "metrics_std", "baselines", "counts", "seeds",
               "versions"]


def write_official_layout(path, metadata, features):
    """The layout of OpenPhenom_rxrx3_core_embeddings.parquet, written with pandas (not with Phenom's writer)."""
    table = pd.DataFrame(features.astype(np.float32), columns=[f"feature_{k}" for k in range(features.shape[1])])
    table.insert(0, "well_id", metadata["well_id"].to_numpy())
    table.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    metadata, features = planted_wells()
    metadata.to_csv(folder / "metadata.csv", index=False)
    return folder, metadata, features


def test_phenom_eval_scores_an_official_layout_file_with_no_model(planted, tmp_path):
    folder, metadata, features = planted
    embeddings = write_official_layout(tmp_path / "OpenPhenom_like_embeddings.parquet", metadata, features)
    # Through the `phenom` command's dispatch, in a fresh interpreter that must not even import torch.
    argv = ["eval", "--embeddings", str(embeddings), "--metadata", str(folder / "metadata.csv"), "--out",
            str(tmp_path / "out")]
    script = (f"import sys; from phenom.cli import main; code = main({argv!r}); "
              "print('torch imported' if 'torch' in sys.modules else 'no torch'); sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("no torch")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(results) == RESULT_KEYS
    assert results["model"] == "OpenPhenom_like_embeddings" and results["block"] is None
    assert results["correction"] == "pca-centerscale" and results["dataset"] == "metadata"
    assert {"recall_CORUM_0.05_0.95", "recall_CORUM_0.1_0.9", "recall_HuMAP_0.05_0.95", "recall_StringDB_0.1_0.9"} \
        <= set(results["metrics"])
    assert results["metrics"]["recall_CORUM_0.05_0.95"] > 2 * results["baselines"]["recall_CORUM_0.05_0.95"]
    counts = results["counts"]
    assert counts["wells"] == len(metadata) and counts["map_genes"] == 90 and counts["batches"] == 3
    assert counts["recall_CORUM_query_size"] == 60 and counts["recall_CORUM_null_size"] == 90 * 89 // 2
    assert results["seeds"] == list(range(10)) and "numpy" in results["versions"]
    assert (tmp_path / "out" / "recall.png").stat().st_size > 0
    assert (tmp_path / "out" / "complex_heatmap.png").stat().st_size > 0
    assert "recall_CORUM_0.05_0.95" in result.stdout  # the summary table


def test_batch_correction_raises_corum_recall_over_uncorrected(planted, tmp_path):
    folder, metadata, features = planted
    embeddings = write_official_layout(tmp_path / "embeddings.parquet", metadata, features)
    recall = {}
    for correction in ("none", "pca-centerscale", "tvn", "centerscale"):
        out = tmp_path / correction
        [results] = evaluate([embeddings], folder / "metadata.csv", out, EvalOptions(correction=correction,
                                                                                      plots=False))
        recall[correction] = json.loads((out / "results.json").read_text())["metrics"]["recall_CORUM_0.05_0.95"]
        assert results.metrics["recall_CORUM_0.05_0.95"] == recall[correction]  # returned as written
    print("CORUM recall (0.05, 0.95) on planted wells:", recall)
    assert recall["pca-centerscale"] > recall["none"] + 0.3
    assert recall["tvn"] > recall["none"] + 0.3
    assert recall["centerscale"] > recall["none"] + 0.3


def test_several_blocks_write_one_results_file_per_block(planted, tmp_path):
    folder, metadata, features = planted
    paths = []
    for block in (2, 3):
        path = tmp_path / f"tiny_block{block}.parquet"
        write_embeddings(path, metadata["well_id"], features * block,
                         provenance={"model": "phenom-tiny", "dataset": "planted", "block": block})
        paths.append(str(path))
    returned = evaluate(paths, folder / "metadata.csv", tmp_path / "out", EvalOptions(null="all-rows"))
    assert [results.block for results in returned] == [2, 3]
    for block in (2, 3):
        results = json.loads((tmp_path / "out" / f"block{block}" / "results.json").read_text())
        assert (results["model"], results["dataset"], results["block"]) == ("phenom-tiny", "planted", block)
        assert (tmp_path / "out" / f"block{block}" / "complex_heatmap.png").is_file()
    assert (tmp_path / "out" / "recall.png").is_file()


def run_expecting_error(capsys, tmp_path, metadata, features, well_ids=None, annotations=None):
    embeddings = tmp_path / "embeddings.parquet"
    write_official_layout(embeddings, metadata.assign(well_id=well_ids if well_ids is not None
                                                      else metadata["well_id"]), features)
    metadata_path = tmp_path / "metadata.csv"
    metadata.to_csv(metadata_path, index=False)
    extra = ["--annotations", str(annotations)] if annotations else []
    code = main(["--embeddings", str(embeddings), "--metadata", str(metadata_path), "--out", str(tmp_path / "out"),
                 "--no-plots", *extra], prog="phenom eval")
    assert code == 2 and not (tmp_path / "out" / "results.json").exists()
    return capsys.readouterr().err


def test_nan_rows_are_refused_naming_the_wells(planted, tmp_path, capsys):
    _, metadata, features = planted
    features = features.copy()
    features[5, 3] = np.nan
    error = run_expecting_error(capsys, tmp_path, metadata, features)
    assert f"1 wells have NaN or infinite embedding values, e.g. ['{metadata['well_id'][5]}']" in error


def test_duplicated_well_ids_are_refused(planted, tmp_path, capsys):
    _, metadata, features = planted
    well_ids = metadata["well_id"].to_numpy().copy()
    well_ids[1] = well_ids[0]
    error = run_expecting_error(capsys, tmp_path, metadata, features, well_ids=well_ids)
    assert f"1 well_id values occur more than once, e.g. ['{well_ids[0]}']" in error
    assert "--merge-duplicate-wells" in error


def test_duplicate_rows_are_averaged_when_asked(tmp_path):
    table = write_official_layout(tmp_path / "e.parquet", pd.DataFrame({"well_id": ["w1", "w2", "w1"]}),
                                  np.array([[1.0, 2.0], [5.0, 5.0], [3.0, 0.0]]))
    embeddings = read_embeddings(table, merge_duplicates=True)
    assert list(embeddings.well_ids) == ["w1", "w2"] and embeddings.merged_rows == 1
    np.testing.assert_array_equal(embeddings.features, [[2.0, 1.0], [5.0, 5.0]])


def test_a_well_missing_from_the_metadata_is_refused(planted, tmp_path, capsys):
    _, metadata, features = planted
    well_ids = metadata["well_id"].to_numpy().copy()
    well_ids[7] = "gene-999_1_Z99"
    error = run_expecting_error(capsys, tmp_path, metadata, features, well_ids=well_ids)
    assert "1 of 216 embedded wells are not in the metadata, e.g. ['gene-999_1_Z99']" in error


def test_a_map_with_no_annotated_pair_is_refused(planted, tmp_path, capsys):
    _, metadata, features = planted
    anonymous = metadata.assign(treatment=[treatment if "control" in treatment else f"RXRX3-{index}_guide_1"
                                           for index, treatment in enumerate(metadata["treatment"])])
    error = run_expecting_error(capsys, tmp_path, anonymous, features)
    assert "no annotated pair of CORUM, HuMAP, Reactome, SIGNOR, StringDB has both genes in the map" in error


def test_a_batch_without_controls_is_refused_naming_it(planted, tmp_path, capsys):
    _, metadata, features = planted
    no_controls = metadata.copy()
    no_controls.loc[(no_controls["experiment_name"] == "gene-002") & (no_controls["treatment"] == "EMPTY_control"),
                    "treatment"] = "CRISPR_control"
    error = run_expecting_error(capsys, tmp_path, no_controls, features)
    assert "in batch 'gene-002' (0 of 72 wells)" in error


def test_results_with_a_nan_metric_are_never_written(tmp_path):
    results = EvalResults(model="m", dataset="d", block=None, correction="none",
                          metrics={"recall_CORUM_0.05_0.95": float("nan")})
    with pytest.raises(ValueError, match=r"metric 'recall_CORUM_0.05_0.95' has no value \(nan\)"):
        write_results(tmp_path / "results.json", results)
    assert not (tmp_path / "results.json").exists()
    results.metrics = {"recall_CORUM_0.05_0.95": 0.5}
    results.baselines = {"recall_CORUM_0.05_0.95": float("inf")}
    with pytest.raises(ValueError, match=r"baselines\['recall_CORUM_0.05_0.95'\] = inf is not a finite number"):
        write_results(tmp_path / "results.json", results)
    assert not (tmp_path / "results.json").exists()


def test_several_files_must_name_their_blocks(planted, tmp_path, capsys):
    folder, metadata, features = planted
    first = write_official_layout(tmp_path / "a.parquet", metadata, features)
    second = write_official_layout(tmp_path / "b.parquet", metadata, features)
    assert main(["--embeddings", str(first), str(second), "--metadata", str(folder / "metadata.csv"), "--out",
                 str(tmp_path / "out")]) == 2
    assert "must be named <name>_block<k>.parquet" in capsys.readouterr().err


def test_batches_can_combine_columns_and_a_thin_combined_batch_is_named(planted, tmp_path, capsys):
    _, metadata, features = planted
    by_plate = metadata.assign(plate=[1 + index % 2 for index in range(len(metadata))])
    by_plate.loc[(by_plate["experiment_name"] == "gene-003") & (by_plate["plate"] == 2)
                 & (by_plate["treatment"] == "EMPTY_control"), "plate"] = 1
    embeddings = write_official_layout(tmp_path / "embeddings.parquet", by_plate, features)
    by_plate.to_csv(tmp_path / "metadata.csv", index=False)
    code = main(["--embeddings", str(embeddings), "--metadata", str(tmp_path / "metadata.csv"), "--out",
                 str(tmp_path / "out"), "--batch-column", "experiment_name,plate", "--no-plots"])
    assert code == 2 and "in batch 'gene-003/2' (0 of" in capsys.readouterr().err


def test_eval_never_imports_train():
    # DESIGN §2: train and eval meet through files only.
    for path in (REPO_ROOT / "eval").glob("*.py"):
        source = path.read_text()
        assert "import train" not in source and "from train" not in source, path
