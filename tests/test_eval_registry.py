"""Benchmarks are a registry (`eval/benchmarks/<name>.py`): a new benchmark is one file that `phenom eval` runs and
plots and whose titles the cards and leaderboards use; the mAP metrics reach the model-index and the leaderboard."""

import csv
import io
import json
import pkgutil
import sys

import pytest
from jump_data import jump_screen
from test_hub_cards_card import save_small_model

import eval.benchmarks as benchmarks
from eval.benchmarks import metric_family, metric_title, registry, sort_metric_names
from eval.results import read_all_results
from hub_cards.card import build_card
from hub_cards.model_info import describe_model
from phenom.commands.eval import main as eval_main
from phenom.commands.leaderboard import main as leaderboard_main

EXTRA_BENCHMARK = '''
"""A benchmark in one file: the number of wells scored."""
from eval.benchmarks import Benchmark, MetricFamily
from eval.context import BenchmarkResult


def run(context):
    scored = int((~context.design.is_control).sum())
    return BenchmarkResult({"well_count_scored": scored}, {}, {}, {"well_count_note": "from one file"})


def plot(context, results, folder, title):
    path = folder / "well_count.txt"
    path.write_text(f"{title}: {results.metrics['well_count_scored']}\\n")
    return [path]


BENCHMARK = Benchmark(name="well_count", order=80,
                      families=(MetricFamily(r"well_count_", "well count", "wells that were scored"),),
                      run=run, plot=plot, title=lambda name: "wells scored" if name == "well_count_scored" else None)
'''


def test_every_module_with_a_benchmark_is_registered_in_order():
    modules = [info.name for info in pkgutil.iter_modules(benchmarks.__path__)]
    assert list(registry()) == ["recall", "replicate_consistency", "compound_gene", "signal_consistency",
                                "signal_magnitude", "map_activity", "map_consistency", "probe"]
    assert set(registry()) == set(modules)
    assert [name for name, benchmark in registry().items() if benchmark.run is None] == ["probe"]


def test_titles_families_and_order_come_from_the_registry():
    assert metric_title("map_activity_fraction") == "mAP phenotypic activity (fraction active, FDR 5 %)"
    assert metric_title("map_consistency_mean") == "mAP phenotypic consistency (mean)"
    assert metric_title("compound_gene_ap_1.0_q25") == "compound-gene AP (1.0 µM, lower quartile over compounds)"
    assert metric_title("compound_gene_auc_max") == "compound-gene AUC (best concentration)"
    assert metric_title("recall_CORUM_0.05_0.95") == "CORUM recall (5 % / 95 %)"
    assert metric_title("something_new") == "something new"
    assert metric_family("map_activity_mean")[1] == "mAP activity"
    assert metric_family("recall_mean_0.05_0.95")[1] == "mean recall"
    assert sort_metric_names(["probe_balanced_accuracy_block10", "map_activity_mean", "probe_balanced_accuracy_block2",
                              "recall_CORUM_0.1_0.9", "recall_mean_0.1_0.9", "zzz"]) == [
        "recall_mean_0.1_0.9", "recall_CORUM_0.1_0.9", "map_activity_mean", "probe_balanced_accuracy_block2",
        "probe_balanced_accuracy_block10", "zzz"]


@pytest.fixture(scope="module")
def jump_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jump_registry")
    embeddings, metadata, crispr = jump_screen(crispr_plates=5).write(folder)
    argv = ["--embeddings", str(embeddings), "--metadata", str(metadata), "--metadata-format", "jump",
            "--annotations-table", str(crispr), "--map-null-size", "1000", "--seeds", "2", "--no-plots"]
    return folder, argv


def test_a_new_benchmark_is_one_file(jump_results, tmp_path, monkeypatch):
    folder, argv = jump_results
    package = tmp_path / "extra"
    package.mkdir()
    (package / "well_count.py").write_text(EXTRA_BENCHMARK)
    monkeypatch.setattr(benchmarks, "__path__", [*benchmarks.__path__, str(package)])
    registry.cache_clear()
    try:
        assert eval_main([*argv[:-1], "--out", str(tmp_path / "out")]) == 0
        results = json.loads((tmp_path / "out" / "results.json").read_text())
        assert results["metrics"]["well_count_scored"] == results["counts"]["gene_wells"] + \
            results["counts"]["compound_wells"]
        assert results["counts"]["well_count_note"] == "from one file"
        scored = results["metrics"]["well_count_scored"]
        assert (tmp_path / "out" / "well_count.txt").read_text() == f"planted: {scored}\n"
        assert metric_title("well_count_scored") == "wells scored"
    finally:
        monkeypatch.undo()
        registry.cache_clear()
        sys.modules.pop("eval.benchmarks.well_count", None)
    assert "well_count" not in registry()


def test_model_index_and_leaderboard_carry_the_map_metrics(jump_results, tmp_path):
    folder, argv = jump_results
    assert eval_main([*argv, "--out", str(tmp_path / "eval")]) == 0
    results = read_all_results([tmp_path / "eval"])
    names = {"map_activity_mean", "map_activity_fraction", "map_consistency_mean", "map_consistency_fraction"}
    assert names <= set(results[0].metrics)
    card = build_card(results, describe_model(str(save_small_model(tmp_path / "model"))))
    entries = {entry.metric_type: entry for entry in card.data.eval_results}
    for name in names:
        entry = entries[f"{name}/pca-centerscale"]
        assert entry.metric_value == results[0].metrics[name] and entry.metric_name.startswith(metric_title(name))
    assert leaderboard_main(["--results", str(tmp_path / "eval"), "--out", str(tmp_path / "board")]) == 0
    header = next(csv.reader(io.StringIO((tmp_path / "board" / "leaderboard.csv").read_text())))
    assert names <= set(header)
    assert "`map_activity_fraction` (mAP phenotypic activity (fraction active, FDR 5 %))" in \
        (tmp_path / "board" / "leaderboard.md").read_text()
