"""What `train/pretrain.py` needs beyond one process: DeepSpeed settings for streamed (unprepared) data, DeepSpeed's
own optimizer/scheduler objects only when its JSON defines them, a collective non-finite check, and a check that
data-parallel replicas hold identical weights at the end.
"""

from __future__ import annotations

import os

import torch
from accelerate.utils import DistributedType

from .config import TrainConfig
from .optim import Lion, one_cycle_schedule, parameter_groups


def deepspeed_config(accelerator) -> dict | None:
    plugin = accelerator.state.deepspeed_plugin
    return plugin.deepspeed_config if plugin is not None else None


def require_deepspeed_when_configured(accelerator) -> None:
    """Refuse to train when the launch asked for DeepSpeed (`ACCELERATE_USE_DEEPSPEED`, set by `accelerate launch`
    with a DeepSpeed config) but accelerate started something else: with `ACCELERATE_USE_CPU=true` it silently runs
    plain multi-process CPU training, with every parameter and optimizer state replicated instead of sharded."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() != "true":
        return
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return
    cause = (" because ACCELERATE_USE_CPU=true is set (DeepSpeed runs on CPUs without it: unset it)"
             if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") else "")
    raise ValueError(f"the accelerate config asks for DeepSpeed, but accelerate started {accelerator.distributed_type}"
                     f"{cause}; refusing to train without DeepSpeed")


def build_optimizer_and_schedule(accelerator, model, config: TrainConfig, peak_lr: float):
    """Lion + one-cycle schedule, or DeepSpeed's objects when the DeepSpeed JSON defines `optimizer`/`scheduler`.

    Returns `(optimizer, scheduler, scheduler_is_prepared)`.
    """
    ds_config = deepspeed_config(accelerator)
    groups = parameter_groups(model, config.optim.weight_decay)
    if ds_config is not None:
        # The data loaders are per-rank streams that accelerate does not prepare, so it cannot infer these.
        ds_config["train_micro_batch_size_per_gpu"] = config.per_device_batch_size
        ds_config["gradient_clipping"] = float(config.optim.grad_clip or 0.0)
    if ds_config is not None and ("optimizer" in ds_config or "scheduler" in ds_config):
        # accelerate exports these only when deepspeed is installed: a plain install must still train.
        from accelerate.utils import DummyOptim, DummyScheduler
    if ds_config is not None and "optimizer" in ds_config:
        optimizer = DummyOptim(groups, lr=peak_lr, weight_decay=config.optim.weight_decay)
    else:
        optimizer = Lion(groups, lr=peak_lr, betas=tuple(config.optim.betas))
    if ds_config is not None and "scheduler" in ds_config:
        warmup = int(config.optim.warmup_fraction * config.max_steps)
        return optimizer, DummyScheduler(optimizer, total_num_steps=config.max_steps, warmup_num_steps=warmup), True
    schedule = one_cycle_schedule(optimizer, peak_lr, config.max_steps, config.optim.warmup_fraction,
                                  config.optim.initial_lr_divisor, config.optim.final_lr_divisor)
    return optimizer, schedule, False


def all_finite(accelerator, loss: torch.Tensor) -> bool:
    """True when the loss is finite on every process (one collective, so no rank is left waiting in backward)."""
    bad = (~torch.isfinite(loss.detach())).float().reshape(1)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="sum")
    return bad.item() == 0


@torch.no_grad()
def replica_checksums(accelerator, model) -> list[float] | None:
    """Per-process sum of all parameters (float64), gathered; equal values mean identical replicas. `None` under
    DeepSpeed ZeRO-3, whose parameters are sharded, not replicated."""
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return None
    total = torch.zeros(1, dtype=torch.float64, device=accelerator.device)
    for parameter in accelerator.unwrap_model(model).parameters():
        total += parameter.detach().double().sum()
    return accelerator.gather(total).tolist()


__all__ = ["all_finite", "build_optimizer_and_schedule", "deepspeed_config", "replica_checksums",
           "require_deepspeed_when_configured"]
