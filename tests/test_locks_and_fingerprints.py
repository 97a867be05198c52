"""`phenom_data.locks` (one run per output, stale locks taken over), `phenom_data.fingerprint` (runs identified by
content), `phenom_data.errors` (one-line user errors) and the checked model loading of `modeling_phenom.loading`."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT, small_config

from modeling_phenom import PhenomForMaskedImageModeling, PhenomModel
from modeling_phenom.loading import CheckpointMismatchError, load_pretrained
from phenom_data.errors import command, one_line
from phenom_data.fingerprint import data_fingerprint, differences, model_fingerprint
from phenom_data.locks import OutputLock, OutputLockedError, lock_path, output_lock


def hold_lock_in_another_process(target):
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom phenom_data.locks import OutputLock\n"
         "OutputLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(600)", str(target)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_the_lock_file_sits_beside_the_output_and_names_its_holder(tmp_path):
    out = tmp_path / "runs" / "tiny"
    assert lock_path(out) == tmp_path / "runs" / ".tiny.lock"
    with output_lock(out, "output_dir") as lock:
        holder = json.loads(lock.path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"]
    assert not lock.path.exists() and not lock.held


def test_a_second_lock_is_refused_at_once_in_another_process_and_in_this_one(tmp_path):
    out = tmp_path / "e.parquet"
    holder = hold_lock_in_another_process(out)
    try:
        with pytest.raises(OutputLockedError, match=rf"--out {out} is in use by another run \(pid {holder.pid} on"):
            OutputLock(out, "--out").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with output_lock(out):
        with pytest.raises(OutputLockedError, match=f"is in use by this process \\(pid {os.getpid()}\\)"):
            OutputLock(out).acquire()


def test_a_stale_lock_of_a_killed_run_is_taken_over_with_a_warning(tmp_path, caplog):
    out = tmp_path / "data"
    holder = hold_lock_in_another_process(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_path(out).is_file()  # a killed run cannot remove its lock file
    with caplog.at_level(logging.WARNING, logger="phenom_data.locks"), output_lock(out, "folder"):
        pass
    assert f"taking over the lock on folder {out}: the run that held it has ended without releasing it " \
           f"(pid {holder.pid} on host" in caplog.text


def test_forked_children_do_not_keep_a_dead_runs_output_locked(tmp_path):
    # A render or DataLoader worker that outlives its killed parent must not hold the parent's lock.
    out = tmp_path / "out"
    code = ("import os, sys, time\nfrom phenom_data.locks import OutputLock\nOutputLock(sys.argv[1]).acquire()\n"
            "if os.fork() == 0:\n    time.sleep(600)\nprint('forked', flush=True)\ntime.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=REPO_ROOT, start_new_session=True,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "forked"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        with output_lock(out):  # the child still lives
            pass
    finally:
        os.killpg(parent.pid, signal.SIGKILL)


def test_data_fingerprint_is_the_content_not_the_spelling_of_the_path(tmp_path):
    data = tmp_path / "data"
    (data / "data").mkdir(parents=True)
    (data / "data" / "train-0.parquet").write_bytes(b"x" * 10)
    (data / "metadata.csv").write_text("well_id\nA\n")
    first = data_fingerprint(data)
    assert data_fingerprint(f"{data}/") == first == data_fingerprint(shutil.copytree(data, tmp_path / "moved"))
    (data / ".hidden.tmp").write_text("temporary files do not count")
    assert data_fingerprint(data) == first
    (data / "data" / "train-0.parquet").write_bytes(b"x" * 11)
    assert data_fingerprint(data) != first
    assert data_fingerprint("recursionpharma/rxrx3-core") == {"hub": "recursionpharma/rxrx3-core", "revision": "main"}
    assert differences({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == ["a.c: was 2, now 3"]


def test_model_fingerprint_follows_the_weights_not_the_readme(tmp_path):
    model = tmp_path / "model"
    torch.manual_seed(0)
    PhenomModel(small_config()).save_pretrained(model)
    first = model_fingerprint(model)
    (model / "README.md").write_text("a card")
    assert model_fingerprint(model) == first
    torch.manual_seed(1)
    PhenomModel(small_config()).save_pretrained(model)
    assert model_fingerprint(model) != first


def test_partial_loading_is_an_error_unless_asked_for(tmp_path):
    encoder = tmp_path / "encoder"
    PhenomModel(small_config()).save_pretrained(encoder)
    with pytest.raises(CheckpointMismatchError, match=r"tensors missing \(they would be randomly initialized\): "
                                                      r"decoder\."):
        load_pretrained(PhenomForMaskedImageModeling, encoder)
    model = load_pretrained(PhenomForMaskedImageModeling, encoder, allow_partial=True)  # a new decoder, on purpose
    assert isinstance(model, PhenomForMaskedImageModeling)
    # The decoder of a pretraining checkpoint is ignored on purpose when it loads as an encoder: not refused.
    full = tmp_path / "full"
    PhenomForMaskedImageModeling(small_config()).save_pretrained(full)
    assert isinstance(load_pretrained(PhenomModel, full), PhenomModel)


def test_command_turns_user_errors_into_one_line_and_exit_2(capsys, monkeypatch):
    @command
    def main(argv=None, prog=None):
        if argv:
            raise FileNotFoundError(f"{argv[0]} does not exist\nsecond line")
        raise RuntimeError("a bug keeps its traceback")

    monkeypatch.delenv("PHENOM_DEBUG", raising=False)
    assert main(["x.csv"], prog="phenom x") == 2
    assert capsys.readouterr().err == "phenom x: error: x.csv does not exist; second line\n"
    with pytest.raises(RuntimeError):
        main([], prog="phenom x")
    seen = []

    @command
    def records(argv=None, prog=None):
        seen.append(os.environ.get("PHENOM_DEBUG"))
        raise ValueError("bad value")

    with pytest.raises(ValueError, match="bad value"):
        records(["--debug"], prog="phenom x")
    assert seen == ["1"] and "PHENOM_DEBUG" not in os.environ  # set while the command (and what it starts) runs
    monkeypatch.setenv("PHENOM_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["x.csv"], prog="phenom x")
    assert one_line(KeyError("well_id")) == "well_id"
