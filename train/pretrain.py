"""MAE pretraining of Phenom models with accelerate: the paper's recipe (``reference/paper.md`` §1.5-1.6, DESIGN §5).

Launch from a checkout or an installed package (CPU, one GPU, DDP, DeepSpeed ZeRO-3):

    accelerate launch train/pretrain.py --config train/configs/tiny.yaml data.path=DIR output_dir=runs/tiny
    accelerate launch -m phenom pretrain --config train/configs/ca-s16.yaml data.path=recursionpharma/rxrx3-core
    phenom pretrain --config train/configs/tiny.yaml data.path=DIR max_steps=40 seed=0
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 train/pretrain.py --config ...  # CPU DDP
    accelerate launch --config_file train/accelerate/deepspeed_zero3.yaml train/pretrain.py --config .../g8.yaml

`--resume latest|PATH` continues from a checkpoint exactly (model, optimizer, schedule, RNG, data position), only
when the checkpoint belongs to this run (same settings, data and initial weights: `train/run_folder.py`); a new run
needs an empty `output_dir` or `--overwrite`. One run per `output_dir` at a time (a lock beside it).
Outputs in `output_dir`: run.json, config.yaml, log.jsonl, checkpoints/step_<N>/, reconstructions/step_<N>.png,
final/.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # `accelerate launch train/pretrain.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import InitProcessGroupKwargs, set_seed
from tqdm.auto import tqdm
from transformers import AutoConfig

from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling, PhenomImageProcessor
from modeling_phenom.loading import load_pretrained
from phenom_data.atomic import atomic_write_json, replace_directory
from phenom_data.errors import on_main_process
from phenom_data.locks import lock_on_main_process
from train.checkpointing import load_trainer_state, save_checkpoint
from train.config import TrainConfig, effective_peak_lr, gradient_accumulation_steps, save_config
from train.data import (
    build_wells,
    check_channels,
    check_data_source,
    require_usable_wells,
    training_batches,
    training_processor,
)
from train.distributed import (
    all_finite,
    build_optimizer_and_schedule,
    replica_checksums,
    require_deepspeed_when_configured,
)
from train.logging_utils import JsonlLog, save_reconstruction_grid
from train.run_folder import prepare_run_folder, run_fingerprint

logger = get_logger(__name__, log_level="INFO")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the checkpoints written before it are kept."""


@dataclass(frozen=True)
class PretrainResult:
    """What a finished run reports (on every process; `main_process` tells the one that writes the files)."""

    output_dir: Path
    final_dir: Path  # save_pretrained model + preprocessor_config.json
    steps: int  # optimizer steps of the whole run (max_steps)
    last_checkpoint: int | None  # step of the last checkpoint written (None: none)
    processes: int
    seconds: float  # wall time of this call
    main_process: bool


def pretrain(config: TrainConfig, *, resume: str | None = None, overwrite: bool = False) -> PretrainResult:
    """MAE pretraining as `config` says (`load_config` reads and checks one); `resume` = 'latest' or a
    checkpoints/step_<N> folder of this run, `overwrite` replaces an earlier run's outputs in `output_dir`. Bad input
    raises `ValueError`/`OSError` before any compute; a non-finite loss raises `NonFiniteLossError`."""
    # ---------------------------------------------------------------- config
    start = time.perf_counter()
    output_dir = Path(config.output_dir)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    accumulation = gradient_accumulation_steps(config, world_size)
    check_data_source(config.data.path)
    # The model's image size is the crop (one owner): the processor made from it reads the data and is exported.
    if config.model.init_from:
        model_config = AutoConfig.from_pretrained(config.model.init_from, **config.model.overrides)
    else:
        model_config = PhenomConfig.from_preset(config.model.preset, **config.model.overrides)
    processor = training_processor(config.data, model_config, config.model.init_from)
    fingerprint = run_fingerprint(config)  # settings + content of the data and initial weights

    # ---------------------------------------------------------------- accelerator
    mixed_precision = config.mixed_precision
    if mixed_precision == "auto":  # bf16 only on CUDA: on the CPU it runs ~3.6x slower than fp32 (docs/performance.md)
        mixed_precision = "bf16" if torch.cuda.is_available() else "no"
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=accumulation,
        log_with=config.trackers or None,
        project_dir=str(output_dir),
        # gloo on CPUs, nccl on GPUs; without it DeepSpeed on CPU ranks all believe they are rank 0 of 1.
        kwargs_handlers=[InitProcessGroupKwargs(backend="nccl" if torch.cuda.is_available() else "gloo")]
        if world_size > 1 else [],
    )
    if accelerator.num_processes != world_size:
        accumulation = gradient_accumulation_steps(config, accelerator.num_processes)
        accelerator.gradient_accumulation_steps = accumulation
    require_deepspeed_when_configured(accelerator)
    lock = lock_on_main_process(accelerator, output_dir, "output_dir")
    try:
        checkpoint = on_main_process(accelerator,
                                     lambda: prepare_run_folder(output_dir, fingerprint, resume, overwrite))
        last_checkpoint = _train(config, accelerator, accumulation, fingerprint, model_config, processor, checkpoint,
                                 resume)
        return PretrainResult(output_dir=output_dir, final_dir=output_dir / "final", steps=config.max_steps,
                              last_checkpoint=last_checkpoint, processes=accelerator.num_processes,
                              seconds=time.perf_counter() - start, main_process=accelerator.is_main_process)
    finally:
        if lock is not None:
            lock.release()


