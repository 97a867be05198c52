"""`phenom leaderboard`: one table across models and blocks (CSV `model`, `block`, one column per metric), sorted
per metric, with markdown and a PNG."""

import csv
import io

import pytest
from conftest import FIXTURES
from PIL import Image

from eval.results import read_all_results
from hub_cards.leaderboard import LeaderboardError, build_leaderboard
from phenom.commands.leaderboard import main

RESULTS = FIXTURES / "hub_cards"


def test_leaderboard_files_across_models_and_blocks(tmp_path, capsys):
    code = main(["--results", str(RESULTS / "small_eval"), str(RESULTS / "other_eval"), str(RESULTS / "small_probe"),
                 "--out", str(tmp_path / "board")])
    assert code == 0, capsys.readouterr().err
    rows = list(csv.reader(io.StringIO((tmp_path / "board" / "leaderboard.csv").read_text())))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["model", "block"]
    assert header[2:5] == ["recall_mean_0.05_0.95", "recall_CORUM_0.05_0.95", "recall_CORUM_0.1_0.9"]
    assert header[-4:] == ["probe_best_block", "probe_balanced_accuracy_block1", "probe_balanced_accuracy_block2",
                           "probe_balanced_accuracy_block3"]
    # Sorted by the mean recall, best first (values from the fixture files); the probe row has none: last.
    assert [(row[0], row[1], row[2]) for row in body] == [
        ("phenom-small", "3", "0.26875"), ("phenom-small", "2", "0.24025419725308642"),
        ("phenom-other", "3", "0.235"), ("phenom-other", "2", "0.225"), ("phenom-small", "", "")]
    column = header.index("replicate_consistency_ks")
    assert [row[column] for row in body] == ["0.55", "0.5125", "0.63", "0.62", ""]
    assert body[-1][header.index("probe_best_block")] == "2"

    markdown = (tmp_path / "board" / "leaderboard.md").read_text()
    ranking = markdown.split("## Ranking per metric")[1]
    assert ("`replicate_consistency_ks` (replicate consistency (KS)): phenom-other (block 3) 0.63 > phenom-other "
            "(block 2) 0.62 > phenom-small (block 3) 0.55 > phenom-small (block 2) 0.5125") in ranking
    assert "`probe_best_block`" not in ranking  # a block number, not a score
    assert "| phenom-other | 3 | 0.235 | 0.33 |" in markdown and "**0.63**" in markdown
    assert "Random baseline: `recall_mean_0.05_0.95` 0.1, `recall_CORUM_0.05_0.95` 0.1" in markdown
    with Image.open(tmp_path / "board" / "leaderboard.png") as image:
        assert image.format == "PNG" and image.width > 500


def test_mixed_corrections_are_told_apart_in_the_model_label():
    board = build_leaderboard(read_all_results([RESULTS / "small_eval", RESULTS / "small_tvn",
                                                RESULTS / "small_probe"]), sort_metric="recall_CORUM_0.05_0.95")
    assert [(row.model, row.block) for row in board.rows] == [
        ("phenom-small [tvn]", 3), ("phenom-small [pca-centerscale]", 3), ("phenom-small [pca-centerscale]", 2),
        ("phenom-small", None)]


def test_leaderboard_bad_input_is_named():
    results = read_all_results([RESULTS / "small_eval"])
    with pytest.raises(LeaderboardError, match="two results files for model 'phenom-small', block 2"):
        build_leaderboard(read_all_results([RESULTS / "small_eval", RESULTS / "small_eval" / "block2"]))
    with pytest.raises(LeaderboardError, match="cannot sort by 'probe_best_block'"):
        build_leaderboard(read_all_results([RESULTS / "small_probe"]), sort_metric="probe_best_block")
    with pytest.raises(LeaderboardError, match="--metrics names metrics no results file reports: recall_X"):
        build_leaderboard(results, metrics=["recall_X"])


def test_leaderboard_function_returns_the_table_and_the_files_it_wrote(tmp_path):
    from hub_cards.leaderboard import leaderboard

    result = leaderboard([RESULTS / "small_eval", RESULTS / "other_eval"], tmp_path / "board",
                         metrics=["recall_CORUM_0.05_0.95"], title="Two models")
    assert result.board.metrics == ["recall_CORUM_0.05_0.95"] and len(result.board.rows) == 4
    assert result.files == {kind: tmp_path / "board" / f"leaderboard.{suffix}"
                            for kind, suffix in (("markdown", "md"), ("csv", "csv"), ("png", "png"))}
    assert result.files["markdown"].read_text().startswith("# Two models")
