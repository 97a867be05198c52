"""Encoder inference speed: Phenom against transformers ViTMAE (and timm, when importable) of the same geometry, in
float32 and in bf16 (autocast).

Geometries (`torch.inference_mode`, eval mode):

- `ca-s16`: OpenPhenom (`PhenomConfig.from_preset("ca-s16")`), 6 x 256 x 256 uint8 -> 6 x 256 patch tokens + CLS =
  1,537 tokens, width 384, 12 blocks, 6 heads. Peer: `ViTMAEModel` with one channel, `image_size=(256, 1536)`,
  patch 16 (the same 1,536 patch tokens + CLS), `mask_ratio=0`, SDPA attention.
- `l8`: Phenom-1 width (1024, 16 heads, MLP 4096, patch 8, 6-channel patch embedding) at reduced depth
  (`--l8-depth`, default 4 of 24 blocks, so that a run fits in minutes on 2 cores): 6 x 256 x 256 -> 1,024 patch
  tokens + CLS = 1,025 tokens. Peer: `ViTMAEModel` with 6 channels, 256 px, patch 8.
- `tiny`: a seconds-long geometry for the smoke test.

Precisions (`--precisions`, every implementation in each): `float32`; `bfloat16` = float32 weights under
`torch.autocast(dtype=torch.bfloat16)`, what `phenom embed --dtype bfloat16` runs; `bfloat16-weights` = the model
cast to bf16 (`model.to(torch.bfloat16)`), for comparison only.

timm's `VisionTransformer` with `ParallelScalingBlock` (the engine of the released OpenPhenom code) is measured only
when `import timm` works: it is no dependency of Phenom (it needs torchvision, whose wheels replace torch here).

Every repeat times each implementation once per (geometry, batch) case, in alternating order, and measures the
2048 x 2048 `torch.mm` rate in float32 (and in bf16 when a bf16 precision is measured) beside them; reported numbers
are medians over repeats of per-repeat values. FLOPs are counted analytically (`bench.common.vit_encoder_flops`:
projections + attention + patch embedding), the same count for every implementation of a geometry and precision.
Ratios (> 1: the named Phenom is faster): `phenom_ratio` = Phenom float32 images/s over the row's, `ratios` = the
row's images/s over every other row's, each paired per repeat.

    python -m bench.encoder_inference                          # ca-s16 and l8, batches 1 and 8, fp32 and bf16
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

TARGET_RATIO_VITMAE = 1.2  # issue 15: Phenom float32 over ViTMAE float32
TARGET_FRACTION_OF_MATMUL_PEAK = 0.75
TARGET_BF16_RATIO_VITMAE = 2.0  # issue 27: Phenom bf16 (autocast) over ViTMAE float32, at the throughput batch
PHENOM = "phenom"
PHENOM_COMPILED = "phenom (torch.compile)"
VITMAE = "transformers ViTMAE"
TIMM = "timm ParallelScalingBlock ViT"


@dataclass(frozen=True)
class Precision:
    """How a model runs: the dtype of its weights (and float input), and the autocast dtype around its forward."""

    name: str
    weights: torch.dtype
    autocast: torch.dtype | None
    suffix: str  # appended to the implementation's name

    @property
    def is_bf16(self) -> bool:
        return torch.bfloat16 in (self.weights, self.autocast)


PRECISIONS = {
    "float32": Precision("float32", torch.float32, None, ""),
    "bfloat16": Precision("bfloat16", torch.float32, torch.bfloat16, " bf16"),
    "bfloat16-weights": Precision("bfloat16-weights", torch.bfloat16, None, " bf16 weights"),
}
PHENOM_BF16 = PHENOM + PRECISIONS["bfloat16"].suffix
VITMAE_BF16 = VITMAE + PRECISIONS["bfloat16"].suffix


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


def under_precision(call: Callable[[], object], precision: Precision, device: torch.device) -> Callable[[], object]:
    """`call` run under the precision's autocast (unchanged when it has none)."""
    if precision.autocast is None:
        return call

    def run():
        with torch.autocast(device.type, dtype=precision.autocast):
            return call()

    return run


