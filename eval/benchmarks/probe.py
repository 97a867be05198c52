"""The block-wise linear probe (paper.md §3): run by `phenom probe` (`eval/probe.py`), which writes its own results
file; registered here for its metric names and titles."""

from __future__ import annotations

import re

from . import Benchmark, MetricFamily


def title(name: str) -> str | None:
    if match := re.match(r"^probe_balanced_accuracy_block(\d+)$", name):
        return f"linear probe balanced accuracy, block {match.group(1)}"
    return "linear probe best block" if name == "probe_best_block" else None


BENCHMARK = Benchmark(
    name="probe",
    order=90,
    families=(MetricFamily(r"probe_", "linear probe",
                           "block-wise linear probe: class-balanced logistic regression scored by balanced accuracy "
                           "on held-out experiments; probe_best_block is the block it recommends"),),
    title=title,
)
