"""One MAE training step: Phenom against transformers ViTMAE of the same encoder and decoder geometry.

A step is `zero_grad`, forward with random masking (ratio 0.75), `loss.backward()` and a Lion step (`train.optim.Lion`,
betas (0.9, 0.95), weight decay 0.05 on matrices: the recipe of `train/pretrain.py`) on the same uint8 batch (ViTMAE
takes it self-standardized, as Phenom standardizes it inside its forward). Both models run with and without
activation (gradient) checkpointing, in float32 and with the forward and loss under bf16 autocast (`--precisions`;
float32 weights, gradients and optimizer, as accelerate's `mixed_precision="bf16"`).

- Phenom: `PhenomForMaskedImageModeling` of the `l8` preset (width 1024, 16 heads, MLP 4096, patch 8, 6-channel patch
  embedding, parallel blocks with qk-norm and LayerScale, standard MAE decoder 512 wide, 16 heads, MLP 2048, MSE +
  0.01 Fourier loss, stochastic depth 0.3) with the encoder and decoder depths cut (`--encoder-depth`, default 4 of
  24; `--decoder-depth`, default 4 of 8) so that a run fits in minutes on 2 cores.
- ViTMAE: `ViTMAEForPreTraining` with the same width, depth, heads, MLP, patch, channels, decoder and mask ratio
  (sequential blocks, MSE loss, SDPA attention).

Step times are medians over interleaved repeats (each repeat runs every (model, checkpointing, precision) once, in
alternating order); ratio = Phenom steps/s / ViTMAE steps/s at the same checkpointing setting and precision (> 1:
Phenom faster); `bf16_speedup` = a bf16 row's steps/s over the same model's float32 row.
Peak memory on the CPU is the resident-set high-water mark (`VmHWM`) of a fresh process that builds one model
and its optimizer and runs two steps (one process per pair, so no model's memory counts against another); on CUDA it
is `torch.cuda.max_memory_allocated` over one step. Model FLOP/s counts forward + backward as 3 x the analytic
forward FLOPs (recomputation under checkpointing not counted), so it is comparable across settings.

    python -m bench.train_step                                  # batch 4, 3 repeats, fp32 and bf16, memory probes
    python -m bench.train_step --encoder-depth 24 --decoder-depth 8 --batch-size 2 --repeats 2
    python -m bench.train_step --smoke --out /tmp/train_step.json     # tiny geometry, 1 repeat (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from bench.common import (
    RESULTS_DIR,
    interleaved_order,
    machine_record,
    matmul_flops_per_second,
    median,
    profile_ops,
    profile_table,
    timed,
    versions_line,
    vit_encoder_flops,
    wait_for_quiet_machine,
)
from phenom_data.atomic import atomic_write_json

TARGET_RATIO_VITMAE = 1.1
PHENOM = "phenom"
VITMAE = "transformers ViTMAE"
FP32, BF16 = "float32", "bfloat16"
SMOKE_OVERRIDES = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
                       patch_size=16, image_size=64, decoder_hidden_size=32, decoder_num_attention_heads=2,
                       decoder_intermediate_size=64)


def phenom_config(encoder_depth: int, decoder_depth: int, smoke: bool):
    from modeling_phenom import PhenomConfig

    overrides = dict(SMOKE_OVERRIDES) if smoke else {}
    overrides.update(num_hidden_layers=encoder_depth, decoder_num_hidden_layers=decoder_depth)
    return PhenomConfig.from_preset("l8", **overrides)


def build(name: str, config, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == PHENOM:
        from modeling_phenom import PhenomForMaskedImageModeling

        model = PhenomForMaskedImageModeling(config)
        # As train/pretrain.py: the encoder's fc_norm head is not on the MAE path.
        model.phenom.fc_norm.requires_grad_(False)
    else:
        from transformers import ViTMAEConfig, ViTMAEForPreTraining

        peer_config = ViTMAEConfig(
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_encoder_blocks,
            num_attention_heads=config.num_attention_heads,
            intermediate_size=config.intermediate_size,
            hidden_act=config.hidden_act,
            layer_norm_eps=config.layer_norm_eps,
            image_size=config.image_size,
            patch_size=config.patch_size,
            num_channels=config.num_channels,
            decoder_hidden_size=config.decoder_hidden_size,
            decoder_num_hidden_layers=config.decoder_num_hidden_layers,
            decoder_num_attention_heads=config.decoder_num_attention_heads,
            decoder_intermediate_size=config.decoder_intermediate_size,
            mask_ratio=config.mask_ratio,
            norm_pix_loss=False,
            attn_implementation="sdpa",
        )
        model = ViTMAEForPreTraining(peer_config)
    return model.to(device).train()


def set_checkpointing(model: torch.nn.Module, enabled: bool) -> None:
    if enabled:
        model.activation_checkpointing_enable()
    else:
        model.activation_checkpointing_disable()


def make_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    from train.optim import Lion, parameter_groups

    return Lion(parameter_groups(model, weight_decay=0.05), lr=1e-4, betas=(0.9, 0.95))


def make_batch(config, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    side = config.image_size
    pixels = torch.randint(0, 256, (batch_size, config.num_channels, side, side), dtype=torch.uint8,
                           generator=generator)
    # ViTMAE takes the image Phenom standardizes internally (so both losses are on the same scale).
    from modeling_phenom.modeling_phenom import self_standardize

    return {PHENOM: pixels.to(device), VITMAE: self_standardize(pixels, config.pixel_scale).to(device)}


def train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, pixels: torch.Tensor, bf16: bool = False
) -> float:
    """One step; with `bf16` the forward and loss run under bf16 autocast (backward follows the forward's dtypes)."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = model(pixel_values=pixels).loss
    loss.backward()
    optimizer.step()
    return loss.item()


def step_flops(config, batch_size: int) -> dict:
    """Analytic FLOPs of one step: forward (encoder on CLS + kept tokens, decoder on CLS + all tokens, the two
    linear maps between them) x 3 for forward + backward."""
    tokens = (config.image_size // config.patch_size) ** 2
    kept = int(tokens * (1 - config.mask_ratio))
    patch_pixels = config.patch_size**2 * config.num_channels
    encoder = vit_encoder_flops(1 + kept, config.hidden_size, config.intermediate_size, config.num_encoder_blocks,
                                tokens, patch_pixels)
    decoder = vit_encoder_flops(1 + tokens, config.decoder_hidden_size, config.decoder_intermediate_size,
                                config.decoder_num_hidden_layers, 0, 0)
    heads = 2.0 * (1 + kept) * config.hidden_size * config.decoder_hidden_size + 2.0 * tokens * (
        config.decoder_hidden_size * patch_pixels)
    forward = encoder["total"] + decoder["total"] + heads
    return {"forward_per_image": forward, "encoder_forward_per_image": encoder["total"],
            "decoder_forward_per_image": decoder["total"], "step": 3 * forward * batch_size}


def measure_memory_in_child(name: str, checkpointing: bool, precision: str, args: argparse.Namespace) -> dict:
    """Peak RSS of a fresh process that trains one model for two steps (CPU), read from its JSON line."""
    command = [sys.executable, "-m", "bench.train_step", "--memory-child", name,
               "--encoder-depth", str(args.encoder_depth), "--decoder-depth", str(args.decoder_depth),
               "--batch-size", str(args.batch_size), "--precisions", precision]
    if checkpointing:
        command.append("--checkpointing")
    if args.smoke:
        command.append("--smoke")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe {name} (checkpointing={checkpointing}, {precision}) failed:\n"
                           f"{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def status_bytes(field: str) -> int:
    """A `/proc/self/status` memory field (`VmRSS`, `VmHWM`) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} line")


def memory_child(args: argparse.Namespace) -> int:
    """The `--memory-child` process: build, two steps, print one JSON line."""
    device = torch.device("cpu")
    config = phenom_config(args.encoder_depth, args.decoder_depth, args.smoke)
    before_build = status_bytes("VmRSS")
    model = build(args.memory_child, config, device)
    set_checkpointing(model, args.checkpointing)
    optimizer = make_optimizer(model)
    pixels = make_batch(config, args.batch_size, device)[args.memory_child]
    after_build = status_bytes("VmRSS")
    for _ in range(2):
        train_step(model, optimizer, pixels, bf16=args.precisions == [BF16])
    # VmHWM is the high-water mark of this process image's own memory; ru_maxrss would not do: Linux carries the
    # parent's resident size at fork over into the child's ru_maxrss.
    peak = status_bytes("VmHWM")
    print(json.dumps({"peak_rss_bytes": peak, "rss_before_model_bytes": before_build,
                      "rss_after_build_bytes": after_build, "peak_above_model_bytes": peak - after_build}))
    return 0


def cuda_peak_memory(model, optimizer, pixels, device, bf16: bool) -> dict:
    torch.cuda.reset_peak_memory_stats(device)
    allocated = torch.cuda.memory_allocated(device)
    train_step(model, optimizer, pixels, bf16)
    peak = torch.cuda.max_memory_allocated(device)
    return {"peak_allocated_bytes": peak, "allocated_before_step_bytes": allocated}


def label(name: str, checkpointing: bool, precision: str) -> str:
    return f"{name}{' bf16' if precision == BF16 else ''}{' + checkpointing' if checkpointing else ''}"


def run(args: argparse.Namespace, device: torch.device) -> dict:
    config = phenom_config(args.encoder_depth, args.decoder_depth, args.smoke)
    batch = make_batch(config, args.batch_size, device)
    models = {name: build(name, config, device) for name in (PHENOM, VITMAE)}
    optimizers = {name: make_optimizer(model) for name, model in models.items()}
    parameters = {name: sum(p.numel() for p in model.parameters() if p.requires_grad)
                  for name, model in models.items()}
    precisions = list(dict.fromkeys(args.precisions))
    runs = [(name, checkpointing, precision) for precision in precisions for checkpointing in (False, True)
            for name in models]
    seconds = {key: [] for key in runs}
    cpu_seconds = {key: [] for key in runs}
    losses = {key: [] for key in runs}
    peaks, cpu_peaks, bf16_peaks = [], [], []
    for repeat in range(-args.warmup, args.repeats):
        peak, cpu_peak = matmul_flops_per_second(device)
        bf16_peak = matmul_flops_per_second(device, dtype=torch.bfloat16)[0] if BF16 in precisions else None
        for name, checkpointing, precision in interleaved_order(runs, repeat):
            set_checkpointing(models[name], checkpointing)
            elapsed, cpu_elapsed, loss = timed(lambda name=name, precision=precision: train_step(
                models[name], optimizers[name], batch[name], bf16=precision == BF16), device)
            if repeat >= 0:
                seconds[(name, checkpointing, precision)].append(elapsed)
                cpu_seconds[(name, checkpointing, precision)].append(cpu_elapsed)
                losses[(name, checkpointing, precision)].append(loss)
        if repeat >= 0:
            peaks.append(peak)
            cpu_peaks.append(cpu_peak)
            if bf16_peak is not None:
                bf16_peaks.append(bf16_peak)
            print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    flops = step_flops(config, args.batch_size)
    results = {}
    for name, checkpointing, precision in runs:
        samples, cpu_samples = seconds[(name, checkpointing, precision)], cpu_seconds[(name, checkpointing, precision)]
        ours, ours_cpu = seconds[(PHENOM, checkpointing, precision)], cpu_seconds[(PHENOM, checkpointing, precision)]
        rates = [flops["step"] / elapsed for elapsed in samples]
        cpu_rates = [flops["step"] / elapsed for elapsed in cpu_samples]
        row = {
            "model": name,
            "checkpointing": checkpointing,
            "precision": precision,
            "seconds": samples,
            "median_seconds": median(samples),
            "images_per_s": args.batch_size / median(samples),
            "model_flops_per_s": median(rates),
            "fraction_of_matmul_peak": median([rate / peak for rate, peak in zip(rates, peaks, strict=True)]),
            # Phenom at the same checkpointing and precision over this row, paired per repeat (> 1: Phenom faster).
            "phenom_ratio": median([other / mine for mine, other in zip(ours, samples, strict=True)]),
            "cpu_seconds": cpu_samples,
            "median_cpu_seconds": median(cpu_samples),
            "phenom_ratio_cpu_time": median([other / mine for mine, other in zip(ours_cpu, cpu_samples, strict=True)]),
            "fraction_of_matmul_peak_cpu_time": median([rate / peak for rate, peak in zip(cpu_rates, cpu_peaks,
                                                                                          strict=True)]),
            "losses": losses[(name, checkpointing, precision)],
        }
        if bf16_peaks:
            row["fraction_of_bf16_matmul_peak"] = median([rate / peak for rate, peak in zip(rates, bf16_peaks,
                                                                                            strict=True)])
        if precision == BF16 and FP32 in precisions:
            # The same model and checkpointing setting in float32 over this row (> 1: bf16 is faster).
            fp32_samples = seconds[(name, checkpointing, FP32)]
            row["bf16_speedup"] = median([fp32 / mine for mine, fp32 in zip(samples, fp32_samples, strict=True)])
        results[label(name, checkpointing, precision)] = row
    profiles = {}
    if args.profile and device.type == "cpu":
        # One profiled step of each model and precision without checkpointing: where the time goes.
        for name, model in models.items():
            set_checkpointing(model, False)
            for precision in precisions:
                profiled = profile_ops(lambda model=model, name=name, precision=precision: train_step(
                    model, optimizers[name], batch[name], bf16=precision == BF16))
                profiled["category_flops_per_s"] = {
                    "matmul + attention (all model FLOPs)": flops["step"] / (
                        profiled["categories"].get("matmul", 0.0) + profiled["categories"].get("attention", 0.0))}
                profiles[label(name, False, precision)] = profiled
    memory = {}
    if not args.no_memory:
        # The smoke run probes one run only: each probe is a fresh interpreter (seconds of imports).
        for name, checkpointing, precision in runs[:1] if args.smoke else runs:
            key = label(name, checkpointing, precision)
            if device.type == "cuda":
                set_checkpointing(models[name], checkpointing)
                memory[key] = cuda_peak_memory(models[name], optimizers[name], batch[name], device, precision == BF16)
            else:
                memory[key] = measure_memory_in_child(name, checkpointing, precision, args)
    shape = {key: getattr(config, key) for key in (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size", "num_channels",
        "image_size", "block_type", "qk_norm", "layer_scale_init_value", "drop_path_rate", "decoder_type",
        "decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
        "decoder_intermediate_size", "mask_ratio", "fourier_loss_weight")}
    measured = {"geometry": shape, "batch_size": args.batch_size, "precisions": precisions,
                "trainable_parameters": parameters, "flops": flops,
                "matmul_peak_flops_per_s": {"median": median(peaks), "max": max(peaks), "samples": peaks},
                "matmul_peak_flops_per_cpu_s": {"median": median(cpu_peaks), "samples": cpu_peaks},
                "results": results, "peak_memory": memory, "profiles": profiles}
    if bf16_peaks:
        measured["bf16_matmul_peak_flops_per_s"] = {"median": median(bf16_peaks), "max": max(bf16_peaks),
                                                    "samples": bf16_peaks}
    return measured


def table(report: dict) -> str:
    bf16 = "bf16_matmul_peak_flops_per_s" in report
    header = (f"{'implementation':<42}{'s/step':>9}{'images/s':>10}{'GFLOP/s':>9}{'of fp32 peak':>13}"
              + (f"{'of bf16 peak':>13}{'bf16 x':>8}" if bf16 else "")
              + f"{'Phenom x':>10}{'CPU-time: Phenom x':>20}{'peak MiB':>10}")
    lines = [header, "-" * len(header)]
    for name, result in report["results"].items():
        memory = report["peak_memory"].get(name, {})
        peak = memory.get("peak_rss_bytes", memory.get("peak_allocated_bytes"))
        line = (f"{name:<42}{result['median_seconds']:>9.3f}{result['images_per_s']:>10.3f}"
                f"{result['model_flops_per_s'] / 1e9:>9.1f}{result['fraction_of_matmul_peak']:>13.1%}")
        if bf16:
            speedup = result.get("bf16_speedup")
            line += (f"{result['fraction_of_bf16_matmul_peak']:>13.1%}"
                     f"{'' if speedup is None else f'{speedup:.2f}':>8}")
        lines.append(line + f"{result['phenom_ratio']:>10.2f}{result['phenom_ratio_cpu_time']:>20.2f}"
                     f"{'' if peak is None else f'{peak / 2**20:.0f}':>10}")
    flops = report["flops"]
    peaks = f"fp32 {report['matmul_peak_flops_per_s']['median'] / 1e9:.1f}"
    if bf16:
        peaks += f", bf16 {report['bf16_matmul_peak_flops_per_s']['median'] / 1e9:.1f}"
    lines.append(f"batch {report['batch_size']}; {flops['step'] / 1e9:.1f} GFLOP per step (3 x forward); 2048 mm peak "
                 f"(median) {peaks} GFLOP/s; 'Phenom x' = Phenom steps/s over this row's at the same checkpointing "
                 "setting and precision; 'bf16 x' = this bf16 row's steps/s over the same model's float32 row")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_step", description=__doc__.split("\n")[0])
    parser.add_argument("--encoder-depth", type=int, default=4, help="encoder blocks (default 4; l8 has 24)")
    parser.add_argument("--decoder-depth", type=int, default=4, help="decoder blocks (default 4; l8 has 8)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per step (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, medians reported (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--profile", action="store_true", help="after timing, profile one step of each model")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    parser.add_argument("--precisions", nargs="+", choices=[FP32, BF16], default=[FP32, BF16],
                        help="float32, and/or bfloat16 = forward and loss under bf16 autocast (default: both)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--max-load", type=float, default=2.5,
                        help="wait for a 1-minute load average at or below this before measuring (default 2.5)")
    parser.add_argument("--max-wait", type=float, default=600.0, help="longest wait for that, seconds (default 600)")
    parser.add_argument("--smoke", action="store_true", help="tiny geometry, 1 repeat, no wait (CI)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "train_step.json", help="JSON report")
    parser.add_argument("--memory-child", choices=[PHENOM, VITMAE], help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.encoder_depth, args.decoder_depth, args.batch_size = 1, 1, 2
        args.repeats, args.warmup, args.max_wait, args.profile = 1, 1, 0.0, True
    if min(args.encoder_depth, args.decoder_depth, args.batch_size, args.repeats) < 1 or args.warmup < 0:
        parser.error("--encoder-depth, --decoder-depth, --batch-size and --repeats must be positive")
    if args.memory_child:
        return memory_child(args)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch sees no CUDA device")
    quiet = wait_for_quiet_machine(args.max_load, args.max_wait)
    machine = machine_record(device)
    print(versions_line(machine))
    measured = run(args, device)
    report = {
        "benchmark": "train_step",
        "optimizer": "train.optim.Lion (betas 0.9, 0.95; weight decay 0.05 on matrices)",
        "repeats": args.repeats,
        "warmup": args.warmup,
        "smoke": args.smoke,
        "machine": machine,
        "load_average_end": list(os.getloadavg()),
        "wait_for_quiet": quiet,
        **measured,
    }
    report["targets"] = {"ratio_vs_vitmae": TARGET_RATIO_VITMAE, "met": {
        f"{label}: Phenom / ViTMAE >= {TARGET_RATIO_VITMAE}": result["phenom_ratio"] >= TARGET_RATIO_VITMAE
        for label, result in measured["results"].items() if result["model"] == VITMAE}}
    print(table(report))
    for title, profiled in report["profiles"].items():
        print(profile_table(f"{title}, one training step", profiled))
    for target, met in report["targets"]["met"].items():
        print(f"target {target}: {'met' if met else 'MISSED'}")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
