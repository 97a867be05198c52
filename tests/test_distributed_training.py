"""`train/pretrain.py` on two CPU processes: DDP (gloo) and DeepSpeed ZeRO-3 through the launch files in
`train/accelerate/` (docs/scaling.md), with the CPU overrides stack_notes.md documents."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT
from transformers import AutoModelForMaskedImageModeling

import modeling_phenom  # noqa: F401  (registers model_type "phenom" with the Auto classes)
from phenom_data import synth

TINY = REPO_ROOT / "train" / "configs" / "tiny.yaml"
FAST = ["data.crop_size=64", "model.overrides.patch_size=16", "global_batch_size=8", "per_device_batch_size=4",
        "log_every=1", "trackers=[]", "reconstruction_every=1000", "data.shuffle_buffer_size=8",
        "data.record_wells=true"]


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    # 4 shards of 16 wells: the readers split work by parquet row group, so each process gets two.
    return synth.generate(tmp_path_factory.mktemp("synth") / "tiny", size="tiny", seed=0, progress=False,
                          rows_per_shard=96)


def launch(config_file, output_dir, data, *extra, cpu_env=False):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if cpu_env:
        env["ACCELERATE_USE_CPU"] = "true"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
               "--num_processes", "2", "--mixed_precision", "no", "train/pretrain.py", "--config", str(TINY),
               f"data.path={data}", f"output_dir={output_dir}", *FAST, *extra]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def losses(output_dir):
    return {record["step"]: record["loss"] for record in map(json.loads, (output_dir / "log.jsonl").open())}


def wells_seen(output_dir, rank):
    return {line.split("\t")[1].strip() for line in (output_dir / f"wells-rank{rank}.tsv").open()}


def test_ddp_on_two_cpu_processes_keeps_replicas_identical_and_splits_the_wells(synth_data, tmp_path):
    out = tmp_path / "ddp"
    result = launch(REPO_ROOT / "train" / "accelerate" / "ddp.yaml", out, synth_data, "max_steps=4",
                    "checkpoint_every=4", cpu_env=True)
    assert "processes 2" in result.stderr
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["processes"] == 2 and summary["distributed_type"].endswith("MULTI_CPU")
    first, second = summary["replica_parameter_sums"]
    assert first == second  # bitwise-identical replicas after 4 all-reduced steps
    rank0, rank1 = wells_seen(out, 0), wells_seen(out, 1)
    assert rank0 and rank1 and not rank0 & rank1
    assert sorted(losses(out)) == [1, 2, 3, 4]


def test_deepspeed_zero3_trains_checkpoints_resumes_and_exports_the_gathered_weights(synth_data, tmp_path):
    pytest.importorskip("deepspeed", reason="ZeRO-3 needs the deepspeed extra")
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    config_file = REPO_ROOT / "train" / "accelerate" / "deepspeed_zero3.yaml"
    out = tmp_path / "zero3"
    launch(config_file, out, synth_data, "max_steps=4", "checkpoint_every=2", "keep_checkpoints=2")
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["processes"] == 2 and summary["distributed_type"].endswith("DEEPSPEED")
    assert not wells_seen(out, 0) & wells_seen(out, 1)

    # final/ holds exactly the weights DeepSpeed's own tool gathers from the last ZeRO-3 checkpoint.
    gathered = get_fp32_state_dict_from_zero_checkpoint(str(out / "checkpoints" / "step_4"))
    model, info = AutoModelForMaskedImageModeling.from_pretrained(out / "final", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    exported = model.state_dict()
    assert exported.keys() == gathered.keys()
    for name, tensor in gathered.items():
        torch.testing.assert_close(exported[name], tensor, rtol=0, atol=0)

    # Resuming from the step-2 checkpoint (sharded optimizer and weights) replays steps 3 and 4 exactly.
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(out / "checkpoints" / "step_2", resumed / "checkpoints" / "step_2")
    result = launch(config_file, resumed, synth_data, "max_steps=4", "checkpoint_every=2", "--resume", "latest")
    assert "resumed from" in result.stderr
    expected, got = losses(out), losses(resumed)
    assert sorted(got) == [3, 4]
    for step in (3, 4):
        assert got[step] == pytest.approx(expected[step], rel=1e-6)
