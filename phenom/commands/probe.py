"""`phenom probe`: the command line of `eval.probe.probe` (block-wise linear probe, paper.md §3).

    phenom probe --model <hub id or dir> --data <dataset> --task gene --out DIR
    phenom probe --embeddings emb_block1.parquet emb_block2.parquet ... --metadata CSV --task gene --out DIR
    accelerate launch -m phenom probe --model ... # several processes embed; the main process probes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.correction import CORRECTIONS
from eval.embed import DEVICES
from eval.perturbations import RXRX3_CORE
from eval.probe import DEFAULT_TEST_FRACTION, MAX_ITER, format_curve, probe
from phenom_data.errors import command


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Block-wise linear probe (paper.md §3): a class-balanced logistic regression on the well "
                    "embeddings of every block, trained on some experiments and scored by balanced accuracy on "
                    "held-out experiments. Writes results.json (probe_balanced_accuracy_block<k>, probe_best_block), "
                    "a plot of balanced accuracy vs block, and the recommended trim.",
    )
    source = parser.add_argument_group("embeddings (either a model and a dataset, or existing files)")
    source.add_argument("--model", help="model: Hub repo id or save_pretrained directory (embeds every block)")
    source.add_argument("--data", help="dataset for --model: any phenom embed --data source (RxRx3-core, RxRx1, a "
                                       "LoadData or plate CSV with --metadata)")
    source.add_argument("--embeddings", nargs="+", metavar="FILE",
                        help="existing per-block embeddings files <name>_block<k>.parquet (official layout)")
    parser.add_argument("--metadata", metavar="CSV",
                        help="well metadata (required with --embeddings; default with --data: the dataset's own)")
    task = parser.add_mutually_exclusive_group(required=True)
    task.add_argument("--task", help="metadata column holding the class of each well (gene, sirna, cell_type, ...)")
    task.add_argument("--labels", metavar="CSV", help="a CSV with columns well_id,label")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--experiment-column",
                        help="metadata column naming the experiment (default: experiment_name, else experiment)")
    parser.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION,
                        help=f"share of experiments held out (default: {DEFAULT_TEST_FRACTION}; at least one)")
    parser.add_argument("--test-experiments", nargs="+", metavar="NAME", help="hold out exactly these experiments")
    parser.add_argument("--seed", type=int, default=0, help="seed of the experiment split and the probe (default: 0)")
    parser.add_argument("--correction", choices=CORRECTIONS, default="none",
                        help="batch correction per experiment, fitted on control wells, before the probe "
                             "(default: none, the paper's protocol)")
    parser.add_argument("--control-key", default=RXRX3_CORE.control_keys[0],
                        help=f"treatment of the control wells a correction is fitted on (default: "
                             f"{RXRX3_CORE.control_keys[0]})")
    parser.add_argument("--max-iter", type=int, default=MAX_ITER, help=f"lbfgs iterations (default: {MAX_ITER})")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="device for --model")
    parser.add_argument("--batch-size", type=int, default=8, help="wells per forward pass for --model (default: 8)")
    parser.add_argument("--revision", help="Hub revision of the model and the dataset")
    parser.add_argument("--model-name", help="model name in results.json (default: --model or the files' provenance)")
    parser.add_argument("--dataset-name", help="dataset name in results.json (default: --data or the provenance)")
    parser.add_argument("--no-plots", action="store_true", help="write results.json and split.json only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    run = probe(args.out, model=args.model, data=args.data, embeddings=args.embeddings, metadata=args.metadata,
                task=args.task, labels=args.labels, experiment_column=args.experiment_column,
                test_fraction=args.test_fraction, test_experiments=args.test_experiments, seed=args.seed,
                correction=args.correction, control_key=args.control_key, max_iter=args.max_iter, device=args.device,
                batch_size=args.batch_size, revision=args.revision, model_name=args.model_name,
                dataset_name=args.dataset_name, plots=not args.no_plots, show_progress=not args.no_progress)
    if run is None:  # another process of an `accelerate launch`: the main one probes and reports
        return 0
    result = run.result
    if result.not_converged:
        print(f"note: lbfgs did not converge in {args.max_iter} iterations for block(s) {result.not_converged}; "
              "raise --max-iter", file=sys.stderr)
    print(format_curve(result))
    print(f"best block {result.best_block} of {len(result.balanced_accuracy)}; train on {result.split.train}, "
          f"test on {result.split.test}; wrote {run.results_path}")
    if args.model and result.best_block < max(result.balanced_accuracy):
        print(f"recommended: phenom trim --model {args.model} --blocks {result.best_block} --out <dir>")
    return 0


__all__ = ["build_parser", "main"]