def _train(config: TrainConfig, accelerator: Accelerator, accumulation: int, fingerprint: dict, model_config,
           processor: PhenomImageProcessor, checkpoint: Path | None, resume: str | None) -> int | None:
    """The training loop; returns the step of the last checkpoint written."""
    output_dir = Path(config.output_dir)
    set_seed(config.seed, device_specific=True)
    peak_lr = effective_peak_lr(config)
    if accelerator.is_main_process:
        save_config(config, output_dir / "config.yaml")
    logger.info(
        f"processes {accelerator.num_processes}, per-device batch {config.per_device_batch_size}, accumulation "
        f"{accumulation}, global batch {config.global_batch_size}; base peak LR {config.optim.peak_lr:g}, "
        f"effective peak LR {peak_lr:g} (lr_scaling={config.optim.lr_scaling}), "
        f"precision {accelerator.mixed_precision}"
    )

    # ---------------------------------------------------------------- data
    wells = build_wells(config.data, processor, accelerator.process_index, accelerator.num_processes)
    check_channels(wells, model_config)
    require_usable_wells(wells, config.data.path, accelerator)

    # ---------------------------------------------------------------- model
    if config.model.init_from:  # refused if it lacks tensors or holds NaN, unless model.allow_partial_init
        model = load_pretrained(PhenomForMaskedImageModeling, config.model.init_from,
                                allow_partial=config.model.allow_partial_init, **config.model.overrides)
    else:
        model = PhenomForMaskedImageModeling(model_config)
    if config.gradient_checkpointing:
        model.activation_checkpointing_enable()
    trainable = model.num_parameters(only_trainable=True)
    logger.info(f"model {config.model.init_from or config.model.preset}: {trainable:,} trainable parameters")

    # ---------------------------------------------------------------- optimizer and schedule
    optimizer, scheduler, scheduler_prepared = build_optimizer_and_schedule(accelerator, model, config, peak_lr)

    # ---------------------------------------------------------------- prepare
    if scheduler_prepared:  # DeepSpeed's own scheduler (its JSON defines one)
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    else:
        # Our schedule steps once per optimizer step, so accelerate does not wrap it; its state is JSON in the
        # checkpoint's trainer_state.json (never registered: accelerate unpickles registered state unchecked).
        model, optimizer = accelerator.prepare(model, optimizer)
    if config.trackers:
        accelerator.init_trackers("pretrain", config={k: str(v) for k, v in config.to_dict().items()})

    # ---------------------------------------------------------------- resume
    start_step, consumed_batches = 0, 0
    if checkpoint is not None:  # its files were checked for pickled code before any work (prepare_run_folder)
        accelerator.load_state(str(checkpoint))
        state = load_trainer_state(checkpoint)
        start_step, consumed_batches = state["step"], state["consumed_batches"]
        if not scheduler_prepared:
            scheduler.load_state_dict(state["scheduler"])
        logger.info(f"resumed from {checkpoint} at step {start_step}")
    elif resume == "latest":
        logger.info(f"--resume latest: no checkpoint in {output_dir / 'checkpoints'}, starting from step 0")
    log = JsonlLog(output_dir / "log.jsonl", truncate_after_step=start_step if checkpoint else None) \
        if accelerator.is_main_process else None
    batches = training_batches(wells, processor, config.data, config.per_device_batch_size, config.seed,
                               consumed_batches)
    well_log = None
    if config.data.record_wells:  # which wells this process trained on, step by step
        well_log = (output_dir / f"wells-rank{accelerator.process_index}.tsv").open("a" if checkpoint else "w")

    # ---------------------------------------------------------------- loop
    model.train()
    progress = tqdm(range(start_step, config.max_steps), initial=start_step, total=config.max_steps,
                    disable=not (accelerator.is_local_main_process and config.progress), desc="pretrain")
    last_saved = start_step if checkpoint is not None else None
    interval_start = time.perf_counter()
    for step in range(start_step + 1, config.max_steps + 1):
        terms = torch.zeros(3, device=accelerator.device)  # loss, reconstruction, fourier (sums over micro-batches)
        for _ in range(accumulation):
            batch = next(batches)
            pixel_values = batch["pixel_values"].to(accelerator.device)
            consumed_batches += 1
            if well_log is not None:
                well_log.write("".join(f"{step}\t{well_id}\n" for well_id in batch["well_id"]))
            with accelerator.accumulate(model):
                outputs = model(pixel_values=pixel_values)
                if not all_finite(accelerator, outputs.loss):
                    raise NonFiniteLossError(f"non-finite loss {outputs.loss.item()} at step {step}")
                accelerator.backward(outputs.loss)
                if accelerator.sync_gradients and config.optim.grad_clip:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            fourier = outputs.fourier_loss if outputs.fourier_loss is not None else torch.zeros_like(outputs.loss)
            terms += torch.stack([outputs.loss.detach(), outputs.reconstruction_loss.detach(),
                                  fourier.detach()]).float()
        step_lr = optimizer.param_groups[0]["lr"]
        if step < config.max_steps and not scheduler_prepared:
            scheduler.step()
        progress.update(1)
        terms = accelerator.reduce(terms, reduction="mean") / accumulation

        if step % config.log_every == 0 or step == config.max_steps:
            elapsed = time.perf_counter() - interval_start
            interval_steps = config.log_every if step % config.log_every == 0 else step % config.log_every
            record = {
                "step": step,
                "loss": terms[0].item(),
                "reconstruction_loss": terms[1].item(),
                "fourier_loss": terms[2].item(),
                "lr": step_lr,
                "grad_norm": float(grad_norm) if config.optim.grad_clip else None,
                "samples_per_second": interval_steps * config.global_batch_size / max(elapsed, 1e-9),
            }
            accelerator.log({k: v for k, v in record.items() if v is not None and k != "step"}, step=step)
            if log is not None:
                log.write(record)
            progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
            interval_start = time.perf_counter()

        if accelerator.is_main_process and (step % config.reconstruction_every == 0 or step == config.max_steps):
            write_reconstruction(accelerator.unwrap_model(model), outputs, pixel_values,
                                 output_dir / "reconstructions" / f"step_{step}.png", step)

        if step % config.checkpoint_every == 0 or step == config.max_steps:
            trainer_state = {"consumed_batches": consumed_batches, "seed": config.seed, "run": fingerprint}
            if not scheduler_prepared:
                trainer_state["scheduler"] = scheduler.state_dict()
            save_checkpoint(accelerator, output_dir, step, trainer_state, config.keep_checkpoints)
            last_saved = step
    progress.close()
    if well_log is not None:
        well_log.close()

    # ---------------------------------------------------------------- export
    checksums = replica_checksums(accelerator, model)
    if checksums is not None and len(set(checksums)) > 1:
        logger.warning(f"data-parallel replicas differ at the end of training: parameter sums {checksums}")
    export_final(accelerator, model, output_dir / "final", processor)
    if accelerator.is_main_process:
        atomic_write_json(output_dir / "run_summary.json", {
            "steps": config.max_steps, "processes": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type), "gradient_accumulation": accumulation,
            "replica_parameter_sums": checksums, "last_checkpoint": last_saved,
        })
    accelerator.end_training()
    return last_saved


