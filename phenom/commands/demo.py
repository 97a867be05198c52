"""`phenom demo`: the command line of `phenom.demo.demo` (the whole loop on a generated screen)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import phenom.demo as demo_module
from phenom.demo import SIZES, SUMMARY_METRICS, DemoError, demo
from phenom_data.errors import command


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=demo_module.__doc__.split("\n\n")[0] + " Generates a synthetic screen, pretrains the "
        "tiny model, embeds every well with it, with the same architecture at random init and with hand-crafted "
        "features, corrects batches, runs every benchmark and writes a leaderboard, results, a model card and plots.",
    )
    parser.add_argument("--out", type=Path, default=Path("phenom-demo"), help="output folder (default: phenom-demo)")
    parser.add_argument("--size", choices=list(SIZES), default="small",
                        help="synthetic screen: small (default, ~7 min on 2 idle cores), medium or tiny (smoke run)")
    parser.add_argument("--steps", type=int, default=None,
                        help="pretraining steps (default: 600 for small and medium, 4 for tiny); the tiny model "
                             "starts learning masked patches after about 50, its features separate genes after a "
                             "few hundred")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the initialization and training")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo run in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser



@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Exit code 2 for an output folder or setting the demo cannot use (before any work), 1 when a stage fails."""
    args = build_parser(prog).parse_args(argv)
    _show_progress_on_stdout()
    try:
        result = demo(args.out, size=args.size, steps=args.steps, seed=args.seed, overwrite=args.overwrite,
                      progress=not args.no_progress)
    except DemoError as error:
        if isinstance(error, ValueError):  # DemoOutputError: one line, exit code 2 (`@command`)
            raise
        print(f"{prog or 'phenom demo'}: {error}", file=sys.stderr)
        return 1
    print_summary(result.summary)
    print(f"{'summary':>16}: {result.summary_path}  (this run: {result.summary['wall_seconds_this_run']:.0f} s)")
    return 0


def _show_progress_on_stdout() -> None:
    """The demo's stage lines (`phenom.demo` logger) as plain lines on stdout, between the stages' own output."""
    demo_logger = logging.getLogger(demo_module.__name__)
    if not demo_logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        demo_logger.addHandler(handler)
        demo_logger.setLevel(logging.INFO)
        demo_logger.propagate = False


def print_summary(summary: dict) -> None:
    """The summary table and the files written, on stdout."""
    def cell(value):
        return "   n/a" if value is None else f"{value:6.3f}"

    names = list(summary["metrics"])
    width = max(len(metric) for metric in SUMMARY_METRICS)
    print()
    print(f"{'metric':<{width}}  " + "  ".join(f"{name:>20}" for name in names) + "  random labels")
    for metric in SUMMARY_METRICS:
        row = [cell(summary["metrics"][name][metric]) for name in names]
        baseline = summary["metrics"][names[0]]["_baselines"][metric]
        print(f"{metric:<{width}}  " + "  ".join(f"{value:>20}" for value in row) + f"  {cell(baseline):>13}")
    best = summary["probe"].get("probe_best_block")
    if best is not None:
        accuracy = summary["probe"].get(f"probe_balanced_accuracy_block{best}")
        print(f"probe (trained model, gene on held-out experiments): best block {best}, balanced accuracy "
              f"{cell(accuracy).strip()}")
    verdict = summary["trained_beats_random_init"]
    print("trained beats random init: " + ", ".join(f"{metric} {'yes' if won else 'NO'}"
                                                    for metric, won in verdict.items()))
    total = sum(summary["stage_seconds"].values())
    print(f"stage times (s): {summary['stage_seconds']}  (this run's stages: {total:.0f} s)")
    files = summary["files"]
    print()
    for label, key in (("leaderboard", "leaderboard"), ("leaderboard plot", "leaderboard_plot"),
                       ("model card", "card"), ("trained model", "trained_model"),
                       ("reconstruction", "reconstruction"), ("probe", "probe")):
        print(f"{label:>16}: {files[key]}")
    for name, path in files["results"].items():
        print(f"{'results':>16}: {path}  ({name})")
    print(f"{'plots':>16}: {len(files['plots'])} PNG files under {Path(files['leaderboard']).parent / 'results'}")


__all__ = ["build_parser", "main", "print_summary"]
