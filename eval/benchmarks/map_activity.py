"""Phenotypic activity mAP (JUMP-CP; `copairs`): each perturbation's replicate wells retrieved against the
negative-control wells of their plates (`eval/mean_average_precision.py`: the recipe). Metrics: `map_activity_mean`
(mean mAP over perturbations) and `map_activity_fraction` (fraction with Benjamini-Hochberg corrected p < 0.05);
baselines: the same with perturbation labels shuffled among the non-control wells (seeded). Figure:
`map_activity.png`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..aggregate import map_rows
from ..benchmark_common import recipe_text
from ..benchmark_plots import plot_mean_average_precision
from ..context import BenchmarkResult, EvalContext
from ..mean_average_precision import activity_map, summarize
from . import Benchmark, MetricFamily

PREFIX = "map_activity"


def map_result(table: pd.DataFrame, shuffled: pd.DataFrame, prefix: str, counts: dict) -> BenchmarkResult:
    """`<prefix>_mean` and `<prefix>_fraction` of the table, the shuffled table's as baselines."""
    return BenchmarkResult(summarize(table, prefix), {}, summarize(shuffled, prefix), counts)


def activity_table(context: EvalContext, shuffle_seed: int | None = None) -> pd.DataFrame:
    """Per map row scored: `map_row`, `perturbation`, `modality`, `concentration` and copairs' mAP columns;
    with `shuffle_seed`, perturbation labels are first permuted among the non-control wells."""
    design = context.design
    rows, _ = map_rows(design)
    is_query = ~design.is_control
    if shuffle_seed is not None:
        queries = np.flatnonzero(is_query)
        rows = rows.copy()
        rows[queries] = rows[np.random.default_rng(shuffle_seed).permutation(queries)]
    table = activity_map(context.well_features, rows, is_query, design.is_negative_control, design.batch_plate(),
                         context.map_null_size, context.seeds[0] if context.seeds else 0)
    profiles = context.perturbation_map
    index = table["perturbation"].astype(int).to_numpy()
    return table.drop(columns="perturbation").assign(
        map_row=index, perturbation=profiles.labels[index], modality=profiles.modalities[index],
        concentration=profiles.concentrations[index])


def run(context: EvalContext) -> BenchmarkResult:
    seed = context.seeds[0] if context.seeds else 0
    table = activity_table(context)
    context.tables[PREFIX] = table
    shuffled = activity_table(context, shuffle_seed=seed)
    counts = {
        f"{PREFIX}_perturbations": len(table),
        f"{PREFIX}_active": int(table["below_corrected_p"].sum()),
        f"{PREFIX}_recipe": recipe_text({
            "profiles": "corrected wells",
            "positives": "other wells of the same perturbation",
            "negatives": "negative-control wells of the query's plate (batch x plate)",
            "similarity": "cosine",
            "p": f"copairs, null of {context.map_null_size} random rank lists, seed {seed}",
            "correction": "Benjamini-Hochberg; active = corrected p < 0.05",
            "baseline": f"perturbation labels shuffled among non-control wells (seed {seed})",
        }),
    }
    return map_result(table, shuffled, PREFIX, counts)


def map_plot(prefix: str, heading: str):
    """The registry `plot` of a mAP benchmark: `<prefix>.png` from the table its `run` left in `context.tables`."""

    def plot(context: EvalContext, results, folder: Path, title: str) -> list[Path]:
        if prefix not in context.tables:
            return []
        return [plot_mean_average_precision(context.tables[prefix], folder / f"{prefix}.png",
                                            title=f"{heading}: {title}")]

    return plot


def map_titles(prefix: str, what: str, fraction: str):
    """The registry `title` of a mAP benchmark's `<prefix>_mean` and `<prefix>_fraction`."""
    return {f"{prefix}_mean": f"mAP {what} (mean)", f"{prefix}_fraction": f"mAP {what} ({fraction}, FDR 5 %)"}.get


BENCHMARK = Benchmark(
    name=PREFIX,
    order=60,
    families=(MetricFamily(rf"{PREFIX}_", "mAP activity",
                           "phenotypic activity (JUMP-CP, copairs): mean average precision of retrieving a "
                           "perturbation's replicate wells against negative controls of the same plate (mean), and "
                           "the fraction of perturbations with FDR-corrected p < 0.05 (fraction)"),),
    run=run,
    plot=map_plot(PREFIX, "Phenotypic activity (mAP vs controls)"),
    title=map_titles(PREFIX, "phenotypic activity", "fraction active"),
)