def implementations(
    geometry: Geometry, batch_size: int, device: torch.device, precisions: list[Precision], models: dict,
    compile_phenom: bool, skipped: dict,
) -> dict[str, Callable[[], object]]:
    """`{name: call}` for one case, every implementation in every precision; models are built once per geometry and
    weight dtype (float32 weights serve float32 and autocast alike) and cached in `models`."""
    config = geometry.phenom_config()
    generator = torch.Generator().manual_seed(0)
    side = geometry.image_size
    pixels = torch.randint(0, 256, (batch_size, geometry.num_channels, side, side), dtype=torch.uint8,
                           generator=generator).to(device)
    peer_pixels = torch.randn(batch_size, *peer_image_shape(config, geometry), generator=generator).to(device)
    calls = {}
    for precision in precisions:
        key = (geometry.name, precision.weights)
        if key not in models:
            torch.manual_seed(0)
            built = {PHENOM: build_phenom(config, device, precision.weights),
                     VITMAE: build_vitmae(config, geometry, device, precision.weights)}
            if compile_phenom:
                built[PHENOM_COMPILED] = torch.compile(built[PHENOM])
            try:
                built[TIMM] = build_timm(config, geometry, device, precision.weights)
            except Exception as error:  # timm is optional: any failure to import or build it skips it, with why
                skipped[TIMM] = f"{type(error).__name__}: {error}"
            models[key] = built
        built = models[key]
        peer_input = peer_pixels.to(precision.weights)
        family_calls = {PHENOM: lambda built=built: built[PHENOM](pixels),
                        VITMAE: lambda built=built, peer_input=peer_input: built[VITMAE](peer_input)}
        if PHENOM_COMPILED in built:
            family_calls[PHENOM_COMPILED] = lambda built=built: built[PHENOM_COMPILED](pixels)
        if TIMM in built:
            family_calls[TIMM] = lambda built=built, peer_input=peer_input: built[TIMM].forward_features(peer_input)
        for family, call in family_calls.items():
            calls[family + precision.suffix] = under_precision(call, precision, device)
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



def paired_ratio(reference: list[float], samples: list[float]) -> float:
    """Median over repeats of `samples[i] / reference[i]` (seconds): how many times faster the reference ran, paired
    per repeat so that a load change during one repeat moves both sides."""
    return median([other / ours for ours, other in zip(reference, samples, strict=True)])


