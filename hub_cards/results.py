"""Read and check the benchmark results JSON written by `phenom eval` and `phenom probe` (DESIGN §6).

One file per block and correction::

    {"model": str, "dataset": str, "block": int | null, "correction": str | null,
     "metrics": {name: number}, "metrics_std": {name: number}, "baselines": {name: number},
     "counts": {...}, "seeds": ..., "versions": {...}}

written as `DIR/results.json` (one block) or `DIR/block<k>/results.json` (several). Metric names follow EFAAR
(`recall_CORUM_0.05_0.95`, `recall_mean_0.05_0.95`, `replicate_consistency_ks`, `compound_gene_ap_max`,
`signal_consistency_fraction`, `probe_balanced_accuracy_block<k>`, `probe_best_block`, ...).

The reader is tolerant where nothing can go wrong (extra keys are kept, optional sections may be missing, a block may
be a digit string or given only by its `block<k>` folder, a null or NaN std or baseline counts as "not reported")
and strict where a card or a leaderboard would otherwise print a wrong number: a metric without a finite numeric
value, a missing model or dataset, or a block that disagrees with its folder is an error naming the file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_FILENAME = "results.json"
_BLOCK_FOLDER = re.compile(r"^block(\d+)$")
_KNOWN_KEYS = ("model", "dataset", "block", "correction", "metrics", "metrics_std", "baselines", "counts", "seeds",
               "versions")


class ResultsError(ValueError):
    """A results file that cannot be reported faithfully (the message names the file and the problem)."""


@dataclass(frozen=True)
class BenchmarkResults:
    """The checked content of one results JSON.

    Attributes:
        path: the file it was read from.
        model: the model the benchmarks ran on (a name, a directory or a Hub id, as the writer recorded it).
        dataset: the dataset the benchmarks ran on (a Hub id, a name or a path).
        block: the encoder block the embeddings came from (numbered from 1), or `None` for results that span
            blocks (the linear probe).
        correction: the batch correction (`none`, `pca-centerscale`, `tvn`, `centerscale`), or `None`.
        metrics: metric name -> finite value (float, or int for counts such as `probe_best_block`).
        metrics_std: metric name -> standard deviation over seeds, only where one was reported.
        baselines: metric name -> the value of the random baseline, only where one was reported.
        counts, seeds, versions: passed through as written (`{}`/`None` when absent).
        extra: any other top-level keys, kept untouched.
    """

    path: Path
    model: str
    dataset: str
    block: int | None
    correction: str | None
    metrics: dict[str, float | int]
    metrics_std: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    seeds: Any = None
    versions: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def block_label(self) -> str:
        """`block 3`, or `all blocks` for results that span blocks."""
        return "all blocks" if self.block is None else f"block {self.block}"


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


def read_results(path: str | Path) -> BenchmarkResults:
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

    return BenchmarkResults(
        path=path,
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
        extra={key: value for key, value in document.items() if key not in _KNOWN_KEYS},
    )


def read_all_results(paths: Iterable[str | Path]) -> list[BenchmarkResults]:
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
    "RESULTS_FILENAME",
    "BenchmarkResults",
    "ResultsError",
    "read_all_results",
    "read_results",
    "results_files",
]
