"""Issue 22's table end to end on small data: each case a careless user or an attacker tried, as a test that failed
before its fix. D1-D14 (D9, `phenom eval --out` holding results, is issue 24's: tests/test_eval_metadata.py), E1, E2.

Commands run as users run them: `phenom ...` in-process through `phenom.cli.main` where nothing global is set up
(embed, synth, convert, eval, card, and pretrain errors raised before its accelerator starts), and `python -m phenom
pretrain` / `accelerate launch` in a subprocess where a run trains."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO_ROOT, small_config
from PIL import Image
from safetensors.torch import load_file, save_file

from eval.embeddings_file import read_embeddings
from modeling_phenom import PhenomImageProcessor, PhenomModel
from phenom.cli import main as phenom
from phenom_data.synth import generate

TINY = REPO_ROOT / "train" / "configs" / "tiny.yaml"
FAST = ["data.crop_size=64", "model.overrides.patch_size=16", "global_batch_size=4", "per_device_batch_size=4",
        "log_every=1", "data.shuffle_buffer_size=8", "trackers=[]", "reconstruction_every=1000", "progress=false",
        "max_steps=4", "checkpoint_every=2"]
WELLS = 64  # phenom synth --size tiny


def env(**extra):
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "ACCELERATE_USE_CPU": "true", **extra}


def run_phenom(args, **extra_env):
    """`python -m phenom ARGS` in a subprocess (a training run, or a failure that must not leave a traceback)."""
    return subprocess.run([sys.executable, "-m", "phenom", *map(str, args)], cwd=REPO_ROOT, env=env(**extra_env),
                          capture_output=True, text=True, timeout=600)


def pretrain_args(data, out, *extra):
    return [str(item) for item in ("pretrain", "--config", TINY, f"data.path={data}", f"output_dir={out}", *FAST,
                                   *extra)]


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    # Four shards (16 wells each), so that two processes each have row groups (E2).
    return generate(tmp_path_factory.mktemp("synth") / "tiny", size="tiny", seed=0, progress=False,
                    rows_per_shard=96)


def save_model(directory: Path, seed: int = 0, **overrides) -> Path:
    """A small channel-agnostic encoder that embeds 64 px views (4 per 256 px synth well)."""
    torch.manual_seed(seed)
    PhenomModel(small_config(image_size=64, patch_size=16, **overrides)).save_pretrained(directory)
    PhenomImageProcessor(crop_size=64).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("model") / "small")


@pytest.fixture(scope="module")
def finished_run(synth_data, tmp_path_factory):
    """A finished 4-step pretraining run (checkpoints at steps 2 and 4, final/)."""
    out = tmp_path_factory.mktemp("pretrain") / "run"
    result = run_phenom(pretrain_args(synth_data, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def copy_run(finished_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


def embed_args(model, data, out, *extra):
    return [str(item) for item in ("embed", "--model", model, "--data", data, "--out", out, "--device", "cpu",
                                    "--batch-size", "4", "--part-wells", "8", "--no-progress", *extra)]


def embed_until_crash(monkeypatch, args, wells: int = 20) -> None:
    """Run `phenom embed` and stop it (an exception, as a crash) after `wells` wells: two 8-well parts written."""
    from phenom_data import WellDataset

    original = WellDataset.__iter__

    def crashes(self):
        for count, sample in enumerate(original(self)):
            if count == wells:
                raise RuntimeError("crashed")
            yield sample

    monkeypatch.setattr(WellDataset, "__iter__", crashes)
    with pytest.raises(RuntimeError, match="crashed"):
        phenom(args)
    monkeypatch.setattr(WellDataset, "__iter__", original)


def well_counts(path: Path) -> tuple[int, int]:
    table = read_embeddings(path)
    return table.num_wells, len(set(table.well_ids))


# ----------------------------------------------------------------------------------------------------------- D1
def test_d1_card_writes_results_copies_only_inside_out_whatever_the_correction_says(tmp_path, model_dir):
    results = tmp_path / "results"
    results.mkdir()
    document = {"model": "m", "dataset": "rxrx3-core", "block": 3, "correction": "x/../../../somewhere/name",
                "metrics": {"recall_CORUM_0.05_0.95": 0.5}}
    (results / "results.json").write_text(json.dumps(document))
    out = tmp_path / "deep" / "a" / "b" / "card"
    assert phenom(["card", "--results", str(results), "--model", str(model_dir), "--out", str(out)]) == 0
    written = {path for path in tmp_path.rglob("*") if path.is_file()}
    outside = [path for path in written if not path.is_relative_to(out) and not path.is_relative_to(results)
               and not path.is_relative_to(model_dir)]
    assert outside == []
    copies = list((out / "phenom_results").rglob("*.json"))
    assert [path.name for path in copies] == ["block3_x_.._.._.._somewhere_name.json"]


# ----------------------------------------------------------------------------------------------------------- D2
def test_d2_a_second_embed_into_the_same_out_is_refused_at_once_naming_the_first(synth_data, model_dir, tmp_path,
                                                                                capsys, caplog):
    from phenom_data.locks import lock_path

    out = tmp_path / "e.parquet"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom phenom_data.locks import OutputLock\n"
                               "OutputLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(600)",
                               str(out)], cwd=REPO_ROOT, env=env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert phenom(embed_args(model_dir, synth_data, out)) == 2
        error = capsys.readouterr().err
        assert f"--out {out} is in use by another run (pid {holder.pid} on host" in error
        assert not out.exists() and not (tmp_path / "e.parquet.parts").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # the first run dies without releasing its lock
        holder.wait()
    assert lock_path(out).is_file()
    assert phenom(embed_args(model_dir, synth_data, out)) == 0
    assert f"taking over the lock on --out {out}: the run that held it has ended" in caplog.text
    assert well_counts(out) == (WELLS, WELLS) and not lock_path(out).exists()


def test_d2_parts_left_by_racing_runs_are_refused_and_overwrite_starts_again(synth_data, model_dir, tmp_path,
                                                                            monkeypatch, capsys):
    out = tmp_path / "e.parquet"
    embed_until_crash(monkeypatch, embed_args(model_dir, synth_data, out))
    parts = tmp_path / "e.parquet.parts"
    # What two runs racing in one folder left: a part twice (the second run's copy) and no settings.json (the first
    # run's finish removed the folder while the second was writing into it).
    first = sorted(parts.glob("part-*.parquet"))[0]
    shutil.copyfile(first, parts / first.name.replace("part-r0000-", "part-r0000-deadbeef"))
    (parts / "settings.json").unlink()
    assert phenom(embed_args(model_dir, synth_data, out)) == 2
    assert "parts of an embedding run with other settings (no settings.json)" in capsys.readouterr().err
    assert phenom(embed_args(model_dir, synth_data, out, "--overwrite")) == 0
    assert well_counts(out) == (WELLS, WELLS)


# ----------------------------------------------------------------------------------------------------------- D3
def test_d3_grad_clip_minus_one_is_refused_not_taken_as_off(synth_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert phenom(pretrain_args(synth_data, out, "optim.grad_clip=-1")) == 2
    assert last_line(capsys.readouterr().err) == ("phenom pretrain: error: optim.grad_clip must be a number > 0, got "
                                                  "-1.0 (optim.grad_clip=null turns clipping off)")
    assert not out.exists()


# ----------------------------------------------------------------------------------------------------------- D4
class Payload:
    """A pickle that creates a file when it is loaded with `weights_only=False` (what accelerate does for custom
    state)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("planted", ["custom_checkpoint_0.pkl", "random_states_0.pkl"])
