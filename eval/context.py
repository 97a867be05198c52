"""What a benchmark of `phenom eval` receives (`EvalContext`) and returns (`BenchmarkResult`).

A benchmark is a registry entry (`eval/benchmarks/<name>.py`) whose `run(context: EvalContext) -> BenchmarkResult`
`phenom eval` calls once per embeddings file, merging the four dicts into the results JSON (DESIGN §6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .aggregate import PerturbationMap
from .perturbations import WellDesign

SIGNAL_NULLS = ("auto", "negative-controls", "random-wells")
DEFAULT_MAP_NULL_SIZE = 10_000


class BenchmarkNotApplicable(ValueError):
    """The data lacks what a benchmark needs (e.g. no compound rows); `phenom eval` records the reason in `counts`
    as `<benchmark>_not_applicable` and goes on with the other benchmarks."""


class BenchmarkResult(NamedTuple):
    """Four flat dicts, merged into the results JSON under the keys of the same names.

    Args:
        metrics: `{metric name: value}` (DESIGN §6 names, e.g. `recall_CORUM_0.05_0.95`).
        metrics_std: `{metric name: standard deviation}` for metrics averaged over seeds (may be empty).
        baselines: `{metric name: value of the same metric for a random baseline}`.
        counts: `{name: int}` sizes behind the metrics (null and query sizes, wells, pairs dropped, ...).
    """

    metrics: dict
    metrics_std: dict
    baselines: dict
    counts: dict


@dataclass
class EvalContext:
    """Everything a benchmark may read, computed once per embeddings file.

    Args:
        well_features: `[num_wells, num_features]` float64 batch-corrected well embeddings.
        well_metadata: `[num_wells]` metadata rows aligned with `well_features` (the metadata CSV's columns).
        design: what every well is (perturbation, modality, concentration, controls, batch, plate), read once from
            the metadata through the column mapping (`eval/perturbations.py`); every benchmark reads it, never
            the metadata's own columns.
        perturbation_map: the aggregated map, one row per (perturbation type, perturbation, concentration).
        annotations_dir: folder of the annotation files (`CORUM.txt`, ..., `compound_gene_interactions.csv`).
        null: `genes` or `all-rows`, the null of the known-relationship recall.
        seeds: seeds for every random baseline or sampling, the same for every benchmark but compound-gene.
        compound_gene_seeds: seeds of the compound-gene negative sampling (the RxRx3-core notebook's 0..99).
        correction: the batch correction applied (`none`, `centerscale`, `pca-centerscale`, `tvn`).
        aggregation: `mean` or `median`.
        signal_null: the signal benchmarks' null: `auto` (the negative-control genes where the data has them, else
            random well sets), `negative-controls` or `random-wells`.
        negative_control_genes: perturbations known to have no phenotype (e.g. genes not expressed in the cell
            type), the signal benchmarks' null.
        map_null_size: samples of copairs' null distribution of average precision.
        tables: per-perturbation tables a benchmark leaves for its plot (name -> DataFrame).
    """

    well_features: np.ndarray
    well_metadata: pd.DataFrame
    design: WellDesign
    perturbation_map: PerturbationMap
    annotations_dir: Path
    null: str = "genes"
    seeds: tuple[int, ...] = tuple(range(10))
    compound_gene_seeds: tuple[int, ...] = tuple(range(100))
    correction: str = "pca-centerscale"
    aggregation: str = "mean"
    signal_null: str = "auto"
    negative_control_genes: tuple[str, ...] = ()
    map_null_size: int = DEFAULT_MAP_NULL_SIZE
    tables: dict = field(default_factory=dict)


__all__ = ["DEFAULT_MAP_NULL_SIZE", "SIGNAL_NULLS", "BenchmarkNotApplicable", "BenchmarkResult", "EvalContext"]
