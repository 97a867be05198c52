"""`phenom eval`: the command line of `eval.evaluate.evaluate` (batch correction, the paper's benchmarks and plots
from embeddings files in the official layout; no model needed).

    phenom eval --embeddings FILE... --metadata CSV --out DIR [options]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eval import recall
from eval.aggregate import AGGREGATIONS
from eval.context import DEFAULT_MAP_NULL_SIZE, SIGNAL_NULLS
from eval.correction import CORRECTIONS, MIN_CONTROLS_PER_BATCH
from eval.evaluate import (
    DEFAULT_COMPOUND_GENE_SEEDS,
    DEFAULT_NUM_SEEDS,
    EvalOptions,
    evaluate,
    negative_control_names,
)
from eval.perturbations import METADATA_FORMATS, parse_names
from eval.results import EvalResults
from phenom_data.errors import command, report_error


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
    try:
        results = evaluate(args.embeddings, args.metadata, args.out, options_from_args(args))
    except ImportError as error:  # a benchmark's optional package: one line and exit code 2, as other user errors
        return report_error(prog or "phenom eval", error)
    print(format_table(results))
    return 0


__all__ = ["build_parser", "format_table", "main", "options_from_args"]
