"""Plots of `phenom eval`: recall per annotation source (per block when several), and the cosine-similarity heatmap
of the genes of a few known CORUM complexes; of `phenom probe`: balanced accuracy vs block.

Figures are drawn on matplotlib's Agg canvas (`matplotlib.figure.Figure`, no pyplot, so no global backend is
changed and no display is needed) and written atomically as PNG.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from phenom_data.atomic import atomic_path

from .aggregate import PerturbationMap
from .benchmark_common import unit_rows
from .recall import BENCHMARK_SOURCES
from .results import EvalResults, recall_metric_name

HEATMAP_COMPLEXES = 4
HEATMAP_MIN_GENES = 3
HEATMAP_MAX_GENES_PER_COMPLEX = 12


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    FigureCanvasAgg(figure)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120, bbox_inches="tight")
    return path


def _result_label(result: EvalResults) -> str:
    return f"block {result.block}" if result.block is not None else result.model


def plot_recall(results: list[EvalResults], path: str | os.PathLike, lower: float = 0.05, upper: float = 0.95) -> Path:
    """Grouped bars: recall at `(lower, upper)` per source and the paper's mean, one bar per result (block).

    The label-permutation baseline of the first result is drawn as a black tick on each group.
    """
    sources = [*BENCHMARK_SOURCES, "mean"]
    figure = Figure(figsize=(1.4 * len(sources) + 2, 4))
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(results))
    positions = np.arange(len(sources))
    for index, result in enumerate(results):
        values = [result.metrics.get(recall_metric_name(source, lower, upper), np.nan) for source in sources]
        axes.bar(positions + (index - (len(results) - 1) / 2) * width, values, width, label=_result_label(result))
    baseline = [results[0].baselines.get(recall_metric_name(source, lower, upper), np.nan) for source in sources]
    axes.scatter(positions, baseline, marker="_", s=600, color="black", label="permuted labels", zorder=3)
    axes.set_xticks(positions, sources)
    axes.set_ylabel(f"recall ({lower}, {upper})")
    axes.set_ylim(0, 1)
    axes.set_title(f"Known-relationship recall: {results[0].model}, {results[0].correction}")
    axes.legend(fontsize="small", loc="upper right")
    return _save(figure, path)


def read_complexes(path: str | os.PathLike) -> dict[str, list[str]]:
    """`{complex name: [genes]}` from a CORUM_clusters.tsv file (name, tab, space-separated gene symbols)."""
    complexes = {}
    for line in Path(path).read_text().splitlines():
        name, _, genes = line.partition("\t")
        if genes.strip():
            complexes[name] = genes.split()
    return complexes


def choose_complexes(complexes: dict[str, list[str]], map_genes, count: int = HEATMAP_COMPLEXES,
                     min_genes: int = HEATMAP_MIN_GENES) -> dict[str, list[str]]:
    """Up to `count` complexes with the most genes in the map (at least `min_genes`), sharing no gene."""
    present = set(map_genes)
    ranked = sorted(complexes.items(), key=lambda item: (-len(present.intersection(item[1])), item[0]))
    chosen, used = {}, set()
    for name, genes in ranked:
        if len(chosen) == count or len(present.intersection(genes)) < min_genes:
            break
        in_map = [gene for gene in dict.fromkeys(genes) if gene in present and gene not in used]
        if len(in_map) >= min_genes:
            chosen[name] = in_map[:HEATMAP_MAX_GENES_PER_COMPLEX]
            used.update(chosen[name])
    return chosen


def plot_complex_heatmap(gene_map: PerturbationMap, clusters_path: str | os.PathLike,
                         path: str | os.PathLike, title: str = "") -> Path | None:
    """Cosine similarities between the genes of a few CORUM complexes, grouped by complex.

    Returns the PNG path, or None when no complex has `HEATMAP_MIN_GENES` genes in the map.
    """
    chosen = choose_complexes(read_complexes(clusters_path), gene_map.labels)
    if not chosen:
        return None
    row_of = {label: row for row, label in enumerate(gene_map.labels)}
    genes = [gene for members in chosen.values() for gene in members]
    unit = unit_rows(gene_map.features[[row_of[gene] for gene in genes]])
    similarity = unit @ unit.T
    size = 3 + 0.22 * len(genes)
    figure = Figure(figsize=(size + 3, size))
    axes = figure.add_subplot()
    image = axes.imshow(similarity, cmap="RdBu_r", vmin=-1, vmax=1)
    axes.set_xticks(range(len(genes)), genes, rotation=90, fontsize=7)
    axes.set_yticks(range(len(genes)), genes, fontsize=7)
    boundary = -0.5
    for name, members in chosen.items():
        axes.add_patch(Rectangle((boundary, boundary), len(members), len(members), fill=False, edgecolor="black",
                                 linewidth=1.2))
        axes.text(len(genes), boundary + len(members) / 2, name[:40], fontsize=7, va="center", ha="left")
        boundary += len(members)
    figure.colorbar(image, ax=axes, label="cosine similarity", shrink=0.6, pad=0.22, fraction=0.03)
    axes.set_title(title or "Cosine similarity within known complexes (CORUM)")
    return _save(figure, path)


def plot_probe_curve(balanced_accuracy: dict[int, float], chance: float, best_block: int, path: str | os.PathLike,
                     title: str = "") -> Path:
    """Balanced accuracy of the linear probe vs block (numbered from 1), chance as a dashed line, the best block
    circled."""
    blocks = sorted(balanced_accuracy)
    values = [balanced_accuracy[block] for block in blocks]
    figure = Figure(figsize=(max(4.0, 0.35 * len(blocks) + 2.5), 3.6))
    axes = figure.add_subplot()
    axes.plot(blocks, values, marker="o", label="held-out experiments")
    axes.axhline(chance, color="gray", linestyle="--", label=f"chance ({chance:.3f})")
    axes.scatter([best_block], [balanced_accuracy[best_block]], s=160, facecolors="none", edgecolors="red",
                 zorder=3, label=f"best: block {best_block}")
    axes.set_xlabel("block")
    axes.set_ylabel("balanced accuracy")
    axes.set_xticks(blocks)
    axes.set_ylim(0, max(1.0, max(values)) * 1.02)
    axes.set_title(title or "Linear probe")
    axes.legend(fontsize="small")
    return _save(figure, path)


__all__ = [
    "plot_probe_curve",
    "plot_recall",
    "read_complexes",
    "choose_complexes",
    "plot_complex_heatmap",
]
