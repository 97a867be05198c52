"""The results JSON reader of `hub_cards`: the DESIGN §6 layouts, what it tolerates and what it refuses."""

import json

import pytest
from conftest import FIXTURES

from eval.benchmarks import metric_title
from eval.results import ResultsError, read_all_results, read_results, results_files
from hub_cards.references import dataset_identity

RESULTS = FIXTURES / "hub_cards"


def write(path, document):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def minimal(**changes):
    return {"model": "m", "dataset": "d", "block": 1, "correction": "tvn", "metrics": {"recall_CORUM_0.05_0.95": 0.5},
            **changes}


def test_a_folder_expands_to_its_block_results_in_block_order(tmp_path):
    for block in (10, 2, 9):
        write(tmp_path / "eval" / f"block{block}" / "results.json", minimal(block=block))
    write(tmp_path / "eval" / "plots" / "results.json", minimal())  # not a block folder: ignored
    files = results_files([tmp_path / "eval"])
    assert [file.parent.name for file in files] == ["block2", "block9", "block10"]
    assert results_files([RESULTS / "small_probe"]) == [RESULTS / "small_probe" / "results.json"]


def test_the_fixture_files_read_as_written():
    block2, probe = read_all_results([RESULTS / "small_eval" / "block2", RESULTS / "small_probe"])
    assert (block2.model, block2.dataset, block2.block, block2.correction) == (
        "phenom-small", "recursionpharma/rxrx3-core", 2, "pca-centerscale")
    assert block2.metrics["recall_CORUM_0.05_0.95"] == 0.30000000000000004
    assert block2.metrics_std == {"recall_CORUM_0.05_0.95": 0.0125}  # the null std means "not reported"
    assert block2.counts == {"genes": 40, "wells": 960, "null_pairs": 780}
    assert probe.block is None and probe.correction is None and probe.metrics["probe_best_block"] == 2
    assert probe.extra == {"task": "gene"}


def test_the_block_may_come_from_its_folder_or_a_digit_string(tmp_path):
    document = minimal()
    del document["block"]
    assert read_results(write(tmp_path / "block7" / "results.json", document)).block == 7
    assert read_results(write(tmp_path / "a" / "results.json", minimal(block="12"))).block == 12
    with pytest.raises(ResultsError, match="'block' is 3 but the file sits in folder block7"):
        read_results(write(tmp_path / "block7" / "results.json", minimal(block=3)))
    with pytest.raises(ResultsError, match="blocks are numbered from 1"):
        read_results(write(tmp_path / "b" / "results.json", minimal(block=0)))


@pytest.mark.parametrize(("document", "message"), [
    ("[1, 2]", "must hold a JSON object"),
    ("{not json", "is not valid JSON"),
    (minimal(model=""), "has no 'model'"),
    ({k: v for k, v in minimal().items() if k != "dataset"}, "has no 'dataset'"),
    (minimal(metrics={}), "has no metrics"),
    (minimal(metrics={"recall_CORUM_0.05_0.95": "0.5"}), "must be a number, found str '0.5'"),
    (minimal(metrics={"recall_CORUM_0.05_0.95": True}), "must be a number, found bool"),
    (minimal(metrics={"recall_CORUM_0.05_0.95": float("inf")}), r"has no value \(inf\)"),
    (minimal(metrics={"a/b": 0.5}), "without '/'"),
    (minimal(baselines={"recall_CORUM_0.05_0.95": "random"}), r"baselines\['recall_CORUM_0.05_0.95'\] must be"),
])
def test_bad_results_files_are_named_with_their_problem(tmp_path, document, message):
    path = write(tmp_path / "results.json", document)
    with pytest.raises(ResultsError, match=message) as error:
        read_results(path)
    assert str(path) in str(error.value)


def test_missing_paths_are_errors(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        results_files([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match=r"holds no results.json and no block<k>/results.json"):
        results_files([tmp_path / "empty"])


def test_dataset_identity_and_metric_titles():
    assert dataset_identity("RxRx3-core") == ("recursionpharma/rxrx3-core", "RxRx3-core")
    assert dataset_identity("recursionpharma/rxrx3-core") == ("recursionpharma/rxrx3-core", "RxRx3-core")
    assert dataset_identity("someone/my-plates") == ("someone/my-plates", "my-plates")
    assert dataset_identity("/data/runs/synth/") == ("synth", "synth")
    assert dataset_identity("someone/my-plates.") == ("my-plates.", "my-plates.")  # not a Hub id: a trailing "."
    assert dataset_identity("runs--old/synth") == ("synth", "synth")  # nor one with "--"
    assert metric_title("recall_StringDB_0.1_0.9") == "StringDB recall (10 % / 90 %)"
    assert metric_title("compound_gene_auc_1.0") == "compound-gene AUC (1.0 µM)"
    assert metric_title("replicate_consistency_ks") == "replicate consistency (KS)"
