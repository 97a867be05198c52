"""`phenom demo`: a reduced run end to end (real synth, accelerate-launched pretraining, embedding, baseline, eval,
probe, leaderboard, card), its outputs parse; re-running resumes; bad output folders are refused before any work."""

import csv
import json
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard
from PIL import Image

from phenom.commands.demo import main
from phenom.demo import MODELS, STATE_FILE, DemoError, DemoOutputError, demo, prepare_output

SETTINGS = {"size": "tiny", "steps": 2, "seed": 0}


@pytest.mark.slow
def test_reduced_demo_runs_end_to_end_then_resumes(tmp_path):
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "phenom", "demo", "--out", str(out), "--size", "tiny", "--steps", "2",
               "--no-progress"]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    # --no-progress reaches every stage, the pretraining subprocess included: no tqdm bar in the output.
    printed = first.stderr + first.stdout
    assert "%|" not in printed and "embedding (rank" not in printed, printed[-2000:]

    with open(out / "leaderboard.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = [row["model"] for row in rows]
    assert len(rows) == 3 and any("trained" in label for label in labels)
    assert any("random-init" in label for label in labels) and any("handcrafted" in label for label in labels)
    blocks = {row["model"]: row["block"] for row in rows}
    assert blocks["tiny-trained"] == blocks["tiny-random-init"] == "4"  # the tiny model's last block
    assert all("recall_mean_0.05_0.95" in row for row in rows)
    for name in MODELS:
        results = json.loads((out / "results" / name / "results.json").read_text())
        assert results["model"] == name and "recall_CORUM_0.05_0.95" in results["metrics"]
    card = ModelCard.load(out / "card" / "README.md")
    assert card.data.eval_results and card.data.license == "apache-2.0"
    for png in [out / "leaderboard.png", out / "plots" / "reconstruction.png", *(out / "results").rglob("*.png")]:
        with Image.open(png) as image:
            image.verify()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["trained_beats_random_init"]) == {"recall_mean_0.05_0.95", "compound_gene_ap_max"}
    assert set(summary["stage_seconds"]) == {"synth", "pretrain", "random-init", "embed", "baseline", "eval", "probe",
                                             "report"}
    assert (out / "pretrain" / "final" / "config.json").is_file()

    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming the demo run" in again.stdout
    assert again.stdout.count("done in an earlier run, skipped") == 8


def test_unwritable_out_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["--out", str(blocker / "demo"), "--size", "tiny"]) == 2
    assert "not writable" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file"]


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "demo"
    target.write_text("x")
    assert main(["--out", str(target), "--size", "tiny"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_a_folder_with_other_files_is_never_taken_over(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(DemoError, match="holds no demo run"):
            prepare_output(tmp_path, SETTINGS, overwrite=overwrite)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_other_settings_need_overwrite_which_replaces_the_run(tmp_path):
    out = tmp_path / "demo"
    state, mode = prepare_output(out, SETTINGS, overwrite=False)
    assert mode == "fresh" and state["done"] == []
    (out / "leftover.txt").write_text("from the earlier run")
    state["done"].append("synth")
    (out / STATE_FILE).write_text(json.dumps(state))

    state, mode = prepare_output(out, SETTINGS, overwrite=False)
    assert mode == "resume" and state["done"] == ["synth"]
    other = {**SETTINGS, "steps": 5}
    with pytest.raises(DemoError, match="--overwrite"):
        prepare_output(out, other, overwrite=False)
    state, mode = prepare_output(out, other, overwrite=True)
    assert mode == "overwrite" and state == {"settings": other, "done": [], "seconds": {}}
    assert not (out / "leftover.txt").exists()


def test_bad_settings_are_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(DemoOutputError, match="--steps must be >= 1, got 0"):
        demo(tmp_path / "demo", size="tiny", steps=0)
    with pytest.raises(DemoOutputError, match="size must be one of tiny, small, medium, got 'huge'"):
        demo(tmp_path / "demo", size="huge")
    assert main(["--out", str(tmp_path / "demo"), "--size", "tiny", "--steps", "0"]) == 2
    assert "--steps must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_a_failing_stage_is_a_demo_error_naming_it_and_stays_to_do(tmp_path):
    from phenom.demo import run_stage

    out = tmp_path / "demo"
    state, _ = prepare_output(out, SETTINGS, overwrite=False)

    def broken():
        raise FileNotFoundError("no such embeddings file: x.parquet")

    with pytest.raises(DemoError, match="embed failed: no such embeddings file: x.parquet. Re-run the same command"):
        run_stage(state, out, "embed", broken)
    assert "embed" not in state["done"]
    assert json.loads((out / STATE_FILE).read_text())["done"] == []
