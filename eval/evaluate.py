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

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from phenom_data.errors import command, report_error

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
    METADATA_FORMATS,
    RXRX3_CORE,
    ColumnMapping,
    describe_wells,
    parse_names,
    read_annotations_table,
    with_well_ids,
)
from .plots import plot_recall
from .results import RESULTS_FILENAME, EvalResults, merge_benchmark_results, write_results

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
        print(f"evaluating {path} ({options.correction}, {options.aggregation}, null={options.null}, "
              f"{options.mapping.name} metadata)", file=sys.stderr)
        results, context = evaluate_file(path, metadata_table, options, dataset=Path(metadata).stem)
        written = write_results(folder / RESULTS_FILENAME, results)
        print(f"wrote {written}", file=sys.stderr)
        if options.plots:
            plot_benchmarks(context, results, folder)
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
    mapping = parser.add_argument_group(
        "metadata columns", "what a perturbation, a control, a batch and a plate are (defaults: the chosen format's)")
    mapping.add_argument("--metadata-format", choices=sorted(METADATA_FORMATS), default="rxrx3-core",
                         help="named column mapping: rxrx3-core (metadata_rxrx3_core.csv, the default) or jump "
                              "(JUMP-CP Metadata_* columns, DMSO and non-targeting guides as negative controls)")
    mapping.add_argument("--perturbation-col", help="column naming each well's perturbation (rxrx3-core: treatment; "
                                                    "jump: Metadata_JCP2022)")
    mapping.add_argument("--control-key", action="append", metavar="VALUE",
                         help="perturbation value(s) of the negative controls the correction is fitted on; repeat "
                              "or comma-separate for several (rxrx3-core: EMPTY_control)")
    mapping.add_argument("--batch-col", "--batch-column", dest="batch_col",
                         help="metadata column(s) naming the correction batch, comma-separated for a combination "
                              "such as experiment_name,plate (rxrx3-core: experiment_name; jump: Metadata_Plate)")
    mapping.add_argument("--plate-col", help="plate column ('' for none; rxrx3-core: plate)")
    mapping.add_argument("--type-col", help="column saying which wells are gene and which compound perturbations "
                                            "(rxrx3-core: perturbation_type; jump: Metadata_PlateType)")
    mapping.add_argument("--concentration-col", help="compound concentration column in µM ('' for none; "
                                                     "rxrx3-core: concentration)")
    mapping.add_argument("--genes-only", action="store_true",
                         help="every non-control well is a gene perturbation (metadata without a type column)")
    mapping.add_argument("--annotations-table", type=Path, metavar="CSV",
                         help="table of gene symbols for the gene wells' perturbation values (jump: crispr.csv.gz, "
                              "Metadata_JCP2022 -> Metadata_Symbol)")
    parser.add_argument("--negative-control-genes", action="append", metavar="FILE|GENES",
                        help="perturbations without a phenotype (e.g. genes not expressed in the cell type): a file "
                             "with one per line, or comma-separated names; the signal benchmarks' null")
    parser.add_argument("--signal-null", choices=SIGNAL_NULLS, default="auto",
                        help="null of signal consistency and magnitude: auto (default: the negative-control genes "
                             "where the data has them, else random well sets), negative-controls or random-wells")
    parser.add_argument("--map-null-size", type=int, default=DEFAULT_MAP_NULL_SIZE, metavar="N",
                        help=f"copairs null samples for the mAP p-values (default: {DEFAULT_MAP_NULL_SIZE})")
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --out")
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


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    """`EvalOptions` of parsed `phenom eval` arguments (the column mapping resolved against its format)."""
    mapping = METADATA_FORMATS[args.metadata_format].with_options(
        perturbation_col=args.perturbation_col, control_keys=parse_names(args.control_key),
        batch_cols=parse_names(args.batch_col), plate_col=args.plate_col, type_col=args.type_col,
        concentration_col=args.concentration_col, genes_only=args.genes_only or None,
    )
    return EvalOptions(
        correction=args.correction, aggregation=args.aggregate, annotations_dir=args.annotations, null=args.null,
        mapping=mapping, annotations_table=args.annotations_table,
        negative_control_genes=negative_control_names(args.negative_control_genes), signal_null=args.signal_null,
        map_null_size=args.map_null_size, overwrite=args.overwrite, num_seeds=args.seeds,
        compound_gene_seeds=args.compound_gene_seeds, min_controls=args.min_controls, model_name=args.model_name,
        dataset_name=args.dataset_name, plots=not args.no_plots, merge_duplicate_wells=args.merge_duplicate_wells,
    )


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.seeds < 0 or args.compound_gene_seeds < 0 or args.map_null_size < 1:
        raise ValueError(f"--seeds and --compound-gene-seeds must be >= 0 and --map-null-size >= 1, got "
                         f"{args.seeds}, {args.compound_gene_seeds} and {args.map_null_size}")
    try:
        results = evaluate(args.embeddings, args.metadata, args.out, options_from_args(args))
    except (ValueError, OSError, ImportError) as error:
        return report_error(prog or "phenom eval", error)
    print(format_table(results))
    return 0


__all__ = [
    "EvalOptions",
    "build_context",
    "run_benchmarks",
    "evaluate_file",
    "existing_results",
    "output_folders",
    "plot_benchmarks",
    "evaluate",
    "format_table",
    "build_parser",
    "negative_control_names",
    "options_from_args",
    "main",
]
