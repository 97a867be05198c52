"""Encoder inference speed: Phenom against transformers ViTMAE (and timm, when importable) of the same geometry.

Geometries (fp32, `torch.inference_mode`, eval mode):

- `ca-s16`: OpenPhenom (`PhenomConfig.from_preset("ca-s16")`), 6 x 256 x 256 uint8 -> 6 x 256 patch tokens + CLS =
  1,537 tokens, width 384, 12 blocks, 6 heads. Peer: `ViTMAEModel` with one channel, `image_size=(256, 1536)`,
  patch 16 (the same 1,536 patch tokens + CLS), `mask_ratio=0`, SDPA attention.
- `l8`: Phenom-1 width (1024, 16 heads, MLP 4096, patch 8, 6-channel patch embedding) at reduced depth
  (`--l8-depth`, default 4 of 24 blocks, so that a run fits in minutes on 2 cores): 6 x 256 x 256 -> 1,024 patch
  tokens + CLS = 1,025 tokens. Peer: `ViTMAEModel` with 6 channels, 256 px, patch 8.
- `tiny`: a seconds-long geometry for the smoke test.

timm's `VisionTransformer` with `ParallelScalingBlock` (the engine of the released OpenPhenom code) is measured only
when `import timm` works: it is no dependency of Phenom (it needs torchvision, whose wheels replace torch here).

Every repeat times each implementation once per (geometry, batch) case, in alternating order, and measures the fp32
2048 x 2048 `torch.mm` rate beside them; reported numbers are medians over repeats of per-repeat values. FLOPs are
counted analytically (`bench.common.vit_encoder_flops`: projections + attention + patch embedding), the same count
for every implementation of a geometry. Ratio = Phenom images/s / peer images/s (> 1: Phenom is faster).

    python -m bench.encoder_inference                          # ca-s16 and l8, batches 1 and 8, 5 repeats
    python -m bench.encoder_inference --geometry ca-s16 --batch-sizes 8 --repeats 3 --compile
    python -m bench.encoder_inference --smoke --out /tmp/encoder.json   # tiny geometry, 1 repeat (CI)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.common import (
    MATMUL_SIZE,
    RESULTS_DIR,
    bf16_matmul_flops_per_second,
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

TARGET_RATIO_VITMAE = 1.2
TARGET_FRACTION_OF_MATMUL_PEAK = 0.75
PHENOM = "phenom"
PHENOM_COMPILED = "phenom (torch.compile)"
VITMAE = "transformers ViTMAE"
TIMM = "timm ParallelScalingBlock ViT"


@dataclass
class Geometry:
    """A Phenom preset (with overrides) and the input it is measured on."""

    name: str
    preset: str
    overrides: dict
    num_channels: int
    image_size: int

    def phenom_config(self):
        from modeling_phenom import PhenomConfig

        return PhenomConfig.from_preset(self.preset, **self.overrides)


def geometries(l8_depth: int) -> dict[str, Geometry]:
    return {
        "ca-s16": Geometry("ca-s16", "ca-s16", {}, num_channels=6, image_size=256),
        "l8": Geometry(f"l8 (depth {l8_depth})", "l8", {"num_hidden_layers": l8_depth}, num_channels=6,
                       image_size=256),
        "tiny": Geometry("tiny", "tiny", {"num_hidden_layers": 2}, num_channels=2, image_size=64),
    }


def peer_image_shape(config, geometry: Geometry) -> tuple[int, int, int]:
    """`(channels, height, width)` of the peers' input: the channel-agnostic token sequence as one wide image
    (`C * T` patch tokens from a 1-channel `H x (W * C)` image), or the C-channel image itself."""
    side = geometry.image_size
    if config.channel_agnostic:
        return 1, side, side * geometry.num_channels
    return geometry.num_channels, side, side


def build_phenom(config, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from modeling_phenom import PhenomModel

    return PhenomModel(config).to(device, dtype).eval()


def build_vitmae(config, geometry: Geometry, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import ViTMAEConfig, ViTMAEModel

    channels, height, width = peer_image_shape(config, geometry)
    peer_config = ViTMAEConfig(
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_encoder_blocks,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_act=config.hidden_act,
        layer_norm_eps=config.layer_norm_eps,
        image_size=(height, width),
        patch_size=config.patch_size,
        num_channels=channels,
        mask_ratio=0.0,
        attn_implementation="sdpa",
    )
    return ViTMAEModel(peer_config).to(device, dtype).eval()


def build_timm(config, geometry: Geometry, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """timm ViT with the released block (raises ImportError when timm cannot be imported)."""
    import timm  # noqa: F401  (the import itself is the availability check)
    from timm.models.vision_transformer import ParallelScalingBlock, VisionTransformer

    channels, height, width = peer_image_shape(config, geometry)
    model = VisionTransformer(
        img_size=(height, width),
        patch_size=config.patch_size,
        in_chans=channels,
        num_classes=0,
        global_pool="avg",
        embed_dim=config.hidden_size,
        depth=config.num_encoder_blocks,
        num_heads=config.num_attention_heads,
        mlp_ratio=config.intermediate_size / config.hidden_size,
        qkv_bias=config.qkv_bias,
        qk_norm=config.qk_norm,
        init_values=config.layer_scale_init_value,
        block_fn=ParallelScalingBlock,
    )
    return model.to(device, dtype).eval()


def last_hidden_tokens(output) -> int:
    """Token count of a model's output (a transformers output or timm's `forward_features` tensor)."""
    tensor = output if isinstance(output, torch.Tensor) else output.last_hidden_state
    return int(tensor.shape[1])


def implementations(
    geometry: Geometry, batch_size: int, device: torch.device, dtype: torch.dtype, models: dict, compile_phenom: bool,
    skipped: dict,
) -> dict[str, Callable[[], object]]:
    """`{name: call}` for one case; models are built once per geometry and cached in `models`."""
    config = geometry.phenom_config()
    generator = torch.Generator().manual_seed(0)
    side = geometry.image_size
    pixels = torch.randint(0, 256, (batch_size, geometry.num_channels, side, side), dtype=torch.uint8,
                           generator=generator).to(device)
    peer_pixels = torch.randn(batch_size, *peer_image_shape(config, geometry), generator=generator).to(device, dtype)
    if geometry.name not in models:
        torch.manual_seed(0)
        built = {PHENOM: build_phenom(config, device, dtype), VITMAE: build_vitmae(config, geometry, device, dtype)}
        if compile_phenom:
            built[PHENOM_COMPILED] = torch.compile(built[PHENOM])
        try:
            built[TIMM] = build_timm(config, geometry, device, dtype)
        except Exception as error:  # timm is optional: any failure to import or build it skips it, with the reason
            skipped[TIMM] = f"{type(error).__name__}: {error}"
        models[geometry.name] = built
    built = models[geometry.name]
    calls = {PHENOM: lambda: built[PHENOM](pixels), VITMAE: lambda: built[VITMAE](peer_pixels)}
    if PHENOM_COMPILED in built:
        calls[PHENOM_COMPILED] = lambda: built[PHENOM_COMPILED](pixels)
    if TIMM in built:
        calls[TIMM] = lambda: built[TIMM].forward_features(peer_pixels)
    return calls


def case_flops(geometry: Geometry) -> dict:
    config = geometry.phenom_config()
    side, patch = geometry.image_size, config.patch_size
    tokens_per_channel = (side // patch) ** 2
    if config.channel_agnostic:
        num_patches, patch_pixels = geometry.num_channels * tokens_per_channel, patch * patch
    else:
        num_patches, patch_pixels = tokens_per_channel, patch * patch * geometry.num_channels
    flops = vit_encoder_flops(1 + num_patches, config.hidden_size, config.intermediate_size,
                              config.num_encoder_blocks, num_patches, patch_pixels)
    shape = {"hidden_size": config.hidden_size, "num_hidden_layers": config.num_encoder_blocks,
             "num_attention_heads": config.num_attention_heads, "intermediate_size": config.intermediate_size,
             "patch_size": patch, "channels": geometry.num_channels, "image_size": side,
             "channel_agnostic": config.channel_agnostic, "block_type": config.block_type,
             "tokens": 1 + num_patches}
    return {"geometry": shape, "flops_per_image": flops}


def run(
    names: list[str], batch_sizes: list[int], repeats: int, warmup: int, l8_depth: int, device: torch.device,
    compile_phenom: bool, profile: bool = False, dtype: torch.dtype = torch.float32,
) -> dict:
    known = geometries(l8_depth)
    cases = [(known[name], batch_size) for name in names for batch_size in batch_sizes]
    models: dict = {}
    skipped: dict = {}
    calls = {(geometry.name, batch_size): implementations(geometry, batch_size, device, dtype, models,
                                                          compile_phenom, skipped)
             for geometry, batch_size in cases}
    seconds = {key: {name: [] for name in case_calls} for key, case_calls in calls.items()}
    cpu_seconds = {key: {name: [] for name in case_calls} for key, case_calls in calls.items()}
    peaks = {key: [] for key in calls}
    cpu_peaks = {key: [] for key in calls}
    tokens = {key: {} for key in calls}
    with torch.inference_mode():
        for repeat in range(-warmup, repeats):
            for key, case_calls in calls.items():
                peak, cpu_peak = matmul_flops_per_second(device, dtype=dtype)
                for name in interleaved_order(list(case_calls), repeat):
                    elapsed, cpu_elapsed, output = timed(case_calls[name], device)
                    if repeat < 0:
                        tokens[key][name] = last_hidden_tokens(output)
                    else:
                        seconds[key][name].append(elapsed)
                        cpu_seconds[key][name].append(cpu_elapsed)
                if repeat >= 0:
                    peaks[key].append(peak)
                    cpu_peaks[key].append(cpu_peak)
            if repeat >= 0:
                print(f"repeat {repeat + 1}/{repeats} done", flush=True)
    profiles = {}
    if profile and device.type == "cpu":
        # One profiled call of Phenom and ViTMAE per geometry at the largest batch: where the time goes.
        with torch.inference_mode():
            for geometry in {geometry.name: geometry for geometry, _ in cases}.values():
                key = (geometry.name, max(batch_sizes))
                flops = case_flops(geometry)["flops_per_image"]
                for name in (PHENOM, VITMAE):
                    profiled = profile_ops(calls[key][name])
                    profiled["category_flops_per_s"] = {
                        "matmul (projections)": key[1] * flops["projections"] / profiled["categories"]["matmul"],
                        "attention (SDPA)": key[1] * flops["attention"] / profiled["categories"]["attention"],
                    }
                    profiles[f"{name}, {geometry.name}, batch {key[1]}"] = profiled
    for key, counts in tokens.items():
        if len(set(counts.values())) != 1:
            raise RuntimeError(f"implementations of {key} see different token counts: {counts}")
    results = []
    for geometry, batch_size in cases:
        key = (geometry.name, batch_size)
        flops = case_flops(geometry)
        per_image = flops["flops_per_image"]["total"]
        case = {"geometry_name": geometry.name, "batch_size": batch_size, **flops,
                "attention_fraction_of_flops": flops["flops_per_image"]["attention"] / per_image,
                "matmul_peak_flops_per_s": {"median": median(peaks[key]), "max": max(peaks[key]),
                                            "samples": peaks[key]},
                "results": {}}
        case["matmul_peak_flops_per_cpu_s"] = {"median": median(cpu_peaks[key]), "samples": cpu_peaks[key]}
        phenom_seconds, phenom_cpu_seconds = seconds[key][PHENOM], cpu_seconds[key][PHENOM]
        for name, samples in seconds[key].items():
            cpu_samples = cpu_seconds[key][name]
            achieved = [batch_size * per_image / elapsed for elapsed in samples]
            achieved_cpu = [batch_size * per_image / elapsed for elapsed in cpu_samples]
            case["results"][name] = {
                "seconds": samples,
                "median_seconds": median(samples),
                "best_seconds": min(samples),
                "images_per_s": batch_size / median(samples),
                "flops_per_s": median(achieved),
                "fraction_of_matmul_peak": median([rate / peak for rate, peak in zip(achieved, peaks[key],
                                                                                       strict=True)]),
                # Paired per repeat, then the median: a load change during one repeat moves both sides.
                "phenom_ratio": median([other / ours for ours, other in zip(phenom_seconds, samples, strict=True)]),
                # Fastest repeat over fastest repeat: the least disturbed runs of each, for comparison.
                "phenom_ratio_of_best": min(samples) / min(phenom_seconds),
                "cpu_seconds": cpu_samples,
                "median_cpu_seconds": median(cpu_samples),
                "phenom_ratio_cpu_time": median([other / ours for ours, other in zip(phenom_cpu_seconds, cpu_samples,
                                                                                     strict=True)]),
                "fraction_of_matmul_peak_cpu_time": median([rate / peak for rate, peak in zip(
                    achieved_cpu, cpu_peaks[key], strict=True)]),
            }
        results.append(case)
    return {"cases": results, "skipped": skipped, "profiles": profiles, "tokens": {f"{name} batch {batch}": counts
                                                             for (name, batch), counts in tokens.items()}}


def table(report: dict) -> str:
    header = (f"{'geometry':<14}{'batch':>6}  {'implementation':<30}{'s/batch':>9}{'images/s':>10}{'GFLOP/s':>9}"
              f"{'of peak':>9}{'Phenom x':>10}{'CPU-time: of peak':>19}{'Phenom x':>10}")
    lines = [header, "-" * len(header)]
    for case in report["cases"]:
        for name, result in case["results"].items():
            lines.append(
                f"{case['geometry_name']:<14}{case['batch_size']:>6}  {name:<30}{result['median_seconds']:>9.3f}"
                f"{result['images_per_s']:>10.3f}{result['flops_per_s'] / 1e9:>9.1f}"
                f"{result['fraction_of_matmul_peak']:>9.1%}{result['phenom_ratio']:>10.2f}"
                f"{result['fraction_of_matmul_peak_cpu_time']:>19.1%}{result['phenom_ratio_cpu_time']:>10.2f}"
            )
        peak = case["matmul_peak_flops_per_s"]["median"]
        lines.append(f"{'':<20}{report['dtype']} {MATMUL_SIZE}x{MATMUL_SIZE} mm peak (median): "
                     f"{peak / 1e9:.1f} GFLOP/s; "
                     f"{case['flops_per_image']['total'] / 1e9:.1f} GFLOP/image, "
                     f"{case['attention_fraction_of_flops']:.0%} attention, {case['geometry']['tokens']} tokens")
    return "\n".join(lines)


def targets(report: dict, throughput_batch: int) -> dict:
    """The issue's targets on the cases measured (ratio to ViTMAE at every case, peak fraction at the largest
    batch)."""
    out = {"ratio_vs_vitmae": TARGET_RATIO_VITMAE, "fraction_of_matmul_peak_at_throughput_batch":
           TARGET_FRACTION_OF_MATMUL_PEAK, "throughput_batch": throughput_batch, "met": {}}
    for case in report["cases"]:
        label = f"{case['geometry_name']} batch {case['batch_size']}"
        ours = case["results"][PHENOM]
        out["met"][f"{label}: ratio vs ViTMAE >= {TARGET_RATIO_VITMAE}"] = (
            case["results"][VITMAE]["phenom_ratio"] >= TARGET_RATIO_VITMAE)
        if case["batch_size"] == throughput_batch:
            out["met"][f"{label}: >= {TARGET_FRACTION_OF_MATMUL_PEAK:.0%} of matmul peak"] = (
                ours["fraction_of_matmul_peak"] >= TARGET_FRACTION_OF_MATMUL_PEAK)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.encoder_inference", description=__doc__.split("\n")[0])
    parser.add_argument("--geometry", action="append", choices=["ca-s16", "l8", "tiny"],
                        help="geometry to measure (repeatable; default ca-s16 and l8)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats, medians reported (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--l8-depth", type=int, default=4, help="blocks of the l8 geometry (default 4 of 24)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(PhenomModel)")
    parser.add_argument("--profile", action="store_true",
                        help="after timing, profile one Phenom and one ViTMAE call per geometry (largest batch)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="weights and activations (default float32, the targets' dtype); the matmul peak is "
                             "measured in the same dtype")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--max-load", type=float, default=2.5,
                        help="wait for a 1-minute load average at or below this before measuring (default 2.5)")
    parser.add_argument("--max-wait", type=float, default=600.0, help="longest wait for that, seconds (default 600)")
    parser.add_argument("--smoke", action="store_true", help="tiny geometry, batch 2, 1 repeat, no wait (CI)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "encoder_inference.json", help="JSON report")
    args = parser.parse_args(argv)
    if args.smoke:
        args.geometry, args.batch_sizes, args.repeats, args.warmup, args.max_wait = ["tiny"], [2], 1, 1, 0.0
    names = args.geometry or ["ca-s16", "l8"]
    if args.repeats < 1 or args.warmup < 0 or min(args.batch_sizes) < 1 or args.l8_depth < 1:
        parser.error("--repeats, --batch-sizes and --l8-depth must be positive, --warmup non-negative")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch sees no CUDA device")
    quiet = wait_for_quiet_machine(args.max_load, args.max_wait)
    machine = machine_record(device)
    print(versions_line(machine))
    report = run(names, args.batch_sizes, args.repeats, args.warmup, args.l8_depth, device, args.compile,
                 args.profile or args.smoke, getattr(torch, args.dtype))
    report = {
        "benchmark": "encoder_inference",
        "dtype": args.dtype,
        "mode": "eval, torch.inference_mode",
        "repeats": args.repeats,
        "warmup": args.warmup,
        "smoke": args.smoke,
        "machine": machine,
        "load_average_end": list(os.getloadavg()),
        "wait_for_quiet": quiet,
        **report,
        "targets": targets(report, max(args.batch_sizes)),
    }
    if device.type == "cpu":
        report["bf16_matmul_flops_per_s"] = bf16_matmul_flops_per_second()
    print(table(report))
    for title, profiled in report["profiles"].items():
        print(profile_table(title, profiled))
    for name, reason in report["skipped"].items():
        print(f"skipped {name}: {reason}")
    if device.type == "cpu" and args.dtype == "float32":
        print(f"fp32 throughout (the targets are fp32); for the record, a bf16 {MATMUL_SIZE}x{MATMUL_SIZE} mm ran at "
              f"{report['bf16_matmul_flops_per_s'] / 1e9:.1f} GFLOP/s on this CPU (avx512_bf16: "
              f"{machine['cpu_has_avx512_bf16']})")
    for target, met in report["targets"]["met"].items():
        print(f"target {target}: {'met' if met else 'MISSED'}")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
