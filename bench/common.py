"""What the model benchmarks share: the machine record, a quiet-machine wait, the fp32 matmul ceiling, analytic FLOPs
of a ViT encoder, medians and the atomic JSON write.

The machine is shared (2 cores, other jobs come and go), so every benchmark interleaves its measurements (each repeat
times every implementation once, in alternating order, and measures the matmul ceiling beside them) and reports
medians of per-repeat numbers: a change of load then hits all of them alike. Each call is timed twice: wall clock (the
issue's measure) and CPU time of this process (`time.process_time`, all threads), which other jobs on the machine
disturb far less: ratios and peak fractions are reported on both clocks.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from eval.precision import cpu_flags, native_bf16

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
MATMUL_SIZE = 2048


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_record(device: torch.device) -> dict:
    """Versions, threads, CPU and load average (1, 5, 15 min) at the time of the call."""
    import transformers

    flags = cpu_flags()
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_has_avx512_bf16": "avx512_bf16" in flags,
        "cpu_has_amx_bf16": "amx_bf16" in flags,
        "native_bf16": native_bf16(device, flags),
        "load_average": list(os.getloadavg()),
        "device": str(device),
    }
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record


def wait_for_quiet_machine(max_load: float, max_wait_s: float, poll_s: float = 30.0) -> dict:
    """Wait (up to `max_wait_s`) until the 1-minute load average is <= `max_load`; say what was seen."""
    start = time.monotonic()
    seen = [os.getloadavg()[0]]
    while seen[-1] > max_load and time.monotonic() - start + poll_s <= max_wait_s:
        print(f"load average {seen[-1]:.2f} > {max_load:g}: waiting {poll_s:g} s for a quieter machine", flush=True)
        time.sleep(poll_s)
        seen.append(os.getloadavg()[0])
    return {"max_load": max_load, "waited_s": round(time.monotonic() - start, 1), "load_seen": seen,
            "quiet": seen[-1] <= max_load}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops_per_second(
    device: torch.device, size: int = MATMUL_SIZE, calls: int = 3, dtype: torch.dtype = torch.float32
) -> tuple[float, float]:
    """The matmul ceiling: `calls` `torch.mm` of two `size x size` matrices (fp32 unless asked), 2 * size**3 FLOPs
    each. Returns the best FLOP/s per wall-clock second and the best FLOP/s per CPU second of this process (all its
    threads; the latter is what a machine shared with other jobs disturbs least)."""
    generator = torch.Generator().manual_seed(0)
    left = torch.randn(size, size, generator=generator).to(device, dtype)
    right = torch.randn(size, size, generator=generator).to(device, dtype)
    torch.mm(left, right)
    best_wall = best_cpu = float("inf")
    for _ in range(calls):
        synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        torch.mm(left, right)
        synchronize(device)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return 2 * size**3 / best_wall, 2 * size**3 / max(best_cpu, 1e-9)


def timed(call, device: torch.device) -> tuple[float, float, object]:
    """`(wall seconds, CPU seconds of this process, output)` of one `call()`."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    output = call()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu, output


def vit_encoder_flops(
    num_tokens: int, hidden_size: int, intermediate_size: int, num_layers: int, num_patches: int, patch_pixels: int
) -> dict[str, float]:
    """Forward FLOPs of one image through a ViT encoder, counted analytically (2 per multiply-add).

    Args:
        num_tokens: tokens every block sees (CLS included).
        num_patches: patch tokens made by the patch embedding, each from `patch_pixels` input values.
    Returns:
        `patch_embedding`, `projections` (q, k, v, out and the two MLP matrices of every block), `attention`
        (`Q K^T` and `A V`), `total`. LayerNorm, GELU, softmax and residual adds are not counted (elementwise work,
        under 1% of the FLOPs at these sizes).
    """
    patch_embedding = 2.0 * num_patches * patch_pixels * hidden_size
    projections = 2.0 * num_layers * num_tokens * (4 * hidden_size**2 + 2 * hidden_size * intermediate_size)
    attention = 4.0 * num_layers * num_tokens**2 * hidden_size
    return {"patch_embedding": patch_embedding, "projections": projections, "attention": attention,
            "total": patch_embedding + projections + attention}


def op_category(name: str) -> str:
    """Coarse class of a profiled aten op: where the FLOPs are (matmul, attention, convolution) or not (other)."""
    if "scaled_dot_product" in name or "flash_attention" in name:
        return "attention"
    if name in {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul"}:
        return "matmul"
    if "convolution" in name:
        return "convolution"
    return "other"


def profile_ops(call, rows: int = 12) -> dict:
    """Profile one `call()` with `torch.profiler` (CPU): the top ops by self time and the self time per category.

    Returns `{"total_s", "categories": {category: seconds}, "top_ops": [{"name", "self_s", "calls", "fraction"}]}`.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        call()
    events = [event for event in profiler.key_averages() if event.self_cpu_time_total > 0]
    total = sum(event.self_cpu_time_total for event in events) / 1e6
    categories: dict[str, float] = {}
    for event in events:
        category = op_category(event.key)
        categories[category] = categories.get(category, 0.0) + event.self_cpu_time_total / 1e6
    events.sort(key=lambda event: event.self_cpu_time_total, reverse=True)
    top = [{"name": event.key, "self_s": event.self_cpu_time_total / 1e6, "calls": event.count,
            "fraction": event.self_cpu_time_total / 1e6 / total} for event in events[:rows]]
    return {"total_s": total, "categories": categories, "top_ops": top}


def profile_table(title: str, profiled: dict) -> str:
    lines = [f"{title}: profiled self time {profiled['total_s']:.3f} s; by category: "
             + ", ".join(f"{name} {seconds / profiled['total_s']:.1%}"
                         for name, seconds in sorted(profiled["categories"].items(), key=lambda item: -item[1]))]
    for rate_name, rate in profiled.get("category_flops_per_s", {}).items():
        lines.append(f"  {rate_name}: {rate / 1e9:.1f} GFLOP/s of its own self time")
    for op in profiled["top_ops"]:
        lines.append(f"  {op['name'][:60]:<60}{op['self_s'] * 1e3:>10.1f} ms{op['fraction']:>8.1%}{op['calls']:>6}x")
    return "\n".join(lines)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def interleaved_order(names: list[str], repeat: int) -> list[str]:
    """Forward order on even repeats, reversed on odd ones, so no implementation always runs first."""
    return list(names) if repeat % 2 == 0 else list(reversed(names))


def versions_line(machine: dict) -> str:
    load = ", ".join(f"{value:.2f}" for value in machine["load_average"])
    return (f"{machine['date']}; {machine['cpu']} ({machine['cpu_count']} cores, {machine['torch_threads']} torch "
            f"threads); load average {load}; torch {machine['torch']}, transformers {machine['transformers']}, "
            f"python {machine['python']} on {sys.platform}")


__all__ = [
    "RESULTS_DIR",
    "MATMUL_SIZE",
    "machine_record",
    "wait_for_quiet_machine",
    "synchronize",
    "matmul_flops_per_second",
    "timed",
    "vit_encoder_flops",
    "op_category",
    "profile_ops",
    "profile_table",
    "median",
    "interleaved_order",
    "versions_line",
]
