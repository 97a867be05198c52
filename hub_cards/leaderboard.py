"""`phenom leaderboard`: one table of benchmark results across models and blocks (markdown, CSV, PNG).

    phenom leaderboard --results runs/eval_a runs/eval_b runs/probe_a --out leaderboard/

One row per results file: `model`, `block`, then one column per metric (DESIGN §6: the CSV has exactly these
columns). Rows are sorted by `--sort` (default `recall_mean_0.05_0.95` when present), best first; the markdown adds,
for every metric, the rows ranked by that metric, and the PNG has one panel per metric with the bars sorted by it
and the random baseline as a dashed line where all rows share one. Every metric counts as higher-is-better (all
benchmarks of DESIGN §6 are); `probe_best_block` is a block number, shown but never ranked.

When the inputs mix batch corrections or datasets, the model label says which (`phenom-s16 [tvn]`), so that no two
rows look alike; two results files with the same model, block, correction and dataset are an error.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eval.benchmarks import metric_title, sort_metric_names
from eval.results import EvalResults, read_all_results
from phenom_data.atomic import atomic_write_bytes, atomic_write_text

from .references import dataset_identity

DEFAULT_SORT_METRIC = "recall_mean_0.05_0.95"
UNRANKED_METRICS = ("probe_best_block",)
MAX_PLOT_PANELS = 12
_PROBE_BLOCK = re.compile(r"^probe_balanced_accuracy_block\d+$")


class LeaderboardError(ValueError):
    """Results that cannot be laid out in one leaderboard (the message names the files)."""


@dataclass(frozen=True)
class LeaderboardRow:
    """One results file as a leaderboard row: `model` label, `block` (None across blocks), metric values."""

    model: str
    block: int | None
    metrics: dict[str, float | int]
    baselines: dict[str, float]
    source: Path


@dataclass(frozen=True)
class Leaderboard:
    """Rows sorted by `sort_metric` (best first) and the metric columns in reading order."""

    rows: list[LeaderboardRow]
    metrics: list[str]
    sort_metric: str

    def ranking(self, metric: str) -> list[LeaderboardRow]:
        """The rows that report `metric`, best first (ties keep the table order)."""
        return sorted((row for row in self.rows if metric in row.metrics), key=lambda row: -row.metrics[metric])

    def shared_baseline(self, metric: str) -> float | None:
        """The random baseline of `metric` when every row that reports one reports the same value."""
        values = {row.baselines[metric] for row in self.rows if metric in row.baselines}
        return values.pop() if len(values) == 1 else None


def build_leaderboard(results: Sequence[EvalResults], sort_metric: str | None = None,
                      metrics: Sequence[str] | None = None) -> Leaderboard:
    """Lay out `results` (module docstring); `metrics` restricts and orders the columns."""
    if not results:
        raise LeaderboardError("no results to put in the leaderboard")
    rows = [LeaderboardRow(_label(result, results), result.block, dict(result.metrics), dict(result.baselines),
                           result.path) for result in results]
    seen: dict[tuple[str, int | None], Path] = {}
    for row in rows:
        key = (row.model, row.block)
        if key in seen:
            raise LeaderboardError(f"two results files for model {row.model!r}, "
                                   f"{'all blocks' if row.block is None else f'block {row.block}'}: {seen[key]} and "
                                   f"{row.source}")
        seen[key] = row.source
    available = sort_metric_names(name for row in rows for name in row.metrics)
    if metrics:
        missing = [name for name in metrics if name not in available]
        if missing:
            raise LeaderboardError(f"--metrics names metrics no results file reports: {', '.join(missing)}; "
                                   f"available: {', '.join(available)}")
        columns = list(metrics)
    else:
        columns = available
    sortable = [name for name in columns if name not in UNRANKED_METRICS]
    if sort_metric is None:
        sort_metric = DEFAULT_SORT_METRIC if DEFAULT_SORT_METRIC in sortable else (sortable or columns)[0]
    elif sort_metric not in sortable:
        raise LeaderboardError(f"cannot sort by {sort_metric!r}: not a ranked metric of these results "
                               f"(ranked metrics: {', '.join(sortable)})")
    # Rows without the sort metric go last; ties (and those rows) keep model, then block order.
    ordered = sorted(rows, key=lambda row: (row.model, row.block is None, row.block or 0))
    ordered.sort(key=lambda row: -row.metrics[sort_metric] if sort_metric in row.metrics else math.inf)
    return Leaderboard(ordered, columns, sort_metric)


# ----------------------------------------------------------------------------------------------- outputs
def leaderboard_csv(board: Leaderboard) -> str:
    """`model`, `block`, then one column per metric; an empty cell where a row has no value."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "block", *board.metrics])
    for row in board.rows:
        writer.writerow([row.model, "" if row.block is None else row.block,
                         *[repr(row.metrics[name]) if name in row.metrics else "" for name in board.metrics]])
    return buffer.getvalue()


