"""Perturbation signal magnitude (paper.md §4d; EFAAR `pert_signal_magnitude_benchmark`): energy distance of each
perturbation's wells to the negative-control wells the correction was fitted on; the same null as signal
consistency."""

from __future__ import annotations

from ..context import BenchmarkResult, EvalContext
from ..perturbation_signal import signal_magnitude_benchmark
from . import Benchmark, MetricFamily
from .signal_consistency import run_with_null


def run(context: EvalContext) -> BenchmarkResult:
    return run_with_null(context, signal_magnitude_benchmark, "signal_magnitude",
                         reference_control_mask=context.design.is_negative_control)


BENCHMARK = Benchmark(
    name="signal_magnitude",
    order=50,
    families=(MetricFamily(r"signal_magnitude_", "signal magnitude",
                           "perturbation signal magnitude: fraction of perturbations whose wells sit farther from the "
                           "negative controls (energy distance) than the null allows (p <= 0.05)"),),
    run=run,
    title=lambda name: "signal magnitude (fraction)" if name == "signal_magnitude_fraction" else None,
)
