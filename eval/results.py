"""The results JSON of `phenom eval` (DESIGN §6), metric names, and merging benchmark outputs into it.

One file per evaluated block (`DIR/results.json`, or `DIR/block<k>/results.json` for several):

    {"model": str, "dataset": str, "block": int | null, "correction": str,
     "metrics": {name: value}, "metrics_std": {name: std}, "baselines": {name: value},
     "counts": {name: int}, "seeds": [int, ...], "versions": {package: version}}

Recall metrics are named `recall_<SOURCE>_<lower>_<upper>` with EFAAR's number format (`recall_CORUM_0.05_0.95`,
`recall_CORUM_0.1_0.9`); `recall_mean_<lower>_<upper>` is the mean over CORUM, HuMAP, Reactome and StringDB, the
paper's "Recall". Every number is finite: a NaN or infinite value is an error, never written. Files are written
atomically (a temporary name in the same folder, then a rename).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

from phenom_data.atomic import atomic_write_text

from .context import BenchmarkResult

# The sources averaged into the paper's "Recall" (SIGNOR ships with EFAAR but the paper leaves it out).
PAPER_RECALL_SOURCES = ("CORUM", "HuMAP", "Reactome", "StringDB")
_VERSIONED_PACKAGES = ("numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "torch", "transformers")


def threshold_name(lower: float, upper: float) -> str:
    """EFAAR's number format: `(0.05, 0.95)` -> `0.05_0.95`, `(0.1, 0.9)` -> `0.1_0.9`."""
    return f"{float(lower)}_{float(upper)}"


def recall_metric_name(source: str, lower: float, upper: float) -> str:
    return f"recall_{source}_{threshold_name(lower, upper)}"


def recall_means(values: dict, thresholds) -> dict:
    """`{recall_mean_<l>_<u>: mean over PAPER_RECALL_SOURCES}` for each threshold pair all four sources have."""
    means = {}
    for lower, upper in thresholds:
        names = [recall_metric_name(source, lower, upper) for source in PAPER_RECALL_SOURCES]
        if all(name in values for name in names):
            means[recall_metric_name("mean", lower, upper)] = sum(values[name] for name in names) / len(names)
    return means


def merge_benchmark_results(results) -> BenchmarkResult:
    """Merge `BenchmarkResult`s into one; a name produced twice is an error (two benchmarks disagreeing)."""
    merged = BenchmarkResult({}, {}, {}, {})
    for result in results:
        for merged_part, part, label in zip(merged, result, BenchmarkResult._fields, strict=True):
            clash = sorted(set(merged_part) & set(part))
            if clash:
                raise ValueError(f"two benchmarks both report {label} {clash}")
            merged_part.update(part)
    return merged


def phenom_distribution() -> str | None:
    """The installed distribution that provides Phenom's packages (pyproject's `name`), or None without an install."""
    names = importlib_metadata.packages_distributions().get("modeling_phenom")
    return names[0] if names else None


def package_versions() -> dict:
    """`{distribution: version}` of Phenom (under its distribution name) and the libraries results depend on."""
    versions = {}
    for name in (phenom_distribution(), *_VERSIONED_PACKAGES):
        if name is None:
            continue
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class EvalResults:
    """The content of one `results.json` (DESIGN §6)."""

    model: str
    dataset: str
    block: int | None
    correction: str
    metrics: dict = field(default_factory=dict)
    metrics_std: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    seeds: list = field(default_factory=list)
    versions: dict = field(default_factory=package_versions)

    def check(self) -> None:
        """Raise `ValueError` naming any metric, std or baseline that is not a finite number."""
        for part in ("metrics", "metrics_std", "baselines"):
            for name, value in getattr(self, part).items():
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                    raise ValueError(f"{part}[{name!r}] = {value!r} is not a finite number; refusing to write it")
        if not self.metrics:
            raise ValueError("no metric was computed; nothing to write")

    def to_dict(self) -> dict:
        """A JSON-ready dict: numbers as Python floats and ints (numpy scalars converted)."""
        self.check()
        data = asdict(self)
        # Integer metrics stay integers (`probe_best_block` is a block number, which cards print as one).
        data["metrics"] = {name: int(value) if isinstance(value, numbers.Integral) else float(value)
                           for name, value in data["metrics"].items()}
        for part in ("metrics_std", "baselines"):
            data[part] = {name: float(value) for name, value in data[part].items()}
        data["counts"] = {name: int(value) if isinstance(value, numbers.Integral) else value
                          for name, value in data["counts"].items()}
        data["seeds"] = [int(seed) for seed in data["seeds"]]
        return data


def write_results(path: str | os.PathLike, results: EvalResults) -> Path:
    """Write `results` as JSON at `path` atomically; returns the path."""
    text = json.dumps(results.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def read_results(path: str | os.PathLike) -> EvalResults:
    data = json.loads(Path(path).read_text())
    missing = [name for name in EvalResults.__dataclass_fields__ if name not in data]
    if missing:
        raise ValueError(f"{path}: not a Phenom results file, missing {missing}")
    return EvalResults(**{name: data[name] for name in EvalResults.__dataclass_fields__})


__all__ = [
    "PAPER_RECALL_SOURCES",
    "threshold_name",
    "recall_metric_name",
    "recall_means",
    "merge_benchmark_results",
    "package_versions",
    "EvalResults",
    "write_results",
    "read_results",
]
