"""Perturbation signal consistency (paper.md §4d; EFAAR `pert_signal_consistency_benchmark`) on the context's
corrected wells: the null is the negative-control genes where the data has them (`--negative-control-genes`), else
random well sets (`--signal-null`); controls are never scored."""

from __future__ import annotations

from ..context import BenchmarkResult, EvalContext
from ..perturbation_signal import choose_null, signal_consistency_benchmark
from . import Benchmark, MetricFamily


def null_of(context: EvalContext) -> tuple[str, list[str], str]:
    """The signal benchmarks' null for this context (`perturbation_signal.choose_null`)."""
    design = context.design
    return choose_null(context.signal_null, context.negative_control_genes, design.perturbation[~design.is_control])


def run_with_null(context: EvalContext, benchmark, name: str, **arguments) -> BenchmarkResult:
    """`benchmark` (consistency or magnitude) on the corrected wells with the context's null; `counts` says which
    null ran and why."""
    null, negatives, why = null_of(context)
    result = benchmark(context.well_features, context.design.frame(), is_control=context.design.is_control,
                       null=null, negative_control_perturbations=negatives or None,
                       seed=context.seeds[0] if context.seeds else 0, **arguments)
    result.counts[f"{name}_null"] = why
    return result


def run(context: EvalContext) -> BenchmarkResult:
    return run_with_null(context, signal_consistency_benchmark, "signal_consistency")


BENCHMARK = Benchmark(
    name="signal_consistency",
    order=40,
    families=(MetricFamily(r"signal_consistency_", "signal consistency",
                           "perturbation signal consistency: fraction of perturbations whose replicate wells agree "
                           "(mean cosine) more than the null allows (p <= 0.05)"),),
    run=run,
    title=lambda name: "signal consistency (fraction)" if name == "signal_consistency_fraction" else None,
)
