"""Plots of the compound-gene, replicate-consistency and mAP benchmarks (PNG, matplotlib's Agg canvas).

- `plot_compound_gene`: AP and ROC-AUC per concentration (and `max`) with their standard deviation over seeds,
  beside the random baseline on the same sampled sets (paper Table 3 as a figure).
- `plot_replicate_cosines`: the replicate and null cosine distributions the KS and Cramér-von Mises statistics
  compare (paper.md §4b).
- `plot_mean_average_precision`: mAP against -log10 of the corrected p-value, one point per perturbation or label
  (copairs' figure).

All take plain values (a results JSON's dicts, or arrays), write the file atomically and return its path. They use
a `Figure` with an Agg canvas directly, so they never touch pyplot's global state or the user's backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eval.replicate_consistency import ReplicateCosines
from phenom_data.atomic import atomic_path

COMPOUND_GENE_PREFIX = "compound_gene_"


def _save_atomically(figure: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(figure)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120, bbox_inches="tight")
    return Path(path)


def _concentration_order(names: list[str]) -> list[str]:
    """The concentrations (`1.0`, ..., then `max`) among metric-name suffixes; the statistics over compounds
    (`1.0_median`, ...) are left out."""
    def is_number(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    numeric = sorted((name for name in names if is_number(name)), key=float)
    return numeric + (["max"] if "max" in names else [])


def plot_compound_gene(
    metrics: Mapping[str, float],
    metrics_std: Mapping[str, float],
    baselines: Mapping[str, float],
    path: str | Path,
    title: str = "Compound-gene activity",
) -> Path:
    """Bars of `compound_gene_ap_<conc>` and `compound_gene_auc_<conc>` (mean over compounds, +- std over seeds) vs
    random.

    Args:
        metrics, metrics_std, baselines: the dicts of a results JSON (or a `BenchmarkResult`); baseline standard
            deviations are read from `metrics_std["<name>_baseline"]` when present.
        path: the PNG to write.
    """
    ap_prefix = f"{COMPOUND_GENE_PREFIX}ap_"
    concentrations = _concentration_order(
        [name.removeprefix(ap_prefix) for name in metrics if name.startswith(ap_prefix) and "_baseline" not in name]
    )
    if not concentrations:
        raise ValueError("no compound_gene_ap_<concentration> metric to plot")
    figure = Figure(figsize=(max(6.0, 1.0 + 0.9 * len(concentrations)), 6.0))
    positions = np.arange(len(concentrations))
    for row, (kind, label) in enumerate((("ap", "average precision"), ("auc", "ROC-AUC"))):
        axes = figure.add_subplot(2, 1, row + 1)
        names = [f"{COMPOUND_GENE_PREFIX}{kind}_{concentration}" for concentration in concentrations]
        for offset, source, errors, legend in (
            (-0.2, metrics, metrics_std, "model"),
            (0.2, baselines, {name: metrics_std.get(f"{name}_baseline", 0.0) for name in names}, "random baseline"),
        ):
            values = [source.get(name, np.nan) for name in names]
            axes.bar(positions + offset, values, width=0.4, yerr=[errors.get(name, 0.0) for name in names],
                     capsize=3, label=legend)
        axes.set_ylabel(label)
        axes.set_xticks(positions, [f"{c} µM" if c != "max" else "max" for c in concentrations])
        if row == 0:
            axes.set_title(title)
            axes.legend(loc="upper left", fontsize="small")
    figure.supxlabel("compound concentration (bars: mean, whiskers: std over seeds)", fontsize="small")
    return _save_atomically(figure, path)


def plot_replicate_cosines(
    cosines: ReplicateCosines,
    path: str | Path,
    ks: float | None = None,
    cm: float | None = None,
    title: str = "Replicate consistency",
) -> Path:
    """Overlaid density histograms of replicate-pair and random-pair cosines, with KS / CM in the legend."""
    if len(cosines.replicate) == 0 or len(cosines.null) == 0:
        raise ValueError("both cosine distributions must be non-empty to plot them")
    figure = Figure(figsize=(6.5, 4.0))
    axes = figure.add_subplot(1, 1, 1)
    bins = np.linspace(-1.0, 1.0, 81)
    axes.hist(cosines.null, bins=bins, density=True, alpha=0.6,
              label=f"different perturbations, different batches (n={len(cosines.null)})")
    axes.hist(cosines.replicate, bins=bins, density=True, alpha=0.6,
              label=f"same perturbation, different batches (n={len(cosines.replicate)})")
    statistics = ", ".join(f"{name} {value:.3g}" for name, value in (("KS", ks), ("CM", cm)) if value is not None)
    axes.set_title(f"{title}{': ' + statistics if statistics else ''}")
    axes.set_xlabel("cosine similarity of profiles")
    axes.set_ylabel("density")
    axes.legend(fontsize="small")
    return _save_atomically(figure, path)


def plot_mean_average_precision(table, path: str | Path, title: str = "Mean average precision") -> Path:
    """Scatter of `mean_average_precision` vs -log10 `corrected_p_value`, significant points (corrected p < 0.05)
    coloured, the threshold dashed; the title gives the significant fraction.

    Args:
        table: one row per perturbation or label with `mean_average_precision`, `corrected_p_value` and
            `below_corrected_p` (copairs' `mean_average_precision` columns).
    """
    if len(table) == 0:
        raise ValueError("no mAP rows to plot")
    figure = Figure(figsize=(6.0, 4.2))
    axes = figure.add_subplot(1, 1, 1)
    significant = table["below_corrected_p"].to_numpy(dtype=bool)
    log_p = -np.log10(table["corrected_p_value"].to_numpy(dtype=np.float64))
    values = table["mean_average_precision"].to_numpy(dtype=np.float64)
    for mask, label in ((~significant, "corrected p >= 0.05"), (significant, "corrected p < 0.05")):
        axes.scatter(values[mask], log_p[mask], s=12, alpha=0.7, label=f"{label} ({int(mask.sum())})")
    axes.axhline(-np.log10(0.05), color="black", linestyle="--", linewidth=1)
    axes.set_xlabel("mAP")
    axes.set_ylabel("-log10 corrected p-value")
    axes.set_title(f"{title}\n{significant.mean():.1%} significant", fontsize="medium")
    axes.legend(fontsize="small", loc="upper left")
    return _save_atomically(figure, path)


__all__ = ["plot_compound_gene", "plot_mean_average_precision", "plot_replicate_cosines"]