def test_d4_resume_refuses_a_checkpoint_holding_a_pickle_that_runs_code(synth_data, finished_run, tmp_path, planted):
    # accelerate loads registered custom state with weights_only=False (the code runs) and skips RNG states it
    # cannot load without a word (the resume is then silently not exact).
    run = copy_run(finished_run, tmp_path)
    marker = tmp_path / "pwned"
    torch.save(Payload(marker), run / "checkpoints" / "step_4" / planted)
    result = run_phenom(pretrain_args(synth_data, run, "--resume", "latest"))
    assert not marker.exists()
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"checkpoint file {run / 'checkpoints' / 'step_4' / planted} is not plain tensors and numbers" in \
        result.stderr
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------------------------------------- D5
def test_d5_a_new_run_into_a_finished_runs_folder_is_refused_and_cannot_resume_it(synth_data, finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    log = (run / "log.jsonl").read_text()
    checkpoints = sorted(path.name for path in (run / "checkpoints").iterdir())
    result = run_phenom(pretrain_args(synth_data, run, "seed=1"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"output_dir {run} is not empty (it holds a run): resume that run with --resume latest, replace it with " \
           "--overwrite" in result.stderr
    result = run_phenom(pretrain_args(synth_data, run, "seed=1", "--resume", "latest"))
    assert result.returncode == 2
    assert "was written by another run, so it is not resumed: seed: was 0, now 1" in result.stderr
    assert (run / "log.jsonl").read_text() == log  # nothing of the old run was touched
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == checkpoints
    result = run_phenom(pretrain_args(synth_data, run, "seed=1", "--overwrite"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((run / "run.json").read_text())["seed"] == 1


# ----------------------------------------------------------------------------------------------------------- D6
def test_d6_new_weights_behind_the_same_model_path_do_not_mix_with_old_parts(synth_data, tmp_path, monkeypatch,
                                                                             capsys):
    model, out = save_model(tmp_path / "model", seed=0), tmp_path / "e.parquet"
    embed_until_crash(monkeypatch, embed_args(model, synth_data, out))
    save_model(model, seed=1)  # retrained in place
    assert phenom(embed_args(model, synth_data, out)) == 2
    error = capsys.readouterr().err
    assert "holds 2 parts of an embedding run with other settings (model.sha256: was" in error
    assert phenom(embed_args(model, synth_data, out, "--overwrite")) == 0
    fresh = tmp_path / "fresh.parquet"
    assert phenom(embed_args(model, synth_data, fresh)) == 0
    np.testing.assert_array_equal(read_embeddings(out).features, read_embeddings(fresh).features)


# ----------------------------------------------------------------------------------------------------------- D7
def test_d7_nan_weights_and_a_missing_block_are_refused(synth_data, tmp_path, capsys):
    full = save_model(tmp_path / "full", num_hidden_layers=4)
    weights = load_file(full / "model.safetensors")
    nan_model = Path(shutil.copytree(full, tmp_path / "nan"))
    poisoned = dict(weights)
    poisoned["encoder.layers.1.in_proj.weight"] = torch.full_like(weights["encoder.layers.1.in_proj.weight"], np.nan)
    save_file(poisoned, nan_model / "model.safetensors", metadata={"format": "pt"})
    assert phenom(embed_args(nan_model, synth_data, tmp_path / "nan.parquet")) == 2
    assert "holds NaN or infinite weights in 1 tensors: encoder.layers.1.in_proj.weight" in capsys.readouterr().err
    assert not (tmp_path / "nan.parquet").exists()

    no_block4 = Path(shutil.copytree(full, tmp_path / "no_block4"))
    save_file({key: value for key, value in weights.items() if not key.startswith("encoder.layers.3.")},
              no_block4 / "model.safetensors", metadata={"format": "pt"})
    assert phenom(embed_args(no_block4, synth_data, tmp_path / "b.parquet")) == 2
    error = capsys.readouterr().err
    assert "does not fit the model it describes" in error and "missing (they would be randomly initialized)" in error
    assert "encoder.layers.3." in error


# ----------------------------------------------------------------------------------------------------------- D8
def test_d8_a_failed_embed_does_not_block_the_corrected_command_and_a_trailing_slash_is_the_same_data(
        synth_data, model_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "e.parquet"
    typo = tmp_path / "no-such-data"
    try:
        typo_status = phenom(embed_args(model_dir, typo, out))
    except FileNotFoundError as error:  # (before the fix: a traceback, and the typo's settings stayed behind)
        typo_status = error
    typo_error = capsys.readouterr().err
    embed_until_crash(monkeypatch, embed_args(model_dir, synth_data, out))  # the corrected command, interrupted
    assert phenom(embed_args(model_dir, f"{synth_data}/", out)) == 0  # resumes: same data, spelled otherwise
    assert "resuming: 16 wells already embedded" in capsys.readouterr().err
    assert well_counts(out) == (WELLS, WELLS)
    assert typo_status == 2 and f"{typo} is neither a local directory nor a Hub dataset repo id" in typo_error


# ---------------------------------------------------------------------------------------------------------- D10
def test_d10_an_image_path_in_a_dataset_row_never_reads_a_file_outside_the_dataset(tmp_path, caplog):
    from phenom_data.rxrx3_core import METADATA_FILENAME, RxRx3CoreWells, rxrx3_core_key

    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-TOKEN-0123456789")
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64), 7, np.uint8)).save(buffer, format="PNG")
    (data / "images" / "ok.png").write_bytes(buffer.getvalue())
    rows = []  # well A01: an absolute path; A02: a relative path climbing out; A03: a file inside the dataset
    for address, path in (("A01", str(secret)), ("A02", "../secret.txt"), ("A03", "images/ok.png")):
        rows += [(rxrx3_core_key("gene-001", 1, address, channel), {"bytes": None, "path": path})
                 for channel in range(1, 7)]
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"__key__": pa.array([key for key, _ in rows]),
                      "jp2": pa.array([value for _, value in rows], type=image_type)})
    (data / "data").mkdir()
    pq.write_table(table, data / "data" / "train-00000-of-00001.parquet")
    (data / METADATA_FILENAME).write_text("well_id,experiment_name\n" + "".join(
        f"gene-001_1_{address},gene-001\n" for address in ("A01", "A02", "A03")))
    wells = RxRx3CoreWells(data)
    yielded = [well.well_id for well in wells]
    assert "SECRET" not in caplog.text  # (before the fix: "not a readable image (23 bytes starting b'SECRET-...")
    assert "is absolute" in caplog.text and "leads outside" in caplog.text
    assert yielded == ["gene-001_1_A03"] and wells.stats.skipped["corrupt_image"] == 2


# ---------------------------------------------------------------------------------------------------------- D11
def test_d11_user_errors_are_one_line_and_exit_2_and_debug_shows_the_traceback(synth_data, model_dir, tmp_path,
                                                                              capsys, monkeypatch):
    # pretrain and embed printed 17-38 line tracebacks for these; the checks come before any work.
    monkeypatch.delenv("PHENOM_DEBUG", raising=False)
    assert phenom(pretrain_args(synth_data, tmp_path / "run", "max_steps=abc")) == 2
    assert capsys.readouterr().err.strip() == "phenom pretrain: error: config key max_steps must be int, got 'abc'"
    assert phenom(embed_args(model_dir, synth_data, tmp_path / "e.parquet", "--batch-size", "0")) == 2
    assert capsys.readouterr().err.strip() == ("phenom embed: error: --batch-size and --part-wells must be >= 1 and "
                                               "--num-workers >= 0; got 0, 8 and 0")
    with pytest.raises(ValueError, match="config key max_steps must be int, got 'abc'"):
        phenom(["--debug", *pretrain_args(synth_data, tmp_path / "run", "max_steps=abc")])
    assert "PHENOM_DEBUG" not in os.environ  # set for the command (and what it starts) only
    assert phenom(embed_args(model_dir, synth_data, tmp_path / "e.parquet", "--batch-size", "0")) == 2
    # The real command line: one line on stderr, exit code 2, nothing else.
    result = run_phenom(embed_args(model_dir, synth_data, tmp_path / "e.parquet", "--num-workers", "-1"))
    assert (result.returncode, result.stderr) == (2, "phenom embed: error: --batch-size and --part-wells must be >= 1 "
                                                     "and --num-workers >= 0; got 4, 8 and -1\n")
    monkeypatch.setenv("PHENOM_DEBUG", "1")
    with pytest.raises(ValueError, match="--batch-size and --part-wells must be >= 1"):
        phenom(embed_args(model_dir, synth_data, tmp_path / "e.parquet", "--batch-size", "0"))


# ---------------------------------------------------------------------------------------------------------- D12
def test_d12_an_unknown_model_override_is_refused_with_the_valid_names(synth_data, tmp_path, capsys):
    assert phenom(pretrain_args(synth_data, tmp_path / "run", "model.overrides.bogus=1")) == 2
    assert "unknown model.overrides key(s) bogus; valid keys (PhenomConfig fields): image_size, patch_size" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------------------- D13
def test_d13_synth_overwrite_never_replaces_a_users_files(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    (folder / "metadata_rxrx3_core.csv").write_text("my,table\n1,2\n")
    assert phenom(["synth", "--out", str(folder), "--size", "tiny", "--overwrite", "--no-progress"]) == 2
    assert "is not empty and holds no synthetic dataset (ground_truth.json missing); nothing was changed" in \
        capsys.readouterr().err
    assert (folder / "README.md").read_text() == "my notes"
    assert (folder / "metadata_rxrx3_core.csv").read_text() == "my,table\n1,2\n"
    assert sorted(path.name for path in folder.iterdir()) == ["README.md", "metadata_rxrx3_core.csv"]


# ---------------------------------------------------------------------------------------------------------- D14
def test_d14_missing_sources_and_impossible_outputs_are_named_before_any_work(synth_data, model_dir, tmp_path,
                                                                              capsys):
    missing = tmp_path / "no-such-model"
    assert phenom(["convert", str(missing), str(tmp_path / "out")]) == 2
    assert f"source {missing} does not exist (no such local folder" in capsys.readouterr().err
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    shutil.copyfile(model_dir / "model.safetensors", no_config / "model.safetensors")
    assert phenom(["convert", str(no_config), str(tmp_path / "out")]) == 2
    assert f"source folder {no_config} has no config.json" in capsys.readouterr().err
    assert phenom(embed_args(no_config, synth_data, tmp_path / "e.parquet")) == 2
    assert f"model folder {no_config} has no config.json" in capsys.readouterr().err

    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"well_id": pa.array([], pa.string()), "feature_0": pa.array([], pa.float32())}), empty)
    assert phenom(["eval", "--embeddings", str(empty), "--metadata", str(synth_data / "metadata_rxrx3_core.csv"),
                   "--out", str(tmp_path / "eval"), "--no-plots"]) == 2
    assert f"{empty} holds no wells (0 rows)" in capsys.readouterr().err

    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert phenom(embed_args(model_dir, synth_data, folder, "--overwrite")) == 2
    assert f"--out must name a file (e.g. embeddings.parquet); {folder} is a folder" in capsys.readouterr().err
    assert not (tmp_path / "a-folder.parts").exists()


