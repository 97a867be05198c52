"""Known-relationship recall (paper.md §4a; EFAAR): `eval/recall.py` on the context's gene map, with the
label-permutation baselines; figure: cosines within a few CORUM complexes (`complex_heatmap.png`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..context import BenchmarkResult, EvalContext
from ..plots import plot_complex_heatmap
from ..recall import RECALL_THRESHOLDS, known_relationship_recall, null_rows
from ..results import recall_means, recall_metric_name
from . import Benchmark, MetricFamily

SOURCE_TITLES = {"CORUM": "CORUM", "HuMAP": "hu.MAP", "Reactome": "Reactome", "SIGNOR": "SIGNOR",
                 "StringDB": "StringDB"}


def run(context: EvalContext) -> BenchmarkResult:
    """Recall of every source; a source with no annotated pair in the map gets no metric (never a 0 or NaN): a
    warning names it and its `recall_<SOURCE>_query_size` count is 0. Fewer than two genes: not applicable."""
    per_source = known_relationship_recall(context.perturbation_map, context.annotations_dir, null=context.null,
                                           seeds=context.seeds)
    metrics, baselines, counts = {}, {}, {}
    for result in per_source:
        for threshold, value in result.recall.items():
            metrics[f"recall_{result.source}_{threshold}"] = value
        for threshold, value in result.baseline.items():
            baselines[f"recall_{result.source}_{threshold}"] = value
        counts[f"recall_{result.source}_null_size"] = result.null_size
        counts[f"recall_{result.source}_query_size"] = result.query_size
        counts[f"recall_{result.source}_annotated_pairs"] = result.annotated_pairs
        counts[f"recall_{result.source}_pairs_missing_gene"] = result.pairs_missing_gene
        if not result.query_size:
            print(f"warning: no {result.source} pair has both genes in the map; recall_{result.source}_* not "
                  "reported", file=sys.stderr)
    metrics.update(recall_means(metrics, RECALL_THRESHOLDS))
    baselines.update(recall_means(baselines, RECALL_THRESHOLDS))
    missing_mean = recall_metric_name("mean", *RECALL_THRESHOLDS[0])
    if missing_mean not in metrics:
        print(f"warning: {missing_mean} not reported: a source of the paper's mean has no pair in the map",
              file=sys.stderr)
    counts["recall_genes_in_map"] = len(context.perturbation_map.gene_rows())
    counts["recall_null_rows"] = len(null_rows(context.perturbation_map, context.null))
    return BenchmarkResult(metrics, {}, baselines, counts)


def plot(context: EvalContext, results, folder: Path, title: str) -> list[Path]:
    """`complex_heatmap.png` when `CORUM_clusters.tsv` is there and a complex has 3 genes in the map."""
    clusters = Path(context.annotations_dir) / "CORUM_clusters.tsv"
    heatmap = plot_complex_heatmap(context.perturbation_map.gene_rows(), clusters, folder / "complex_heatmap.png",
                                   title=title) if clusters.is_file() else None
    if heatmap is None:
        print(f"note: no complex heatmap ({clusters} is missing or none of its complexes has 3 genes in the map)",
              file=sys.stderr)
        return []
    return [heatmap]


def title(name: str) -> str | None:
    if match := re.match(r"^recall_(\w+?)_([\d.]+)_([\d.]+)$", name):
        source, lower, upper = match.groups()
        try:
            tails = f"{float(lower) * 100:g} % / {float(upper) * 100:g} %"
        except ValueError:
            tails = f"{lower} / {upper}"
        if source == "mean":
            return f"mean recall of CORUM, hu.MAP, Reactome, StringDB ({tails})"
        return f"{SOURCE_TITLES.get(source, source)} recall ({tails})"
    return None


BENCHMARK = Benchmark(
    name="recall",
    order=10,
    families=(
        MetricFamily(r"recall_mean_", "mean recall",
                     "known-relationship recall averaged over CORUM, hu.MAP, Reactome and StringDB (as the paper)"),
        MetricFamily(r"recall_", "recall",
                     "known-relationship recall: fraction of annotated gene pairs whose cosine similarity falls in "
                     "the lower or upper tail (percentiles in the name) of the null of all gene-pair cosines "
                     "(EFAAR)"),
    ),
    run=run,
    plot=plot,
    title=title,
)
