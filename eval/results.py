"""The results JSON of `phenom eval` and `phenom probe` (DESIGN §6): the one schema, written here and read here
(`hub_cards` imports it), metric names, and merging benchmark outputs into it.

One file per evaluated block (`DIR/results.json`, or `DIR/block<k>/results.json` for several):

    {"model": str, "dataset": str, "block": int | null, "correction": str | null,
     "metrics": {name: value}, "metrics_std": {name: std}, "baselines": {name: value},
     "counts": {name: int | str}, "seeds": [int, ...], "versions": {package: version}}

Recall metrics are named `recall_<SOURCE>_<lower>_<upper>` with EFAAR's number format (`recall_CORUM_0.05_0.95`,
`recall_CORUM_0.1_0.9`); `recall_mean_<lower>_<upper>` is the mean over CORUM, HuMAP, Reactome and StringDB, the
paper's "Recall"; each benchmark's names are in its registry entry (`eval/benchmarks/`). Every number written is
finite: a NaN or infinite value is an error, never written. Files are written atomically (a temporary name in the
same folder, then a rename).

Reading is tolerant where nothing can go wrong (extra keys are kept, optional sections may be missing, a block may
be a digit string or given only by its `block<k>` folder, a null or NaN std or baseline counts as "not reported")
and strict where a card or a leaderboard would otherwise print a wrong number: a metric without a finite numeric
value, a missing model or dataset, or a block that disagrees with its folder is an error naming the file.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from phenom_data.atomic import atomic_write_text

from .context import BenchmarkResult

RESULTS_FILENAME = "results.json"
_BLOCK_FOLDER = re.compile(r"^block(\d+)$")
# The sources averaged into the paper's "Recall" (SIGNOR ships with EFAAR but the paper leaves it out).
PAPER_RECALL_SOURCES = ("CORUM", "HuMAP", "Reactome", "StringDB")
_VERSIONED_PACKAGES = ("numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "copairs", "torch", "transformers")


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


class ResultsError(ValueError):
    """A results file that cannot be written or reported faithfully (the message names the file and the problem)."""


@dataclass
class EvalResults:
    """The content of one `results.json` (DESIGN §6).

    Attributes:
        model: the model the benchmarks ran on (a name, a directory or a Hub id, as the writer recorded it).
        dataset: the dataset the benchmarks ran on (a Hub id, a name or a path).
        block: the encoder block the embeddings came from (numbered from 1), or `None` for results that span
            blocks (the linear probe) or files without a block.
        correction: the batch correction (`none`, `pca-centerscale`, `tvn`, `centerscale`), or `None`.
        metrics: metric name -> finite value (float, or int for counts such as `probe_best_block`).
        metrics_std: metric name -> standard deviation over seeds, only where one was reported.
        baselines: metric name -> the value of the random baseline, only where one was reported.
        counts, seeds, versions: sizes behind the metrics, the seeds, package versions.
        path: the file it was read from (None when built in memory; never written).
        extra: any other top-level keys of a file read, kept untouched and written back.
    """

    model: str
    dataset: str
    block: int | None
    correction: str | None
    metrics: dict = field(default_factory=dict)
    metrics_std: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    seeds: Any = field(default_factory=list)
    versions: Any = field(default_factory=package_versions)
    path: Path | None = field(default=None, repr=False, compare=False)
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def block_label(self) -> str:
        """`block 3`, or `all blocks` for results that span blocks."""
        return "all blocks" if self.block is None else f"block {self.block}"

    def check(self) -> None:
        """Raise `ResultsError` naming any metric, std or baseline that is not a finite number, a metric name with
        '/', or a block that is not an integer >= 1."""
        where = self.path or "results"
        if not self.metrics:
            raise ResultsError(f"{where}: no metric was computed; nothing to write")
        for name, value in self.metrics.items():
            _metric_value(_metric_name(name, where), value, where)
        for part in ("metrics_std", "baselines"):
            for name, value in getattr(self, part).items():
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                    raise ResultsError(f"{where}: {part}[{name!r}] = {value!r} is not a finite number; refusing to "
                                       "write it")
        _block(self.block, Path(where))

    def to_dict(self) -> dict:
        """A JSON-ready dict: numbers as Python floats and ints (numpy scalars converted)."""
        self.check()
        data = asdict(self)
        del data["path"], data["extra"]
        # Integer metrics stay integers (`probe_best_block` is a block number, which cards print as one).
        data["metrics"] = {name: int(value) if isinstance(value, numbers.Integral) else float(value)
                           for name, value in data["metrics"].items()}
        for part in ("metrics_std", "baselines"):
            data[part] = {name: float(value) for name, value in data[part].items()}
        data["counts"] = {name: int(value) if isinstance(value, numbers.Integral) else value
                          for name, value in data["counts"].items()}
        if data["seeds"] is not None:
            data["seeds"] = [int(seed) for seed in data["seeds"]]
        return {**data, **{key: value for key, value in self.extra.items() if key not in data}}


def write_results(path: str | os.PathLike, results: EvalResults) -> Path:
    """Write `results` as JSON at `path` atomically; returns the path."""
    text = json.dumps(results.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def results_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand each argument to results files: a file as given; a directory to its `results.json`, else to its
    `block<k>/results.json` files in block order. A path that holds neither is an error."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            if (path / RESULTS_FILENAME).is_file():
                found.append(path / RESULTS_FILENAME)
                continue
            blocks = [(int(match.group(1)), child / RESULTS_FILENAME) for child in path.iterdir()
                      if (match := _BLOCK_FOLDER.match(child.name)) and (child / RESULTS_FILENAME).is_file()]
            if not blocks:
                raise ResultsError(f"{path} holds no {RESULTS_FILENAME} and no block<k>/{RESULTS_FILENAME}")
            found.extend(file for _, file in sorted(blocks))
        else:
            raise ResultsError(f"results path {path} does not exist")
    return found


def read_results(path: str | os.PathLike) -> EvalResults:
    """Read and check one results JSON (see the module docstring for what is checked)."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file {path} does not exist")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(document, Mapping):
        raise ResultsError(f"{path} must hold a JSON object, found {type(document).__name__}")

    model = _required_text(document, "model", path)
    dataset = _required_text(document, "dataset", path)
    metrics = document.get("metrics")
    if not isinstance(metrics, Mapping) or not metrics:
        raise ResultsError(f"{path} has no metrics: 'metrics' must be a non-empty object of name -> value")
    correction = document.get("correction")
    if correction is not None and not isinstance(correction, str):
        raise ResultsError(f"{path}: 'correction' must be a string or null, found {correction!r}")
    counts = document.get("counts") or {}
    if not isinstance(counts, Mapping):
        raise ResultsError(f"{path}: 'counts' must be an object, found {type(counts).__name__}")
    known = {item.name for item in fields(EvalResults)} - {"path", "extra"}
    return EvalResults(
        model=model,
        dataset=dataset,
        block=_block(document.get("block"), path),
        correction=correction or None,
        metrics={_metric_name(name, path): _metric_value(name, value, path) for name, value in metrics.items()},
        metrics_std=_optional_numbers(document, "metrics_std", path),
        baselines=_optional_numbers(document, "baselines", path),
        counts=dict(counts),
        seeds=document.get("seeds"),
        versions=document.get("versions"),
        path=path,
        extra={key: value for key, value in document.items() if key not in known},
    )


