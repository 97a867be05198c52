"""Training pieces that need no data: run config, Lion's update rule, the one-cycle schedule, checkpoint picking."""

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO_ROOT

from modeling_phenom import PhenomConfig
from train.checkpointing import STATE_FILE, checkpoint_dirs, resolve_resume
from train.config import effective_peak_lr, gradient_accumulation_steps, load_config, save_config
from train.optim import Lion, one_cycle_schedule, parameter_groups

CONFIGS = REPO_ROOT / "train" / "configs"


def test_dotted_overrides_are_typed_and_applied():
    config = load_config(CONFIGS / "tiny.yaml", ["data.path=/tmp/x", "max_steps=40", "seed=3", "optim.peak_lr=2e-3",
                                                 "model.overrides.mask_ratio=0.5"])
    assert config.data.path == "/tmp/x" and config.max_steps == 40 and config.seed == 3
    assert config.optim.peak_lr == 2e-3 and config.model.overrides["mask_ratio"] == 0.5


def test_unknown_config_key_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        load_config(CONFIGS / "tiny.yaml", ["data.path=/tmp/x", "optim.learning_rate=1"])
    message = str(error.value)
    assert "optim.learning_rate" in message and "optim.peak_lr" in message and "optim.weight_decay" in message


def test_config_errors_name_the_key_its_type_and_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"config key optim.reference_global_batch_size must be int or null, got 'x'"):
        load_config(CONFIGS / "tiny.yaml", ["data.path=/tmp/x", "optim.reference_global_batch_size=x"])
    with pytest.raises(ValueError, match="config key optim.betas must be a list, got 0.9"):
        load_config(CONFIGS / "tiny.yaml", ["data.path=/tmp/x", "optim.betas=0.9"])
    with pytest.raises(ValueError, match=r"optim.betas must be two numbers like \[0.9, 0.95\], got \[0.9, 0.95, "):
        load_config(CONFIGS / "tiny.yaml", ["data.path=/tmp/x", "optim.betas=[0.9,0.95,0.99]"])
    with pytest.raises(ValueError, match="not of the form key=value"):
        load_config(CONFIGS / "tiny.yaml", ["data.path=/tmp/x", "max_steps"])
    typo = tmp_path / "typo.yaml"
    typo.write_text("data:\n  path: /tmp/x\n  shuffle_buffer: 8\n")
    with pytest.raises(ValueError, match=rf"shuffle_buffer; valid keys: data.path, data.metadata, .* \(in {typo}\)"):
        load_config(typo)
    typo.write_text("- max_steps\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_config(typo)
    config = load_config(None, ["data.path=/tmp/x", "optim.betas=[0.8,0.9]", "data.channels=[DNA,RNA]"])
    assert config.optim.betas == [0.8, 0.9] and config.data.channels == ["DNA", "RNA"]
    assert config.to_dict()["optim"]["betas"] == [0.8, 0.9]


def test_a_saved_config_yaml_reads_back_as_the_same_config(tmp_path):
    config = load_config(CONFIGS / "ca-s16.yaml", ["data.path=/tmp/x", "optim.grad_clip=null", "data.channels=[a,b]"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_the_demo_run_config_trains_the_demo_preset():
    # The demo's model is a named preset with the numbers tiny.yaml overrode before (issue 25): same architecture.
    config = load_config(CONFIGS / "tiny.yaml", ["data.path=/tmp/x"])
    assert config.model.preset == "demo" and config.model.overrides == {}
    tiny = PhenomConfig.from_preset("tiny", image_size=64, patch_size=8, attention_init="xavier_uniform",
                                    decoder_qk_norm=True, decoder_tied_qk_init=True)
    assert PhenomConfig.from_preset("demo").to_dict() == tiny.to_dict()


def test_missing_data_path_is_named():
    with pytest.raises(ValueError, match="data.path is not set"):
        load_config(CONFIGS / "tiny.yaml")


def test_global_batch_must_divide_into_devices_and_accumulation():
    overrides = ["data.path=/tmp/x", "global_batch_size=24", "per_device_batch_size=8"]
    config = load_config(CONFIGS / "tiny.yaml", overrides)
    assert gradient_accumulation_steps(config, 1) == 3
    with pytest.raises(ValueError, match="not divisible by per_device_batch_size 8 x 2 process"):
        gradient_accumulation_steps(config, 2)


@pytest.mark.parametrize("name, peak_lr, global_batch, drop_path", [
    ("ca-s16", 1e-4, 2048, 0.1), ("l8", 3e-5, 16384, 0.3), ("g8", 3e-5, 8192, 0.6)])
def test_paper_recipes_are_pinned(name, peak_lr, global_batch, drop_path):
    config = load_config(CONFIGS / f"{name}.yaml", ["data.path=/tmp/x"])
    assert config.optim.peak_lr == peak_lr and config.global_batch_size == global_batch
    assert config.model.overrides["drop_path_rate"] == drop_path
    assert config.model.overrides["mask_ratio"] == 0.75 and config.model.overrides["fourier_loss_weight"] == 0.01
    assert tuple(config.optim.betas) == (0.9, 0.95) and config.optim.weight_decay == 0.05
    assert config.global_batch_size % config.per_device_batch_size == 0


def test_linear_lr_scaling_is_relative_to_the_reference_batch():
    config = load_config(CONFIGS / "ca-s16.yaml", ["data.path=/tmp/x", "global_batch_size=512",
                                                   "optim.lr_scaling=linear"])
    assert effective_peak_lr(config) == pytest.approx(1e-4 * 512 / 2048)
    config = load_config(CONFIGS / "ca-s16.yaml", ["data.path=/tmp/x", "global_batch_size=512"])
    assert effective_peak_lr(config) == 1e-4


def test_lion_step_follows_the_update_rule():
    torch.manual_seed(0)
    parameter = torch.nn.Parameter(torch.randn(5, 3))
    start = parameter.detach().clone()
    optimizer = Lion([parameter], lr=0.1, betas=(0.9, 0.95), weight_decay=0.05)
    momentum = torch.zeros_like(start)
    expected = start.clone()
    for _ in range(3):
        grad = torch.randn(5, 3)
        parameter.grad = grad.clone()
        optimizer.step()
        # By hand: p <- p (1 - lr wd) - lr sign(b1 m + (1 - b1) g); m <- b2 m + (1 - b2) g
        expected = expected * (1 - 0.1 * 0.05) - 0.1 * torch.sign(0.9 * momentum + 0.1 * grad)
        momentum = 0.95 * momentum + 0.05 * grad
        torch.testing.assert_close(parameter.detach(), expected)
    torch.testing.assert_close(optimizer.state[parameter]["exp_avg"], momentum)


def test_weight_decay_skips_biases_norms_and_tokens():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    model.register_parameter("cls_token", torch.nn.Parameter(torch.zeros(1, 1, 4)))
    decay, no_decay = parameter_groups(model, 0.05)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 4])]
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0


