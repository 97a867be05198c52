"""`phenom curate`: the command line of `eval.curate.run_curation` (Phenoprints-style curation, paper.md §2).

    phenom curate --embeddings wells.parquet --metadata metadata_rxrx3_core.csv --out DIR [options]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eval.consistency import DEFAULT_DRAWS
from eval.correction import CORRECTIONS
from eval.curate import (
    DEFAULT_CONTROL_FRACTION,
    DEFAULT_MIN_EXPERIMENTS,
    DEFAULT_MIN_WELLS,
    DEFAULT_P_THRESHOLD,
    CurationOptions,
    format_summary,
    run_curation,
)
from phenom_data.errors import command


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Curate a pretraining set (paper.md §2): keep perturbations seen in enough experiments and "
                    "wells whose replicates are consistent (per-experiment permutation p-values combined by the "
                    "Cauchy combination test), down-sample controls, and write the well list train/pretrain.py "
                    "reads (data.well_list).",
    )
    parser.add_argument("--embeddings", required=True, metavar="FILE",
                        help="well embeddings parquet (official layout: well_id, feature_0 ...)")
    parser.add_argument("--metadata", required=True, metavar="CSV", help="well metadata (metadata_rxrx3_core.csv)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--p-threshold", type=float, default=DEFAULT_P_THRESHOLD,
                        help=f"keep perturbations with combined p below this (default: {DEFAULT_P_THRESHOLD})")
    parser.add_argument("--min-experiments", type=int, default=DEFAULT_MIN_EXPERIMENTS,
                        help=f"fewest experiments a perturbation is seen in (default: {DEFAULT_MIN_EXPERIMENTS})")
    parser.add_argument("--min-wells", type=int, default=DEFAULT_MIN_WELLS,
                        help=f"fewest wells of a perturbation (default: {DEFAULT_MIN_WELLS})")
    parser.add_argument("--draws", type=int, default=DEFAULT_DRAWS,
                        help=f"random well sets per set size and experiment in the null (default: {DEFAULT_DRAWS})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the null draws and control sampling (default 0)")
    parser.add_argument("--control-fraction", type=float, default=DEFAULT_CONTROL_FRACTION,
                        help="share of each experiment's control wells kept (default: "
                             f"{DEFAULT_CONTROL_FRACTION}, the paper's 30%% negative controls)")
    parser.add_argument("--correction", choices=CORRECTIONS, default="centerscale",
                        help="batch correction per experiment on its --control-key wells before the cosines "
                             "(default: centerscale)")
    parser.add_argument("--control-key", default=CurationOptions.control_key,
                        help="--control-column value of the negative controls the correction is fitted on "
                             f"(default: {CurationOptions.control_key})")
    parser.add_argument("--control-column", default=CurationOptions.control_column,
                        help=f"metadata column that marks control wells (default: {CurationOptions.control_column})")
    parser.add_argument("--control-pattern", default=CurationOptions.control_pattern,
                        help="a well is a control when its --control-column contains this (default: "
                             f"{CurationOptions.control_pattern})")
    parser.add_argument("--perturbation-column",
                        help="metadata column naming the perturbation (default: the gene of a CRISPR guide, else "
                             "the treatment, compounds with their concentration)")
    parser.add_argument("--experiment-column",
                        help="metadata column naming the experiment (default: experiment_name, else experiment)")
    return parser


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    options = CurationOptions(
        p_threshold=args.p_threshold, min_experiments=args.min_experiments, min_wells=args.min_wells,
        draws=args.draws, seed=args.seed, control_fraction=args.control_fraction, correction=args.correction,
        control_key=args.control_key, control_column=args.control_column, control_pattern=args.control_pattern,
        perturbation_column=args.perturbation_column, experiment_column=args.experiment_column,
    )
    run = run_curation(args.embeddings, args.metadata, args.out, options)
    print(format_summary(run.result.summary))
    print(f"wrote {run.paths['well_list']} ({len(run.result.well_ids)} wells), {run.paths['table']}, "
          f"{run.paths['summary']}")
    return 0


__all__ = ["build_parser", "main"]
