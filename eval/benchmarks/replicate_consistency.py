"""Replicate consistency across batches (paper.md §4b): KS and Cramér-von Mises of replicate vs random-pair cosines
(`eval/replicate_consistency.py`); batches are the correction batches crossed with plates; figure: the two cosine
distributions (`replicate_cosines.png`)."""

from __future__ import annotations

import re
from pathlib import Path

from ..benchmark_plots import plot_replicate_cosines
from ..context import BenchmarkNotApplicable, BenchmarkResult, EvalContext
from ..replicate_consistency import (
    ReplicateCosines,
    replicate_consistency_benchmark,
    replicate_cosines,
    replicate_profiles,
)
from . import Benchmark, MetricFamily

BATCH_COLUMN = "correction batch x plate"


def _inputs(context: EvalContext) -> dict:
    """Well embeddings, their perturbations and batches (correction batch crossed with plate), controls left out."""
    design = context.design
    return {
        "features": context.well_features,
        "metadata": design.frame().assign(**{BATCH_COLUMN: design.batch_plate()}),
        "batch_columns": (BATCH_COLUMN,),
        "is_control": design.is_control,
        "aggregate": context.aggregation,
    }


def context_cosines(context: EvalContext) -> ReplicateCosines:
    """The replicate and null cosines `run(context)` compares, for the context's first seed (for the plot)."""
    inputs = _inputs(context)
    profiles = replicate_profiles(inputs.pop("features"), inputs.pop("metadata"), **inputs)
    return replicate_cosines(profiles, context.seeds[0] if context.seeds else 0)[0]


def run(context: EvalContext) -> BenchmarkResult:
    if not context.seeds:
        raise BenchmarkNotApplicable("replicate consistency samples null pairs per seed: give at least one seed")
    inputs = _inputs(context)
    return replicate_consistency_benchmark(inputs.pop("features"), inputs.pop("metadata"), seeds=context.seeds,
                                           **inputs)


def plot(context: EvalContext, results, folder: Path, title: str) -> list[Path]:
    return [plot_replicate_cosines(context_cosines(context), folder / "replicate_cosines.png",
                                   ks=results.metrics["replicate_consistency_ks"],
                                   cm=results.metrics.get("replicate_consistency_cm"),
                                   title=f"Replicate consistency: {title}")]


def title(name: str) -> str | None:
    match = re.match(r"^replicate_consistency_(\w+)$", name)
    return f"replicate consistency ({match.group(1).upper()})" if match else None


BENCHMARK = Benchmark(
    name="replicate_consistency",
    order=20,
    families=(MetricFamily(r"replicate_consistency_", "replicate consistency",
                           "batch-correction replicate consistency: Kolmogorov-Smirnov (ks) or Cramér-von Mises (cm) "
                           "statistic between replicate cosines and a null"),),
    run=run,
    plot=plot,
    title=title,
)
