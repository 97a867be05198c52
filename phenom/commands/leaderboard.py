"""`phenom leaderboard`: the command line of `hub_cards.leaderboard.leaderboard` (one table of results across models
and blocks: markdown, CSV, PNG).

    phenom leaderboard --results runs/eval_a runs/eval_b runs/probe_a --out leaderboard/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hub_cards.leaderboard import DEFAULT_SORT_METRIC, leaderboard
from phenom_data.errors import command


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Compare benchmark results across models and blocks: leaderboard.md, leaderboard.csv "
                               "(model, block, one column per metric) and leaderboard.png.")
    parser.add_argument("--results", nargs="+", required=True, metavar="PATH",
                        help="results.json files, or folders holding results.json or block<k>/results.json")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--sort", help=f"metric to sort the rows by (default {DEFAULT_SORT_METRIC} when present)")
    parser.add_argument("--metrics", help="comma-separated metric columns, in this order (default: all)")
    parser.add_argument("--title", default="Leaderboard", help="markdown title")
    return parser


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    result = leaderboard(args.results, args.out, sort=args.sort, title=args.title,
                         metrics=[name.strip() for name in args.metrics.split(",")] if args.metrics else None)
    board = result.board
    print(f"{len(board.rows)} rows x {len(board.metrics)} metrics, sorted by {board.sort_metric}: "
          + ", ".join(str(path) for path in result.files.values()))
    return 0


__all__ = ["build_parser", "main"]
