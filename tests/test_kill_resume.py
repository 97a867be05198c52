"""The kill -9 matrix: `phenom pretrain`, `phenom embed` and `phenom synth` killed with SIGKILL at the points where a
crash hurts most (in the middle of a checkpoint, a part, a shard, a log line, the final export, a merge), then run
again with the same command: each ends with exactly what an uninterrupted run gives.

The kills happen inside the real process (`tests/kill_points.py` wraps the real function at that spot and sends its
own process SIGKILL there), so no `finally`, atexit or flush runs; one kill per command also comes from outside at
an arbitrary moment. Every killed process must die by SIGKILL (return code -9), which proves the point was reached.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, small_config

from eval.embeddings_file import read_embeddings
from modeling_phenom import PhenomForMaskedImageModeling, PhenomImageProcessor, PhenomModel
from phenom.cli import main as phenom
from phenom_data.synth import generate
from train.checkpointing import checkpoint_dirs

DRIVER = Path(__file__).resolve().parent / "kill_points.py"
TINY = REPO_ROOT / "train" / "configs" / "tiny.yaml"
SYNTH = ["--size", "tiny", "--seed", "0", "--rows-per-shard", "96", "--no-progress"]  # 4 shards


def env():
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "ACCELERATE_USE_CPU": "true"}


def run(point: str, count: int, arguments: list, expect_kill: bool = True) -> subprocess.CompletedProcess:
    """Run `phenom ARGUMENTS` under the kill driver in its own session; afterwards kill what is left of that session
    (a killed synth leaves its render worker behind, holding inherited pipes: output goes to files, not pipes)."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen([sys.executable, str(DRIVER), point, str(count), *map(str, arguments)],
                                   cwd=REPO_ROOT, env=env(), stdout=stdout, stderr=stderr, start_new_session=True)
        process.wait(timeout=600)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout.seek(0)
        stderr.seek(0)
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout.read(), stderr.read())
    if expect_kill:
        assert result.returncode == -signal.SIGKILL, f"{point} was never reached:\n{result.stderr[-3000:]}"
    else:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def kill_from_outside(arguments: list, ready) -> None:
    """Start `phenom ARGUMENTS` and SIGKILL it from outside as soon as `ready()` holds (polled every 10 ms)."""
    process = subprocess.Popen([sys.executable, "-m", "phenom", *map(str, arguments)], cwd=REPO_ROOT, env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not ready() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder`, hidden ones (temporaries) included."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


# ----------------------------------------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "tiny", size="tiny", seed=0, progress=False)


# ------------------------------------------------------------------------------------------------------- pretrain
def pretrain_arguments(data, out) -> list:
    # The demo's form: the same command every time, `--resume latest` from an empty folder on. Stochastic depth on,
    # so that the RNG state is part of what a resume must restore.
    return ["pretrain", "--config", TINY, f"data.path={data}", f"output_dir={out}", "max_steps=8",
            "checkpoint_every=2", "keep_checkpoints=2", "seed=7", "model.overrides.drop_path_rate=0.1",
            "data.crop_size=64", "model.overrides.patch_size=16", "global_batch_size=4", "per_device_batch_size=4",
            "log_every=1", "data.shuffle_buffer_size=8", "trackers=[]", "reconstruction_every=1000", "progress=false",
            "--resume", "latest"]


def losses(output_dir: Path) -> dict[int, float]:
    return {record["step"]: record["loss"] for record in map(json.loads, (output_dir / "log.jsonl").open())}


def test_pretrain_killed_at_every_write_resumes_to_the_uninterrupted_run(synth_data, tmp_path):
    reference = tmp_path / "reference"
    run("none", 0, pretrain_arguments(synth_data, reference), expect_kill=False)
    killed = tmp_path / "killed"
    command = pretrain_arguments(synth_data, killed)

    run("checkpoint-optimizer", 2, command)  # inside step 4's checkpoint: half its optimizer.bin written
    assert [path.name for path in checkpoint_dirs(killed)] == ["step_2"]
    assert (killed / "checkpoints" / ".tmp-step_4" / "model.safetensors").is_file()
    run("log-line", 2, command)  # resumed at 2; killed writing step 4's log line
    assert not (killed / "log.jsonl").read_text().endswith("\n")
    run("checkpoint-publish", 1, command)  # step 4's checkpoint complete but not yet renamed into place
    assert [path.name for path in checkpoint_dirs(killed)] == ["step_2"]
    run("checkpoint-prune", 1, command)  # step 6 in place; step_2 half deleted while pruning
    assert [path.name for path in checkpoint_dirs(killed)] == ["step_2", "step_4", "step_6"]
    assert not (killed / "checkpoints" / "step_2" / "model.safetensors").exists()
    run("final-export", 1, command)  # step 8 checkpointed; final/ being put in place
    assert not (killed / "final").exists() and (killed / "final.tmp").is_dir()
    result = run("none", 0, command, expect_kill=False)
    assert f"resumed from {killed / 'checkpoints' / 'step_8'} at step 8" in result.stderr

    assert sorted(losses(killed)) == list(range(1, 9))
    expected = losses(reference)
    for step, loss in losses(killed).items():
        assert loss == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
    assert [path.name for path in checkpoint_dirs(killed)] == ["step_6", "step_8"]
    assert not list((killed / "checkpoints").glob(".tmp-*")) and not (killed / "final.tmp").exists()
    final = PhenomForMaskedImageModeling.from_pretrained(killed / "final").state_dict()
    for name, tensor in PhenomForMaskedImageModeling.from_pretrained(reference / "final").state_dict().items():
        torch.testing.assert_close(final[name], tensor, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------- embed
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model") / "small"
    torch.manual_seed(0)
    PhenomModel(small_config(image_size=64, patch_size=16)).save_pretrained(directory)
    PhenomImageProcessor(crop_size=64).save_pretrained(directory)
    return directory


def embed_arguments(model, data, out) -> list:
    return ["embed", "--model", model, "--data", data, "--out", out, "--blocks", "all", "--device", "cpu",
            "--batch-size", "4", "--part-wells", "4", "--no-progress"]


@pytest.fixture(scope="module")
def embed_reference(model_dir, synth_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("embed_reference") / "e.parquet"
    assert phenom([str(item) for item in embed_arguments(model_dir, synth_data, out)]) == 0
    return {block: read_embeddings(out.with_name(f"e_block{block}.parquet")) for block in (1, 2, 3)}


def check_embeddings(out: Path, reference: dict) -> None:
    folder = out.parent
    assert sorted(path.name for path in folder.iterdir()) == [f"e_block{block}.parquet" for block in (1, 2, 3)]
    for block, expected in reference.items():
        table = read_embeddings(folder / f"e_block{block}.parquet")
        assert list(table.well_ids) == list(expected.well_ids) and len(set(table.well_ids)) == 64
        np.testing.assert_allclose(table.features, expected.features, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("point, count", [("embed-part", 3), ("embed-merge", 1), ("outside", 0)])
def test_embed_killed_resumes_to_the_uninterrupted_files(model_dir, synth_data, embed_reference, tmp_path, point,
                                                         count, capsys, caplog):
    out = tmp_path / "run" / "e.parquet"
    command = [str(item) for item in embed_arguments(model_dir, synth_data, out)]
    parts = out.with_name("e.parquet.parts")
    if point == "outside":
        kill_from_outside(command, lambda: len(list(parts.glob("part-*.parquet"))) >= 2)
    else:
        run(point, count, command)
    assert parts.is_dir()
    assert phenom(command) == 0  # the same command again
    if point != "embed-merge":
        assert "resuming:" in capsys.readouterr().err
    assert "taking over the lock on --out" in caplog.text  # the killed run could not release it
    check_embeddings(out, embed_reference)


# ---------------------------------------------------------------------------------------------------------- synth
@pytest.fixture(scope="module")
def synth_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_reference") / "data"
    generate(out, size="tiny", seed=0, progress=False, rows_per_shard=96)
    return file_digests(out)


@pytest.mark.parametrize("point, count", [("synth-shard", 2), ("synth-truth", 1), ("outside", 0)])
def test_synth_killed_resumes_to_the_same_bytes(synth_reference, tmp_path, point, count):
    out = tmp_path / "data"
    command = ["synth", "--out", out, *SYNTH]
    if point == "outside":
        kill_from_outside(command, lambda: any((out / "data").glob("train-*.parquet")))
    else:
        run(point, count, command)
    assert not (out / "ground_truth.json").exists()
    assert phenom([str(item) for item in command]) == 0  # the same command again
    assert file_digests(out) == synth_reference
