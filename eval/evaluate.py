"""`phenom eval`: well embeddings -> batch correction -> perturbation map -> benchmarks -> results JSON and plots.

    phenom eval --embeddings FILE... --metadata CSV --out DIR [--correction none|pca-centerscale|tvn|centerscale]
                [--aggregate mean|median] [--annotations DIR] [--null genes|all-rows]
                [--metadata-format rxrx3-core|jump] [--perturbation-col C] [--control-key K ...] [--batch-col C]
                [--plate-col C] [--type-col C] [--concentration-col C] [--genes-only] [--annotations-table CSV]
                [--negative-control-genes FILE|GENE,...] [--signal-null auto|negative-controls|random-wells]
                [--overwrite]

Embeddings files have the official layout (`well_id`, `feature_0 ...`, DESIGN §6), so the published
`OpenPhenom_rxrx3_core_embeddings.parquet` with `metadata_rxrx3_core.csv` is evaluated as it is, with no model. One
file writes `DIR/results.json`; several files named `<name>_block<k>.parquet` write `DIR/block<k>/results.json`
each. An `--out` that already holds results is refused unless `--overwrite`. Plots: `DIR/recall.png` (recall per
source, one bar per block) and each benchmark's figures beside each results file.

What a perturbation, a control, a batch and a plate are is read once from the metadata through a column mapping
(`eval/perturbations.py`: RxRx3-core's names by default, `--metadata-format jump` for JUMP-CP's `Metadata_*`); the
correction, the aggregation and every benchmark use that one reading.

The benchmarks are the registry `eval/benchmarks/` (one file each: `run(context)`, `plot`, titles);
`run_benchmarks` calls each once per embeddings file and merges the dicts into the results JSON (a metric name
reported twice is an error); a benchmark that raises `BenchmarkNotApplicable` is skipped with its reason recorded in
`counts`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import recall
from .aggregate import AGGREGATIONS, aggregate
from .benchmarks import Benchmark, benchmarks_to_run
from .context import DEFAULT_MAP_NULL_SIZE, SIGNAL_NULLS, BenchmarkNotApplicable, BenchmarkResult, EvalContext
from .correction import CORRECTIONS, MIN_CONTROLS_PER_BATCH, correct
from .embeddings_file import (
    WellEmbeddings,
    block_from_path,
    check_embeddings_file,
    join_metadata,
    read_embeddings,
    read_metadata,
)
from .perturbations import (
    RXRX3_CORE,
    ColumnMapping,
    describe_wells,
    parse_names,
    read_annotations_table,
    with_well_ids,
)
from .plots import plot_recall
from .results import RESULTS_FILENAME, EvalResults, merge_benchmark_results, write_results

logger = logging.getLogger(__name__)

DEFAULT_NUM_SEEDS = 10
DEFAULT_COMPOUND_GENE_SEEDS = 100  # the RxRx3-core notebook's seeds 0..99 (about 5 s at RxRx3-core size)


@dataclass
class EvalOptions:
    """How to evaluate (the `phenom eval` options)."""

    correction: str = "pca-centerscale"
    aggregation: str = "mean"
    annotations_dir: Path = field(default_factory=recall.default_annotations_dir)
    null: str = "genes"
    mapping: ColumnMapping = RXRX3_CORE
    annotations_table: Path | None = None
    negative_control_genes: tuple[str, ...] = ()
    signal_null: str = "auto"
    map_null_size: int = DEFAULT_MAP_NULL_SIZE
    overwrite: bool = False
    num_seeds: int = DEFAULT_NUM_SEEDS
    compound_gene_seeds: int = DEFAULT_COMPOUND_GENE_SEEDS
    min_controls: int = MIN_CONTROLS_PER_BATCH
    model_name: str | None = None
    dataset_name: str | None = None
    plots: bool = True
    merge_duplicate_wells: bool = False

    def check(self) -> None:
        """Values refused before any file is read."""
        if self.num_seeds < 0 or self.compound_gene_seeds < 0 or self.map_null_size < 1:
            raise ValueError(f"--seeds and --compound-gene-seeds must be >= 0 and --map-null-size >= 1, got "
                             f"{self.num_seeds}, {self.compound_gene_seeds} and {self.map_null_size}")
        for option, value, choices in (("--correction", self.correction, CORRECTIONS),
                                       ("--aggregate", self.aggregation, AGGREGATIONS),
                                       ("--null", self.null, recall.NULL_MODES),
                                       ("--signal-null", self.signal_null, SIGNAL_NULLS)):
            if value not in choices:
                raise ValueError(f"{option} must be one of {', '.join(choices)}, got {value!r}")


def build_context(embeddings: WellEmbeddings, metadata: pd.DataFrame, options: EvalOptions,
                  source: str = "embeddings") -> EvalContext:
    """Join, read the design, correct and aggregate one embeddings file into what every benchmark reads."""
    well_metadata = join_metadata(embeddings, metadata, source)
    annotations = (read_annotations_table(options.annotations_table, options.mapping)
                   if options.annotations_table is not None else None)
    design = describe_wells(well_metadata, options.mapping, annotations, source="the metadata")
    if options.correction != "none" and not design.is_negative_control.any():
        raise ValueError(f"no well has {options.mapping.perturbation_col} "
                         f"{' or '.join(map(repr, options.mapping.control_keys))}: the {options.correction} "
                         "correction fits on control wells; pass --control-key or --correction none")
    features = correct(embeddings.features, design.is_negative_control, design.batch, options.correction,
                       options.min_controls)
    return EvalContext(
        well_features=features,
        well_metadata=well_metadata,
        design=design,
        perturbation_map=aggregate(features, design, options.aggregation),
        annotations_dir=Path(options.annotations_dir),
        null=options.null,
        seeds=tuple(range(options.num_seeds)),
        compound_gene_seeds=tuple(range(options.compound_gene_seeds)),
        correction=options.correction,
        aggregation=options.aggregation,
        signal_null=options.signal_null,
        negative_control_genes=tuple(options.negative_control_genes),
        map_null_size=options.map_null_size,
    )


def run_benchmarks(context: EvalContext, benchmarks: dict[str, Benchmark] | None = None) -> BenchmarkResult:
    """Every benchmark on `context` (the registry's, in order, by default), merged, plus the sizes of the wells
    and the map."""
    design = context.design
    base_counts = {
        "wells": len(context.well_metadata),
        "control_wells": int(design.is_negative_control.sum()),
        "batches": len(np.unique(design.batch)),
        "map_rows": len(context.perturbation_map),
        "map_genes": len(context.perturbation_map.gene_rows()),
        "wells_with_control_treatment": int(design.is_control.sum()),
        "features": int(context.well_features.shape[1]),
        **design.counts(),
    }
    outputs = [BenchmarkResult({}, {}, {}, base_counts)]
    for name, benchmark in (benchmarks_to_run() if benchmarks is None else benchmarks).items():
        try:
            outputs.append(benchmark.run(context))
        except BenchmarkNotApplicable as reason:
            logger.info(f"note: {name} not applicable: {reason}")
            outputs.append(BenchmarkResult({}, {}, {}, {f"{name}_not_applicable": str(reason)}))
    return merge_benchmark_results(outputs)


def evaluate_file(path: str | Path, metadata: pd.DataFrame, options: EvalOptions,
                  dataset: str = "dataset") -> tuple[EvalResults, EvalContext]:
    """Results of one embeddings file (not written)."""
    embeddings = read_embeddings(path, merge_duplicates=options.merge_duplicate_wells)
    name, block_in_name = block_from_path(path)
    context = build_context(embeddings, metadata, options, source=str(path))
    merged = run_benchmarks(context)
    merged.counts["metadata_wells_not_embedded"] = len(metadata) - embeddings.num_wells
    merged.counts["duplicate_well_rows_merged"] = embeddings.merged_rows
    provenance = embeddings.provenance
    block = provenance.get("block", block_in_name)
    results = EvalResults(
        model=options.model_name or provenance.get("model") or name,
        dataset=options.dataset_name or provenance.get("dataset") or dataset,
        block=int(block) if block is not None else None,
        correction=options.correction,
        metrics=merged.metrics,
        metrics_std=merged.metrics_std,
        baselines=merged.baselines,
        counts=merged.counts,
        seeds=list(context.seeds),
    )
    return results, context


def output_folders(paths: list[Path], out_dir: Path) -> list[Path]:
    """`[out_dir]` for one file; `out_dir/block<k>` for several files named `<name>_block<k>.parquet`."""
    if len(paths) == 1:
        return [out_dir]
    blocks = []
    for path in paths:
        _, block = block_from_path(path)
        if block is None:
            raise ValueError(f"{path}: with several embeddings files each must be named <name>_block<k>.parquet")
        blocks.append(block)
    repeated = sorted({block for block in blocks if blocks.count(block) > 1})
    if repeated:
        raise ValueError(f"several embeddings files for block(s) {repeated}")
    return [out_dir / f"block{block}" for block in blocks]


def existing_results(out_dir: Path) -> list[Path]:
    """Results files already in `out_dir` (its `results.json` and `block<k>/results.json`)."""
    if not out_dir.is_dir():
        return []
    return sorted(path for path in [out_dir / RESULTS_FILENAME, *out_dir.glob(f"block*/{RESULTS_FILENAME}")]
                  if path.is_file())


def plot_benchmarks(context: EvalContext, results: EvalResults, folder: Path) -> list[Path]:
    """Each benchmark's figures beside a results file, for the benchmarks that reported metrics."""
    title = f"{results.model}, block {results.block}" if results.block is not None else results.model
    written = []
    for benchmark in benchmarks_to_run().values():
        reported = any(family.matches(name) for family in benchmark.families for name in results.metrics)
        if benchmark.plot is not None and reported:
            written += benchmark.plot(context, results, folder, title)
    return written


def evaluate(embeddings: list[str | Path], metadata: str | Path, out_dir: str | Path,
             options: EvalOptions | None = None) -> list[EvalResults]:
    """Evaluate each embeddings file, write its `results.json` (and plots), and return the results.

    An `out_dir` that already holds results is refused before any work unless `options.overwrite`.
    """
    options = options or EvalOptions()
    options.check()
    paths, out_dir = [Path(path) for path in embeddings], Path(out_dir)
    folders = output_folders(paths, out_dir)
    existing = existing_results(out_dir)
    if existing and not options.overwrite:
        raise FileExistsError(f"{out_dir} already holds results ({', '.join(map(str, existing[:3]))}"
                              f"{' ...' if len(existing) > 3 else ''}); pass --overwrite to replace them, or choose "
                              "another --out")
    for path in paths:  # every file's problems before the first file's work
        check_embeddings_file(path)
    metadata_table = read_metadata(metadata, prepare=lambda table: with_well_ids(table, options.mapping,
                                                                                 str(metadata)))
    all_results = []
    for path, folder in zip(paths, folders, strict=True):
        logger.info(f"evaluating {path} ({options.correction}, {options.aggregation}, null={options.null}, "
                    f"{options.mapping.name} metadata)")
        results, context = evaluate_file(path, metadata_table, options, dataset=Path(metadata).stem)
        written = write_results(folder / RESULTS_FILENAME, results)
        logger.info(f"wrote {written}")
        if options.plots:
            plot_benchmarks(context, results, folder)
        all_results.append(results)
    if options.plots:
        plot_recall(all_results, out_dir / "recall.png")
    return all_results


def negative_control_names(values: list[str] | None) -> tuple[str, ...]:
    """`--negative-control-genes` values: files (one name per line) and/or comma-separated names."""
    names = []
    for value in values or ():
        path = Path(value)
        if path.is_file():
            names += [line.strip() for line in path.read_text().splitlines() if line.strip()]
        else:
            names += list(parse_names(value) or ())
    return tuple(dict.fromkeys(names))


__all__ = [
    "EvalOptions",
    "build_context",
    "run_benchmarks",
    "evaluate_file",
    "existing_results",
    "output_folders",
    "plot_benchmarks",
    "evaluate",
    "negative_control_names",
]
