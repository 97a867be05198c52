"""`phenom eval`: well embeddings -> batch correction -> perturbation map -> benchmarks -> results JSON and plots.

    phenom eval --embeddings FILE... --metadata CSV --out DIR [--correction none|pca-centerscale|tvn|centerscale]
                [--aggregate mean|median] [--annotations DIR] [--null genes|all-rows]

Embeddings files have the official layout (`well_id`, `feature_0 ...`, DESIGN §6), so the published
`OpenPhenom_rxrx3_core_embeddings.parquet` with `metadata_rxrx3_core.csv` is evaluated as it is, with no model. One
file writes `DIR/results.json`; several files named `<name>_block<k>.parquet` write `DIR/block<k>/results.json`
each. Plots: `DIR/recall.png` (recall per source, one bar per block) and a CORUM complex cosine heatmap beside each
results file.

Adding a benchmark (the hook): write a module `eval/<name>.py` with a function

    def benchmark(context: EvalContext) -> BenchmarkResult: ...

that reads what it needs from `EvalContext` (corrected well embeddings and metadata, control mask, batches, the
perturbation map, annotations folder, seeds) and returns `BenchmarkResult(metrics, metrics_std, baselines, counts)`,
four flat dicts; then add it to `BENCHMARKS` below under a name. A benchmark function with its own arguments joins
through a small adapter of that shape in its module (`compound_gene.benchmark`, `replicate_consistency.benchmark`,
`perturbation_signal.consistency_benchmark` and `.magnitude_benchmark` read the context and call the plain function).

`run_benchmarks` calls each once per embeddings file and merges the dicts into the results JSON (a metric name
reported twice is an error); a benchmark that raises `BenchmarkNotApplicable` is skipped with its reason recorded in
`counts`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from phenom_data.errors import command, report_error

from . import compound_gene, perturbation_signal, recall, replicate_consistency
from .aggregate import AGGREGATIONS, aggregate, is_control, perturbation_labels
from .benchmark_plots import plot_context_benchmarks
from .context import BenchmarkNotApplicable, BenchmarkResult, EvalContext
from .correction import CORRECTIONS, MIN_CONTROLS_PER_BATCH, correct
from .embeddings_file import (
    WellEmbeddings,
    block_from_path,
    check_embeddings_file,
    join_metadata,
    read_embeddings,
    read_metadata,
)
from .plots import plot_complex_heatmap, plot_recall
from .results import EvalResults, merge_benchmark_results, write_results

# The benchmarks `phenom eval` runs, in order: name -> `benchmark(context) -> BenchmarkResult`.
BENCHMARKS = {
    "recall": recall.benchmark,
    "replicate_consistency": replicate_consistency.benchmark,
    "compound_gene": compound_gene.benchmark,
    "signal_consistency": perturbation_signal.consistency_benchmark,
    "signal_magnitude": perturbation_signal.magnitude_benchmark,
}
DEFAULT_NUM_SEEDS = 10
DEFAULT_COMPOUND_GENE_SEEDS = 100  # the RxRx3-core notebook's seeds 0..99 (about 5 s at RxRx3-core size)


@dataclass
class EvalOptions:
    """How to evaluate (the `phenom eval` options)."""

    correction: str = "pca-centerscale"
    aggregation: str = "mean"
    annotations_dir: Path = field(default_factory=recall.default_annotations_dir)
    null: str = "genes"
    batch_column: str = "experiment_name"
    control_key: str = "EMPTY_control"
    num_seeds: int = DEFAULT_NUM_SEEDS
    compound_gene_seeds: int = DEFAULT_COMPOUND_GENE_SEEDS
    min_controls: int = MIN_CONTROLS_PER_BATCH
    model_name: str | None = None
    dataset_name: str | None = None
    plots: bool = True
    merge_duplicate_wells: bool = False


def build_context(embeddings: WellEmbeddings, metadata: pd.DataFrame, options: EvalOptions,
                  source: str = "embeddings") -> EvalContext:
    """Join, correct and aggregate one embeddings file into what every benchmark reads."""
    well_metadata = join_metadata(embeddings, metadata, source)
    batch_columns = [column.strip() for column in options.batch_column.split(",") if column.strip()]
    missing = [column for column in batch_columns if column not in well_metadata.columns]
    if missing or not batch_columns:
        raise ValueError(f"the metadata has no batch column {missing or options.batch_column!r} "
                         f"(columns: {list(well_metadata.columns)}); pass --batch-column")
    if "treatment" not in well_metadata.columns:
        raise ValueError(f"the metadata has no 'treatment' column (columns: {list(well_metadata.columns)})")
    controls = (well_metadata["treatment"].astype(str) == options.control_key).to_numpy()
    if options.correction != "none" and not controls.any():
        raise ValueError(f"no well has treatment '{options.control_key}': the {options.correction} correction fits "
                         "on control wells; pass --control-key or --correction none")
    labels = well_metadata[batch_columns].astype(str)
    batches = (labels.iloc[:, 0] if len(batch_columns) == 1 else labels.agg("/".join, axis=1)).to_numpy(dtype=object)
    features = correct(embeddings.features, controls, batches, options.correction, options.min_controls)
    well_metadata = well_metadata.assign(perturbation=perturbation_labels(well_metadata))
    return EvalContext(
        well_features=features,
        well_metadata=well_metadata,
        is_control=controls,
        batches=batches,
        perturbation_map=aggregate(features, well_metadata, options.aggregation),
        annotations_dir=Path(options.annotations_dir),
        null=options.null,
        seeds=tuple(range(options.num_seeds)),
        compound_gene_seeds=tuple(range(options.compound_gene_seeds)),
        correction=options.correction,
        aggregation=options.aggregation,
    )


def run_benchmarks(context: EvalContext, benchmarks=BENCHMARKS) -> BenchmarkResult:
    """Every benchmark on `context`, merged, plus the sizes of the wells and the map."""
    base_counts = {
        "wells": len(context.well_metadata),
        "control_wells": int(context.is_control.sum()),
        "batches": len(np.unique(context.batches)),
        "map_rows": len(context.perturbation_map),
        "map_genes": len(context.perturbation_map.gene_rows()),
        "wells_with_control_treatment": int(is_control(context.well_metadata).sum()),
        "features": int(context.well_features.shape[1]),
    }
    outputs = [BenchmarkResult({}, {}, {}, base_counts)]
    for name, benchmark in benchmarks.items():
        try:
            outputs.append(benchmark(context))
        except BenchmarkNotApplicable as reason:
            print(f"note: {name} not applicable: {reason}", file=sys.stderr)
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


def evaluate(embeddings: list[str | Path], metadata: str | Path, out_dir: str | Path,
             options: EvalOptions | None = None) -> list[EvalResults]:
    """Evaluate each embeddings file, write its `results.json` (and plots), and return the results."""
    options = options or EvalOptions()
    paths, out_dir = [Path(path) for path in embeddings], Path(out_dir)
    folders = output_folders(paths, out_dir)
    for path in paths:  # every file's problems before the first file's work
        check_embeddings_file(path)
    metadata_table = read_metadata(metadata)
    all_results = []
    for path, folder in zip(paths, folders, strict=True):
        print(f"evaluating {path} ({options.correction}, {options.aggregation}, null={options.null})", file=sys.stderr)
        results, context = evaluate_file(path, metadata_table, options, dataset=Path(metadata).stem)
        written = write_results(folder / "results.json", results)
        print(f"wrote {written}", file=sys.stderr)
        if options.plots:
            title = f"{results.model}, block {results.block}" if results.block is not None else results.model
            clusters = Path(options.annotations_dir) / "CORUM_clusters.tsv"
            heatmap = plot_complex_heatmap(context.perturbation_map.gene_rows(), clusters,
                                           folder / "complex_heatmap.png", title=title) if clusters.is_file() else None
            if heatmap is None:
                print(f"note: no complex heatmap ({clusters} is missing or none of its complexes has 3 genes in the "
                      "map)", file=sys.stderr)
            plot_context_benchmarks(context, results.metrics, results.metrics_std, results.baselines, folder, title)
        all_results.append(results)
    if options.plots:
        plot_recall(all_results, out_dir / "recall.png")
    return all_results


def format_table(results: list[EvalResults]) -> str:
    """A plain-text table: one row per metric, one column per evaluated file."""
    names = list(dict.fromkeys(name for result in results for name in result.metrics))
    headers = ["metric"] + [f"block {r.block}" if r.block is not None else r.model for r in results] + ["baseline"]
    rows = [[name] + [f"{r.metrics[name]:.4f}" if name in r.metrics else "-" for r in results]
            + [f"{results[0].baselines[name]:.4f}" if name in results[0].baselines else "-"] for name in names]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
                     for row in [headers, *rows])


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate well embeddings (official layout: well_id, feature_0 ...) with the paper's "
                    "benchmarks: batch correction on control wells, aggregation to perturbations, "
                    "known-relationship recall (CORUM, HuMAP, Reactome, SIGNOR, StringDB), replicate consistency "
                    "(KS, Cramer-von Mises), compound-gene activity (AP, ROC-AUC per concentration), perturbation "
                    "signal consistency and magnitude; writes results.json and plots. No model needed.",
    )
    parser.add_argument("--embeddings", nargs="+", required=True, metavar="FILE",
                        help="embeddings parquet file(s); several files must be named <name>_block<k>.parquet")
    parser.add_argument("--metadata", required=True, metavar="CSV", help="well metadata (metadata_rxrx3_core.csv)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--correction", choices=CORRECTIONS, default="pca-centerscale",
                        help="batch correction fitted on control wells (default: pca-centerscale)")
    parser.add_argument("--aggregate", choices=AGGREGATIONS, default="mean",
                        help="aggregation of wells to perturbations (default: mean)")
    parser.add_argument("--annotations", type=Path, default=recall.default_annotations_dir(), metavar="DIR",
                        help="folder with <SOURCE>.txt annotation files (default: the bundled EFAAR annotations)")
    parser.add_argument("--null", choices=recall.NULL_MODES, default="genes",
                        help="recall null: all gene-map cosines (EFAAR, default) or all map rows (RxRx3-core "
                             "notebook)")
    parser.add_argument("--batch-column", default="experiment_name",
                        help="metadata column(s) naming the batch, comma-separated for a combination such as "
                             "experiment_name,plate (default: experiment_name)")
    parser.add_argument("--control-key", default="EMPTY_control",
                        help="treatment of the control wells the correction is fitted on (default: EMPTY_control)")
    parser.add_argument("--min-controls", type=int, default=MIN_CONTROLS_PER_BATCH,
                        help=f"fewest control wells a batch may have (default: {MIN_CONTROLS_PER_BATCH})")
    parser.add_argument("--seeds", type=int, default=DEFAULT_NUM_SEEDS, metavar="N",
                        help=f"seeds 0..N-1 for random baselines (default: {DEFAULT_NUM_SEEDS})")
    parser.add_argument("--compound-gene-seeds", type=int, default=DEFAULT_COMPOUND_GENE_SEEDS, metavar="N",
                        help="seeds 0..N-1 for the compound-gene negative sampling and its random baseline "
                             f"(default: {DEFAULT_COMPOUND_GENE_SEEDS}, as the RxRx3-core benchmark notebook)")
    parser.add_argument("--model-name", help="model name in results.json (default: from the embeddings file)")
    parser.add_argument("--dataset-name", help="dataset name in results.json (default: from the files)")
    parser.add_argument("--merge-duplicate-wells", action="store_true",
                        help="average rows that share a well_id (as the RxRx3-core notebook) instead of refusing them")
    parser.add_argument("--no-plots", action="store_true", help="write results.json only")
    return parser


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.seeds < 0 or args.compound_gene_seeds < 0:
        raise ValueError(f"--seeds and --compound-gene-seeds must be >= 0, got {args.seeds} and "
                         f"{args.compound_gene_seeds}")
    options = EvalOptions(
        correction=args.correction, aggregation=args.aggregate, annotations_dir=args.annotations, null=args.null,
        batch_column=args.batch_column, control_key=args.control_key, num_seeds=args.seeds,
        compound_gene_seeds=args.compound_gene_seeds,
        min_controls=args.min_controls, model_name=args.model_name, dataset_name=args.dataset_name,
        plots=not args.no_plots, merge_duplicate_wells=args.merge_duplicate_wells,
    )
    try:
        results = evaluate(args.embeddings, args.metadata, args.out, options)
    except (ValueError, FileNotFoundError) as error:
        return report_error(prog or "phenom eval", error)
    print(format_table(results))
    return 0


__all__ = [
    "BENCHMARKS",
    "EvalOptions",
    "build_context",
    "run_benchmarks",
    "evaluate_file",
    "output_folders",
    "evaluate",
    "format_table",
    "build_parser",
    "main",
]