@torch.no_grad()
def write_reconstruction(model, outputs, pixel_values, path: Path, step: int) -> None:
    """Input / masked input / reconstruction of the first sample of the last micro-batch."""
    image_size = tuple(pixel_values.shape[-2:])
    reconstruction = outputs.reconstruction[:1].float()
    images = model.reconstruction_to_images(reconstruction, image_size)
    # The mask has one value per decoder token: spread it over the token's pixels to draw it.
    mask_tokens = outputs.mask[:1, :, None].float().expand_as(reconstruction)
    mask = model.reconstruction_to_images(mask_tokens, image_size)
    standardized = model.phenom.standardize(pixel_values[:1])
    save_reconstruction_grid(path, standardized[0], mask[0], images[0], title=f"step {step}")


def export_final(accelerator, model, final_dir: Path, processor: PhenomImageProcessor) -> None:
    """`save_pretrained` of the gathered weights and the run's image processor into final/, written under a
    temporary name then renamed."""
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        temporary = final_dir.with_name(final_dir.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        accelerator.unwrap_model(model).save_pretrained(temporary, state_dict=state_dict)
        processor.save_pretrained(temporary)
        replace_directory(temporary, final_dir)
    accelerator.wait_for_everyone()


__all__ = ["NonFiniteLossError", "PretrainResult", "pretrain"]

if __name__ == "__main__":  # the one command-line hand-over outside phenom/ (docs/design.md, Run config)
    from phenom.commands.pretrain import main

    sys.exit(main(prog=Path(sys.argv[0]).name))  # errors and usage say `pretrain.py`, as before
