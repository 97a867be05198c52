"""The GPU check (run by `bench/gpu_check.sh` on a CUDA machine; minutes): Phenom's speed where it is meant to train.

1. The GPU's bf16 matmul peak: best of a few `torch.mm` of two 8192 x 8192 bf16 matrices (and the datasheet's dense
   bf16 peak for the GPUs in `DATASHEET_BF16_TFLOPS`).
2. ca-s16 (OpenPhenom) encoder inference, `torch.inference_mode`, uint8 6 x 256 x 256 wells: images/s in bf16 autocast
   and in float32 (TF32 off, PyTorch's default), model FLOP/s and MFU.
3. A g8 MAE training step (ViT-G/8: width 1664, 16 heads, MLP 8192, patch 8, standard decoder 512 wide) on a few of
   its blocks (`--g8-encoder-blocks`, default 8 of 48; `--g8-decoder-blocks`, default 2 of 8): forward and loss under
   bf16 autocast with SDPA restricted to the flash kernel, backward, a Lion step; activation checkpointing off and on;
   steps/s, peak memory and MFU (model FLOPs = 3 x the analytic forward, recomputation not counted).

MFU = model FLOP/s over the measured bf16 matmul peak (and over the datasheet peak when the GPU is in the table).
Everything is written to one JSON file. `--dry-run` runs the same code on tiny sizes (any device, CPU included) in
seconds: what the tests run here, where no GPU is lent.

    python -m bench.gpu_check --out bench/results/gpu_check.json            # on a CUDA machine
    python -m bench.gpu_check --device cpu --dry-run --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from bench.common import RESULTS_DIR, machine_record, matmul_flops_per_second, synchronize, versions_line
from phenom_data.atomic import atomic_write_json

# Dense bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s, by a substring of `torch.cuda.get_device_name()`;
# the first match wins (more specific names first).
DATASHEET_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
)


def datasheet_peak(device_name: str) -> float | None:
    """The datasheet's dense bf16 peak of this GPU in FLOP/s, or None when it is not in the table."""
    for name, tflops in DATASHEET_BF16_TFLOPS:
        if name in device_name:
            return tflops * 1e12
    return None


def time_calls(call, device: torch.device, warmup: int, calls: int) -> list[float]:
    """Seconds of each of `calls` calls after `warmup` untimed ones (synchronized on CUDA)."""
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(calls):
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def inference(device: torch.device, dry_run: bool, batch_size: int, peaks: dict) -> dict:
    """ca-s16 encoder images/s in bf16 autocast and float32."""
    from bench.encoder_inference import PHENOM, PRECISIONS, case_flops, geometries, implementations

    geometry = geometries(l8_depth=4)["tiny" if dry_run else "ca-s16"]
    per_image = case_flops(geometry)["flops_per_image"]["total"]
    precisions = [PRECISIONS["bfloat16"], PRECISIONS["float32"]]
    calls = implementations(geometry, batch_size, device, precisions, {}, False, {})
    results = {}
    with torch.inference_mode():
        for precision in precisions:
            name = PHENOM + precision.suffix
            seconds = time_calls(calls[name], device, warmup=2 if dry_run else 5, calls=2 if dry_run else 20)
            best = min(seconds)
            rate = batch_size * per_image / best
            results[precision.name] = {"batch_size": batch_size, "seconds": seconds, "best_seconds": best,
                                       "images_per_s": batch_size / best, "model_flops_per_s": rate,
                                       **{f"mfu_vs_{key}": rate / peak for key, peak in peaks.items() if peak}}
    return {"geometry": geometry.name, "flops_per_image": per_image, "results": results}


def g8_config(encoder_blocks: int, decoder_blocks: int, dry_run: bool):
    from bench.train_step import SMOKE_OVERRIDES
    from modeling_phenom import PhenomConfig

    overrides = dict(SMOKE_OVERRIDES) if dry_run else {}
    overrides.update(num_hidden_layers=encoder_blocks, decoder_num_hidden_layers=decoder_blocks)
    return PhenomConfig.from_preset("g8", **overrides)