def run(
    names: list[str], batch_sizes: list[int], repeats: int, warmup: int, l8_depth: int, device: torch.device,
    compile_phenom: bool, profile: bool = False, precisions: list[Precision] | None = None,
) -> dict:
    precisions = precisions or [PRECISIONS["float32"]]
    measure_bf16_peak = any(precision.is_bf16 for precision in precisions)
    known = geometries(l8_depth)
    cases = [(known[name], batch_size) for name in names for batch_size in batch_sizes]
    models: dict = {}
    skipped: dict = {}
    calls = {(geometry.name, batch_size): implementations(geometry, batch_size, device, precisions, models,
                                                          compile_phenom, skipped)
             for geometry, batch_size in cases}
    seconds = {key: {name: [] for name in case_calls} for key, case_calls in calls.items()}
    cpu_seconds = {key: {name: [] for name in case_calls} for key, case_calls in calls.items()}
    peaks = {key: {"float32": [], "float32 cpu": [], "bfloat16": []} for key in calls}
    tokens = {key: {} for key in calls}
    with torch.inference_mode():
        for repeat in range(-warmup, repeats):
            for key, case_calls in calls.items():
                peak, cpu_peak = matmul_flops_per_second(device)
                bf16_peak = matmul_flops_per_second(device, dtype=torch.bfloat16)[0] if measure_bf16_peak else None
                for name in interleaved_order(list(case_calls), repeat):
                    elapsed, cpu_elapsed, output = timed(case_calls[name], device)
                    if repeat < 0:
                        tokens[key][name] = last_hidden_tokens(output)
                    else:
                        seconds[key][name].append(elapsed)
                        cpu_seconds[key][name].append(cpu_elapsed)
                if repeat >= 0:
                    peaks[key]["float32"].append(peak)
                    peaks[key]["float32 cpu"].append(cpu_peak)
                    if bf16_peak is not None:
                        peaks[key]["bfloat16"].append(bf16_peak)
            if repeat >= 0:
                print(f"repeat {repeat + 1}/{repeats} done", flush=True)
    profiles = {}
    if profile and device.type == "cpu":
        # One profiled call of Phenom and ViTMAE per geometry and precision at the largest batch: where the time goes.
        with torch.inference_mode():
            for geometry in {geometry.name: geometry for geometry, _ in cases}.values():
                key = (geometry.name, max(batch_sizes))
                flops = case_flops(geometry)["flops_per_image"]
                for precision in precisions:
                    for family in (PHENOM, VITMAE):
                        name = family + precision.suffix
                        profiled = profile_ops(calls[key][name])
                        categories = profiled["categories"]
                        profiled["category_flops_per_s"] = {
                            label: key[1] * flops[part] / categories[category]
                            for label, part, category in (("matmul (projections)", "projections", "matmul"),
                                                          ("attention (SDPA)", "attention", "attention"))
                            if categories.get(category)}
                        profiles[f"{name}, {geometry.name}, batch {key[1]}"] = profiled
    for key, counts in tokens.items():
        if len(set(counts.values())) != 1:
            raise RuntimeError(f"implementations of {key} see different token counts: {counts}")
    results = []
    for geometry, batch_size in cases:
        key = (geometry.name, batch_size)
        flops = case_flops(geometry)
        per_image = flops["flops_per_image"]["total"]
        fp32_peaks, bf16_peaks = peaks[key]["float32"], peaks[key]["bfloat16"]
        case = {"geometry_name": geometry.name, "batch_size": batch_size, **flops,
                "attention_fraction_of_flops": flops["flops_per_image"]["attention"] / per_image,
                "matmul_peak_flops_per_s": {"median": median(fp32_peaks), "max": max(fp32_peaks),
                                            "samples": fp32_peaks},
                "matmul_peak_flops_per_cpu_s": {"median": median(peaks[key]["float32 cpu"]),
                                                "samples": peaks[key]["float32 cpu"]},
                "results": {}}
        if bf16_peaks:
            case["bf16_matmul_peak_flops_per_s"] = {"median": median(bf16_peaks), "max": max(bf16_peaks),
                                                    "samples": bf16_peaks}
        case_seconds, case_cpu_seconds = seconds[key], cpu_seconds[key]
        for name, samples in case_seconds.items():
            cpu_samples = case_cpu_seconds[name]
            achieved = [batch_size * per_image / elapsed for elapsed in samples]
            achieved_cpu = [batch_size * per_image / elapsed for elapsed in cpu_samples]
            row = {
                "seconds": samples,
                "median_seconds": median(samples),
                "best_seconds": min(samples),
                "images_per_s": batch_size / median(samples),
                "flops_per_s": median(achieved),
                "fraction_of_matmul_peak": median([rate / peak for rate, peak in zip(achieved, fp32_peaks,
                                                                                       strict=True)]),
                # Phenom float32 over this row (> 1: Phenom float32 is faster).
                "phenom_ratio": paired_ratio(case_seconds[PHENOM], samples),
                # Fastest repeat over fastest repeat: the least disturbed runs of each, for comparison.
                "phenom_ratio_of_best": min(samples) / min(case_seconds[PHENOM]),
                # This row over every other row (> 1: this row is faster).
                "ratios": {other: paired_ratio(samples, other_samples)
                           for other, other_samples in case_seconds.items() if other != name},
                "cpu_seconds": cpu_samples,
                "median_cpu_seconds": median(cpu_samples),
                "phenom_ratio_cpu_time": paired_ratio(case_cpu_seconds[PHENOM], cpu_samples),
                "ratios_cpu_time": {other: paired_ratio(cpu_samples, other_samples)
                                    for other, other_samples in case_cpu_seconds.items() if other != name},
                "fraction_of_matmul_peak_cpu_time": median([rate / peak for rate, peak in zip(
                    achieved_cpu, peaks[key]["float32 cpu"], strict=True)]),
            }
            if bf16_peaks:
                row["fraction_of_bf16_matmul_peak"] = median([rate / peak for rate, peak in zip(
                    achieved, bf16_peaks, strict=True)])
            if PHENOM_BF16 in case_seconds:
                row["phenom_bf16_ratio"] = paired_ratio(case_seconds[PHENOM_BF16], samples)
            case["results"][name] = row
        results.append(case)
    return {"cases": results, "skipped": skipped, "profiles": profiles, "tokens": {f"{name} batch {batch}": counts
                                                             for (name, batch), counts in tokens.items()}}


