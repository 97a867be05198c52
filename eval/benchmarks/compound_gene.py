"""Compound-gene activity (paper.md §4c; EFAAR `compound_gene_benchmark`): `eval/compound_gene.py` on the context's
map with its annotations folder's `compound_gene_interactions.csv` (the bundled one if the folder has none) and
`compound_gene_seeds`; figure: AP and ROC-AUC per concentration (`compound_gene.png`)."""

from __future__ import annotations

import re
from pathlib import Path

from ..benchmark_plots import plot_compound_gene
from ..compound_gene import COMPOUND_QUANTILES, compound_gene_benchmark, load_compound_gene_interactions
from ..context import BenchmarkNotApplicable, BenchmarkResult, EvalContext
from . import Benchmark, MetricFamily

STATISTIC_TITLES = {"median": "median over compounds", "q25": "lower quartile over compounds",
                    "q75": "upper quartile over compounds"}


def run(context: EvalContext) -> BenchmarkResult:
    if not context.compound_gene_seeds:
        raise BenchmarkNotApplicable("compound-gene activity samples negatives per seed: give at least one seed")
    path = Path(context.annotations_dir) / "compound_gene_interactions.csv"
    interactions = load_compound_gene_interactions(path if path.is_file() else None)
    profiles = context.perturbation_map
    metadata = profiles.metadata()
    metadata = metadata.assign(modality=metadata["modality"].where(~metadata["is_control"], "control"))
    return compound_gene_benchmark(profiles.features, metadata, interactions=interactions,
                                   modality_column="modality", seeds=context.compound_gene_seeds)


def plot(context: EvalContext, results, folder: Path, title: str) -> list[Path]:
    if not any(name.startswith("compound_gene_ap_") for name in results.metrics):
        return []
    return [plot_compound_gene(results.metrics, results.metrics_std, results.baselines, folder / "compound_gene.png",
                               title=f"Compound-gene activity: {title}")]


def title(name: str) -> str | None:
    match = re.match(rf"^compound_gene_(ap|auc)_(.+?)(?:_({'|'.join(COMPOUND_QUANTILES)}))?$", name)
    if not match:
        return None
    kind, where, statistic = match.groups()
    where = "best concentration" if where == "max" else f"{where} µM"
    return f"compound-gene {kind.upper()} ({where}{', ' + STATISTIC_TITLES[statistic] if statistic else ''})"


BENCHMARK = Benchmark(
    name="compound_gene",
    order=30,
    families=(MetricFamily(r"compound_gene_", "compound-gene activity",
                           "compound-gene activity prediction on RxRx3-core: average precision (ap) or ROC AUC (auc) "
                           "of known compound-gene interactions, per concentration or at the best concentration "
                           "(max); mean over compounds, or median / quartiles (q25, q75) where the name says"),),
    run=run,
    plot=plot,
    title=title,
)