def read_all_results(paths: Iterable[str | os.PathLike]) -> list[EvalResults]:
    """`read_results` for every file `results_files(paths)` finds; at least one is required."""
    files = results_files(paths)
    if not files:
        raise ResultsError("no results files given")
    return [read_results(file) for file in files]


# ----------------------------------------------------------------------------------------------- field checks
def _required_text(document: Mapping, key: str, path: Path) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ResultsError(f"{path} has no {key!r}: a non-empty string is required, found {value!r}")
    return value.strip()


def _block(value: Any, path: Path) -> int | None:
    """The block as an int >= 1 (a digit string is accepted); when absent, the `block<k>` folder's k, if any."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ResultsError(f"{path}: 'block' must be an integer >= 1 (blocks are numbered from 1) or null, "
                           f"found {value!r}")
    folder = _BLOCK_FOLDER.match(path.parent.name)
    folder_block = int(folder.group(1)) if folder else None
    if value is not None and folder_block is not None and value != folder_block:
        raise ResultsError(f"{path}: 'block' is {value} but the file sits in folder {path.parent.name}")
    return value if value is not None else folder_block


def _metric_name(name: Any, path: Path) -> str:
    # "/" separates metric, block and correction in a model-index metric type (hub_cards.card).
    if not isinstance(name, str) or not name or "/" in name:
        raise ResultsError(f"{path}: metric name {name!r} must be a non-empty string without '/'")
    return name


def _metric_value(name: str, value: Any, path: Path) -> float | int:
    if value is None:
        raise ResultsError(f"{path}: metric {name!r} has no value (null); a benchmark that could not be computed "
                           "must be left out of 'metrics', not reported without a value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultsError(f"{path}: metric {name!r} must be a number, found {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ResultsError(f"{path}: metric {name!r} has no value ({value}); only finite numbers can be reported")
    return value


def _optional_numbers(document: Mapping, key: str, path: Path) -> dict[str, float]:
    """`metrics_std` / `baselines`: null or NaN entries mean "not reported" and are dropped; text is an error."""
    section = document.get(key) or {}
    if not isinstance(section, Mapping):
        raise ResultsError(f"{path}: {key!r} must be an object of name -> number, found {type(section).__name__}")
    numbers: dict[str, float] = {}
    for name, value in section.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ResultsError(f"{path}: {key}[{name!r}] must be a number or null, found {value!r}")
        if math.isfinite(value):
            numbers[str(name)] = value
    return numbers


__all__ = [
    "PAPER_RECALL_SOURCES",
    "RESULTS_FILENAME",
    "EvalResults",
    "ResultsError",
    "merge_benchmark_results",
    "package_versions",
    "read_all_results",
    "read_results",
    "recall_means",
    "recall_metric_name",
    "results_files",
    "threshold_name",
    "write_results",
]