def table(report: dict) -> str:
    bf16 = any("bf16_matmul_peak_flops_per_s" in case for case in report["cases"])
    header = (f"{'geometry':<14}{'batch':>6}  {'implementation':<30}{'s/batch':>9}{'images/s':>10}{'GFLOP/s':>9}"
              f"{'of fp32 peak':>13}" + (f"{'of bf16 peak':>13}" if bf16 else "") + f"{'Phenom x':>10}"
              + (f"{'Phenom bf16 x':>14}" if bf16 else "") + f"{'CPU-time: Phenom x':>20}")
    lines = [header, "-" * len(header)]
    for case in report["cases"]:
        for name, result in case["results"].items():
            line = (f"{case['geometry_name']:<14}{case['batch_size']:>6}  {name:<30}{result['median_seconds']:>9.3f}"
                    f"{result['images_per_s']:>10.3f}{result['flops_per_s'] / 1e9:>9.1f}"
                    f"{result['fraction_of_matmul_peak']:>13.1%}")
            if bf16:
                line += f"{result.get('fraction_of_bf16_matmul_peak', float('nan')):>13.1%}"
            line += f"{result['phenom_ratio']:>10.2f}"
            if bf16:
                line += f"{result.get('phenom_bf16_ratio', float('nan')):>14.2f}"
            lines.append(line + f"{result['phenom_ratio_cpu_time']:>20.2f}")
        peak = case["matmul_peak_flops_per_s"]["median"]
        bf16_peak = case.get("bf16_matmul_peak_flops_per_s", {}).get("median")
        lines.append(f"{'':<20}{MATMUL_SIZE}x{MATMUL_SIZE} mm peak (median): fp32 {peak / 1e9:.1f} GFLOP/s"
                     + (f", bf16 {bf16_peak / 1e9:.1f} GFLOP/s" if bf16_peak else "") + "; "
                     f"{case['flops_per_image']['total'] / 1e9:.1f} GFLOP/image, "
                     f"{case['attention_fraction_of_flops']:.0%} attention, {case['geometry']['tokens']} tokens")
    lines.append("'Phenom x' / 'Phenom bf16 x': Phenom float32 / Phenom bf16 (autocast) images/s over the row's, "
                 "paired per repeat")
    return "\n".join(lines)


def targets(report: dict, throughput_batch: int) -> dict:
    """The targets on the cases measured: issue 15's (Phenom float32 over ViTMAE float32 at every case, peak
    fraction at the largest batch) and issue 27's (Phenom bf16 autocast over ViTMAE float32 at the largest batch)."""
    out = {"ratio_vs_vitmae": TARGET_RATIO_VITMAE, "fraction_of_matmul_peak_at_throughput_batch":
           TARGET_FRACTION_OF_MATMUL_PEAK, "bf16_ratio_vs_vitmae_float32": TARGET_BF16_RATIO_VITMAE,
           "throughput_batch": throughput_batch, "met": {}}
    for case in report["cases"]:
        label = f"{case['geometry_name']} batch {case['batch_size']}"
        results = case["results"]
        if PHENOM in results and VITMAE in results:
            out["met"][f"{label}: ratio vs ViTMAE >= {TARGET_RATIO_VITMAE}"] = (
                results[VITMAE]["phenom_ratio"] >= TARGET_RATIO_VITMAE)
        if case["batch_size"] != throughput_batch:
            continue
        if PHENOM in results:
            out["met"][f"{label}: >= {TARGET_FRACTION_OF_MATMUL_PEAK:.0%} of matmul peak"] = (
                results[PHENOM]["fraction_of_matmul_peak"] >= TARGET_FRACTION_OF_MATMUL_PEAK)
        if PHENOM_BF16 in results and VITMAE in results:
            out["met"][f"{label}: Phenom bf16 vs ViTMAE float32 >= {TARGET_BF16_RATIO_VITMAE}"] = (
                results[PHENOM_BF16]["ratios"][VITMAE] >= TARGET_BF16_RATIO_VITMAE)
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
    parser.add_argument("--precisions", nargs="+", choices=list(PRECISIONS), default=["float32", "bfloat16"],
                        help="precisions to run every implementation in (default: float32 bfloat16): bfloat16 = "
                             "float32 weights under bf16 autocast (phenom embed --dtype bfloat16), "
                             "bfloat16-weights = the model cast to bf16")
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
    precisions = [PRECISIONS[name] for name in dict.fromkeys(args.precisions)]
    report = run(names, args.batch_sizes, args.repeats, args.warmup, args.l8_depth, device, args.compile,
                 args.profile or args.smoke, precisions)
    report = {
        "benchmark": "encoder_inference",
        "precisions": [precision.name for precision in precisions],
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
    print(table(report))
    for title, profiled in report["profiles"].items():
        print(profile_table(title, profiled))
    for name, reason in report["skipped"].items():
        print(f"skipped {name}: {reason}")
    for target, met in report["targets"]["met"].items():
        print(f"target {target}: {'met' if met else 'MISSED'}")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