def training(device: torch.device, dry_run: bool, batch_size: int, encoder_blocks: int, decoder_blocks: int,
             peaks: dict) -> dict:
    """g8 MAE steps in bf16 autocast, flash SDPA, activation checkpointing off and on."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from bench.train_step import PHENOM, build, make_batch, make_optimizer, set_checkpointing, step_flops, train_step

    config = g8_config(encoder_blocks, decoder_blocks, dry_run)
    flops = step_flops(config, batch_size)
    model = build(PHENOM, config, device)
    optimizer = make_optimizer(model)
    pixels = make_batch(config, batch_size, device)[PHENOM]
    # Flash attention where the device has it (CUDA); the CPU has no flash kernel selectable this way.
    backends = [SDPBackend.FLASH_ATTENTION] if device.type == "cuda" else [SDPBackend.FLASH_ATTENTION,
                                                                           SDPBackend.MATH]
    results, fallback = {}, None
    for checkpointing in (False, True):
        set_checkpointing(model, checkpointing)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        losses = []

        def step(losses=losses):
            losses.append(train_step(model, optimizer, pixels, bf16=True))

        try:
            with sdpa_kernel(backends):
                seconds = time_calls(step, device, warmup=1 if dry_run else 3, calls=2 if dry_run else 10)
        except RuntimeError as error:  # a GPU without flash attention: measure with what SDPA picks, and say so
            fallback = f"{type(error).__name__}: {error}"[:500]
            losses.clear()
            seconds = time_calls(step, device, warmup=1 if dry_run else 3, calls=2 if dry_run else 10)
        best = min(seconds)
        rate = flops["step"] / best
        row = {"seconds": seconds, "best_seconds": best, "steps_per_s": 1 / best,
               "images_per_s": batch_size / best, "model_flops_per_s": rate, "losses": losses,
               **{f"mfu_vs_{key}": rate / peak for key, peak in peaks.items() if peak}}
        if device.type == "cuda":
            row["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
        results["checkpointing" if checkpointing else "no checkpointing"] = row
    geometry = {key: getattr(config, key) for key in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                      "intermediate_size", "patch_size", "image_size",
                                                      "decoder_hidden_size", "decoder_num_hidden_layers",
                                                      "mask_ratio")}
    return {"geometry": geometry, "batch_size": batch_size, "precision": "bf16 autocast",
            "attention": [backend.name for backend in backends], "attention_fallback": fallback, "flops": flops,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, seconds; checks the code path only")
    parser.add_argument("--inference-batch", type=int, default=64, help="ca-s16 wells per forward (default 64)")
    parser.add_argument("--train-batch", type=int, default=32, help="g8 images per step (default 32)")
    parser.add_argument("--g8-encoder-blocks", type=int, default=8, help="g8 encoder blocks (default 8 of 48)")
    parser.add_argument("--g8-decoder-blocks", type=int, default=2, help="g8 decoder blocks (default 2 of 8)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "gpu_check.json", help="JSON report")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: run this on a GPU machine, or pass --device cpu --dry-run to check the code")
    if device.type != "cuda" and not args.dry_run:
        parser.error("without a GPU only --dry-run makes sense (the sizes are meant for a GPU)")
    if args.dry_run:
        args.inference_batch, args.train_batch = 2, 2
        args.g8_encoder_blocks, args.g8_decoder_blocks = 1, 1
    start = time.perf_counter()
    machine = machine_record(device)
    print(versions_line(machine), flush=True)
    size = 256 if args.dry_run else 8192
    measured_peak = max(matmul_flops_per_second(device, size=size, dtype=torch.bfloat16)[0] for _ in range(2))
    name = machine.get("gpu", "")
    peaks = {"measured_bf16_peak": measured_peak, "datasheet_bf16_peak": datasheet_peak(name)}
    datasheet = peaks["datasheet_bf16_peak"]
    print(f"bf16 {size}x{size} mm: {measured_peak / 1e12:.1f} TFLOP/s; datasheet dense bf16 peak: "
          f"{'not in the table' if datasheet is None else f'{datasheet / 1e12:.0f} TFLOP/s'}", flush=True)
    report = {"benchmark": "gpu_check", "dry_run": args.dry_run, "machine": machine, "peaks_flops_per_s": peaks}
    report["inference"] = inference(device, args.dry_run, args.inference_batch, peaks)
    for precision, row in report["inference"]["results"].items():
        print(f"{report['inference']['geometry']} inference {precision}: {row['images_per_s']:.1f} images/s "
              f"(MFU {row['mfu_vs_measured_bf16_peak']:.1%} of the measured bf16 peak)", flush=True)
    report["training"] = training(device, args.dry_run, args.train_batch, args.g8_encoder_blocks,
                                  args.g8_decoder_blocks, peaks)
    g8 = "g8 (dry-run sizes)" if args.dry_run else "g8"
    for setting, row in report["training"]["results"].items():
        print(f"{g8} training step, bf16, {setting}: {row['steps_per_s']:.2f} steps/s "
              f"(MFU {row['mfu_vs_measured_bf16_peak']:.1%} of the measured bf16 peak)", flush=True)
    report["seconds"] = time.perf_counter() - start
    report["load_average_end"] = list(os.getloadavg())
    atomic_write_json(args.out, report)
    print(f"wrote {args.out} after {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
