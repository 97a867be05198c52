"""The benchmarks of `phenom eval` as a registry: one file per benchmark, found by name, read by `hub_cards`.

A benchmark is a module `eval/benchmarks/<name>.py` that defines

    BENCHMARK = Benchmark(name="<name>", order=..., families=(MetricFamily(pattern, family, description), ...),
                          run=run, plot=plot, title=title)

- `run(context: EvalContext) -> BenchmarkResult`: the four dicts of the results JSON (metrics, metrics_std,
  baselines, counts); `BenchmarkNotApplicable` skips it with the reason in `counts` as `<name>_not_applicable`.
  `None` for results another command writes (the linear probe's, `phenom probe`).
- `plot(context, results, folder, title) -> list[Path]`: its figures beside the results file (may be `None`).
- `title(metric) -> str | None`: a readable title of one of its metric names (cards, leaderboards).
- `families`: which metric names are its (regular expressions, tried in order) with a family name and a one-line
  description (the cards' "what the metrics mean").

`phenom eval` runs `benchmarks_to_run()` in `order`; `hub_cards` orders, titles and describes metrics through
`metric_family`, `metric_title` and `sort_metric_names`. Adding a benchmark is adding one file: nothing else lists
them.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MetricFamily:
    """Metric names matching `pattern` (a regular expression, matched from the start) belong to `family`."""

    pattern: str
    family: str
    description: str

    def matches(self, name: str) -> bool:
        return re.match(self.pattern, name) is not None


@dataclass(frozen=True)
class Benchmark:
    """One registry entry (module docstring)."""

    name: str
    order: int
    families: tuple[MetricFamily, ...]
    run: Callable | None = None
    plot: Callable | None = None
    title: Callable[[str], str | None] = field(default=lambda name: None)


@functools.cache
def registry() -> dict[str, Benchmark]:
    """Every benchmark module's `BENCHMARK`, by name, in `order` (modules without one are helpers)."""
    found: dict[str, Benchmark] = {}
    for module_info in pkgutil.iter_modules(__path__):
        benchmark = getattr(importlib.import_module(f"{__name__}.{module_info.name}"), "BENCHMARK", None)
        if benchmark is None:
            continue
        if benchmark.name != module_info.name:
            raise ValueError(f"eval/benchmarks/{module_info.name}.py registers {benchmark.name!r}: the file is "
                             "named after its benchmark")
        found[benchmark.name] = benchmark
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


def benchmarks_to_run() -> dict[str, Benchmark]:
    """The benchmarks `phenom eval` runs, in order (those with a `run`)."""
    return {name: benchmark for name, benchmark in registry().items() if benchmark.run is not None}


def _families() -> list[tuple[Benchmark, MetricFamily]]:
    return [(benchmark, family) for benchmark in registry().values() for family in benchmark.families]


def benchmark_of(name: str) -> Benchmark | None:
    """The benchmark that reports metric `name`, if any."""
    return next((benchmark for benchmark, family in _families() if family.matches(name)), None)


def metric_family(name: str) -> tuple[int, str, str]:
    """`(order, family, description)` of a metric name; unknown names sort last."""
    families = _families()
    for order, (_, family) in enumerate(families):
        if family.matches(name):
            return order, family.family, family.description
    return len(families), "other", "reported by the evaluation as is"


def metric_title(name: str) -> str:
    """A readable title (`recall_CORUM_0.05_0.95` -> `CORUM recall (5 % / 95 %)`); unknown names with spaces."""
    benchmark = benchmark_of(name)
    title = benchmark.title(name) if benchmark is not None else None
    return title or name.replace("_", " ")


def sort_metric_names(names: Iterable[str]) -> list[str]:
    """Metric names in reading order: by family (registry order), numbers in a name compared as numbers (probe
    blocks), then alphabetically."""

    def key(name: str):
        numbers = tuple(int(part) for part in re.findall(r"block(\d+)$", name))
        return metric_family(name)[0], numbers, name

    return sorted(set(names), key=key)


__all__ = [
    "Benchmark",
    "MetricFamily",
    "benchmark_of",
    "benchmarks_to_run",
    "metric_family",
    "metric_title",
    "registry",
    "sort_metric_names",
]