def leaderboard_markdown(board: Leaderboard, title: str = "Leaderboard") -> str:
    """The table (best value of each ranked metric in bold), the shared random baselines, and per-metric rankings."""
    best = {name: ranking[0].metrics[name] for name in board.metrics
            if name not in UNRANKED_METRICS and (ranking := board.ranking(name))}
    lines = [f"# {title}", "", f"Sorted by `{board.sort_metric}` (higher is better), best first; the best value of "
             "each metric is in bold.", "",
             "| model | block | " + " | ".join(f"`{name}`" for name in board.metrics) + " |",
             "| --- | --- | " + " | ".join("---" for _ in board.metrics) + " |"]
    for row in board.rows:
        cells = []
        for name in board.metrics:
            if name not in row.metrics:
                cells.append("—")
                continue
            text = _format(row.metrics[name])
            cells.append(f"**{text}**" if name in best and row.metrics[name] == best[name] else text)
        block = "all" if row.block is None else str(row.block)
        lines.append(f"| {_escape(row.model)} | {block} | " + " | ".join(cells) + " |")
    baselines = [(name, value) for name in board.metrics if (value := board.shared_baseline(name)) is not None]
    if baselines:
        lines += ["", "Random baseline: " + ", ".join(f"`{name}` {_format(value)}" for name, value in baselines) + "."]
    lines += ["", "## Ranking per metric", ""]
    for name in board.metrics:
        if name in UNRANKED_METRICS:
            continue
        ranked = [f"{_escape(row.model)} ({'all blocks' if row.block is None else f'block {row.block}'}) "
                  f"{_format(row.metrics[name])}" for row in board.ranking(name)]
        lines.append(f"- `{name}` ({metric_title(name)}): " + " > ".join(ranked))
    return "\n".join(lines) + "\n"


def leaderboard_png(board: Leaderboard) -> bytes:
    """One panel per metric (bars sorted by it, baseline dashed where shared), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = plotted_metrics(board)
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 0.45 * len(board.rows) * rows + 1.6 * rows),
                                squeeze=False)
    for axis, name in zip(axes.flat, metrics, strict=False):
        ranking = board.ranking(name)[::-1]  # barh draws bottom-up: best on top
        labels = [f"{row.model} · {'all' if row.block is None else f'b{row.block}'}" for row in ranking]
        axis.barh(range(len(ranking)), [row.metrics[name] for row in ranking], color="#4c72b0")
        axis.set_yticks(range(len(ranking)), labels, fontsize=8)
        axis.set_title(name, fontsize=9)
        if (baseline := board.shared_baseline(name)) is not None:
            axis.axvline(baseline, color="#c44e52", linestyle="--", linewidth=1, label="random baseline", zorder=3)
            axis.legend(fontsize=7, loc="lower right")
    for axis in list(axes.flat)[len(metrics):]:
        axis.set_visible(False)
    figure.suptitle(f"Leaderboard (sorted per metric; rows sorted by {board.sort_metric})", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def plotted_metrics(board: Leaderboard) -> list[str]:
    """The ranked metrics, per-block probe accuracies left out when other metrics exist; at most 12 panels."""
    ranked = [name for name in board.metrics if name not in UNRANKED_METRICS]
    headline = [name for name in ranked if not _PROBE_BLOCK.match(name)]
    return (headline or ranked)[:MAX_PLOT_PANELS]


def write_leaderboard(board: Leaderboard, out_dir: str | Path, title: str = "Leaderboard") -> dict[str, Path]:
    """`leaderboard.md`, `leaderboard.csv` and `leaderboard.png` in `out_dir`, each written atomically."""
    out_dir = Path(out_dir)
    return {
        "markdown": atomic_write_text(out_dir / "leaderboard.md", leaderboard_markdown(board, title)),
        "csv": atomic_write_text(out_dir / "leaderboard.csv", leaderboard_csv(board)),
        "png": atomic_write_bytes(out_dir / "leaderboard.png", leaderboard_png(board)),
    }


# ----------------------------------------------------------------------------------------------- helpers
def _label(result: EvalResults, everything: Sequence[EvalResults]) -> str:
    """The model, plus the correction and dataset when the inputs mix several."""
    label = result.model
    # Results without a correction (the probe's) span corrections: they never make a label need one.
    if result.correction and len({other.correction for other in everything if other.correction}) > 1:
        label += f" [{result.correction}]"
    if len({dataset_identity(other.dataset)[0] for other in everything}) > 1:
        label += f" [{dataset_identity(result.dataset)[1]}]"
    return label


def _format(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


# ----------------------------------------------------------------------------------------------- the command's work
@dataclass(frozen=True)
class LeaderboardResult:
    """What `leaderboard` built and wrote: the table and its files (`markdown`, `csv`, `png` -> path)."""

    board: Leaderboard
    files: dict[str, Path]


def leaderboard(results: Sequence[str | Path], out: str | Path, *, sort: str | None = None,
                metrics: Sequence[str] | None = None, title: str = "Leaderboard") -> LeaderboardResult:
    """`phenom leaderboard`: read the results files (or folders holding them), build the table (`build_leaderboard`:
    rows sorted by `sort`, columns `metrics` in that order, default all) and write it into `out`
    (`write_leaderboard`). Raises `ResultsError` / `LeaderboardError` (`ValueError`s) for bad input, before writing."""
    board = build_leaderboard(read_all_results(results), sort_metric=sort, metrics=metrics)
    return LeaderboardResult(board, write_leaderboard(board, out, title))


__all__ = [
    "DEFAULT_SORT_METRIC",
    "Leaderboard",
    "LeaderboardError",
    "LeaderboardResult",
    "LeaderboardRow",
    "build_leaderboard",
    "leaderboard",
    "leaderboard_csv",
    "leaderboard_markdown",
    "leaderboard_png",
    "plotted_metrics",
    "write_leaderboard",
]