def test_schedule_warms_up_from_peak_over_25_then_decays_to_peak_over_1e4():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = one_cycle_schedule(optimizer, peak_lr=1e-3, total_steps=1000)
    rates = []
    for _ in range(1000):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(1e-3 / 25)
    assert max(rates) == pytest.approx(1e-3) and int(torch.tensor(rates).argmax()) == pytest.approx(100, abs=1)
    assert rates[-1] == pytest.approx(1e-3 / 1e4, rel=1e-2)
    # cosine shape: halfway through the decay the rate is at the middle of its range
    middle = 100 + (999 - 100) // 2
    assert rates[middle] == pytest.approx((1e-3 + 1e-7) / 2, rel=0.02)
    assert all(a >= b for a, b in zip(rates[100:-1], rates[101:], strict=True))
    assert not math.isnan(sum(rates))


def test_latest_checkpoint_ignores_a_half_written_one(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20):
        (root / f"step_{step}").mkdir(parents=True)
        (root / f"step_{step}" / STATE_FILE).write_text(json.dumps({"step": step}))
    (root / ".tmp-step_30").mkdir()  # a kill during the write of step 30 leaves this
    (root / "step_40").mkdir()  # a folder without trainer_state.json is never complete
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_10", "step_20"]
    assert resolve_resume(tmp_path, "latest") == root / "step_20"
    assert resolve_resume(tmp_path, None) is None
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        resolve_resume(tmp_path, str(root / "step_40"))


def test_configs_are_valid_yaml_with_documented_launch_commands():
    for path in CONFIGS.glob("*.yaml"):
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
    assert Path(REPO_ROOT / "train" / "pretrain.py").read_text().count("accelerate launch") >= 3


def test_training_needs_no_deepspeed_install(tmp_path):
    # accelerate exports DummyOptim/DummyScheduler only when deepspeed is installed; `pip install phenom` without
    # the deepspeed extra must still import the trainer and build its optimizer (a fresh interpreter that cannot
    # see deepspeed, as accelerate checks for it).
    script = """
import importlib.util
real_find_spec = importlib.util.find_spec
def find_spec(name, package=None):
    return None if name.split(".")[0] == "deepspeed" else real_find_spec(name, package)
importlib.util.find_spec = find_spec
import accelerate.utils
assert not hasattr(accelerate.utils, "DummyOptim"), "deepspeed is still visible"
from accelerate import Accelerator
from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling
from train.config import load_config
from train.distributed import build_optimizer_and_schedule
import train.pretrain
config = load_config("train/configs/tiny.yaml", ["data.path=/tmp/x"])
model = PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny", num_hidden_layers=1))
optimizer, schedule, prepared = build_optimizer_and_schedule(Accelerator(cpu=True), model, config, 1e-3)
print(type(optimizer).__name__, prepared)
"""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("Lion False")