# ----------------------------------------------------------------------------------------------------------- E1
def test_e1_extending_a_finished_run_is_refused_before_any_work_saying_how_to_continue(synth_data, finished_run,
                                                                                      tmp_path):
    run = copy_run(finished_run, tmp_path)
    result = run_phenom(pretrain_args(synth_data, run, "max_steps=6", "--resume", "latest"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "belongs to a run of max_steps=4; this run asks for max_steps=6" in result.stderr
    assert f"model.init_from={run / 'final'} output_dir=<new folder>" in result.stderr
    assert "Traceback" not in result.stderr
    # The way the message gives works: a new run from the finished run's weights.
    result = run_phenom(pretrain_args(synth_data, tmp_path / "next", f"model.init_from={run / 'final'}"))
    assert result.returncode == 0, result.stderr[-2000:]


# ----------------------------------------------------------------------------------------------------------- E2
def test_e2_a_deepspeed_config_that_accelerate_did_not_start_is_refused(synth_data, tmp_path):
    out = tmp_path / "zero3"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO_ROOT / "train" / "accelerate" / "deepspeed_zero3.yaml"), "--num_processes", "2",
               "--mixed_precision", "no", "-m", "phenom", *pretrain_args(synth_data, out),
               "global_batch_size=8"]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert ("the accelerate config asks for DeepSpeed, but accelerate started DistributedType.MULTI_CPU because "
            "ACCELERATE_USE_CPU=true is set") in result.stderr
    assert not out.exists()
    yaml_comment = (REPO_ROOT / "train" / "accelerate" / "deepspeed_zero3.yaml").read_text()
    assert "WITHOUT ACCELERATE_USE_CPU" in yaml_comment
