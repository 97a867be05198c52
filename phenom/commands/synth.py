"""`phenom synth`: the command line of `phenom_data.synth.generate` (a synthetic RxRx3-core-style dataset)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from phenom_data.errors import command
from phenom_data.synth import IMAGE_SIZES, SIZES, generate, load_ground_truth


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Generate a synthetic RxRx-like Cell Painting dataset in the exact RxRx3-core layout (parquet "
                    "shards of JPEG-2000 channel images, metadata_rxrx3_core.csv) with planted biology recorded in "
                    "ground_truth.json.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory (created; must be empty or hold "
                        "an interrupted run of the same config)")
    parser.add_argument("--size", default="small", choices=list(SIZES), help="preset (default: small)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--image-size", type=int, default=256, choices=IMAGE_SIZES,
                        help="channel image side in px: 256 = one model view per well (default), 512 = four tiles "
                             "as in RxRx3-core")
    parser.add_argument("--genes", type=int, dest="num_genes", help="genes in the map")
    parser.add_argument("--complexes", type=int, dest="num_complexes", help="planted CORUM complexes")
    parser.add_argument("--compounds", type=int, dest="num_compounds", help="compounds")
    parser.add_argument("--guides", type=int, help="CRISPR guides per gene")
    parser.add_argument("--replicates", type=int, help="wells per guide in each gene experiment")
    parser.add_argument("--experiments", type=int, help="gene experiments")
    parser.add_argument("--compound-experiments", type=int, dest="compound_experiments", help="compound experiments")
    parser.add_argument("--plates", type=int, help="plates per experiment")
    parser.add_argument("--batch-strength", type=float, dest="batch_strength",
                        help="scale of all batch effects (0 = none, default 1)")
    parser.add_argument("--rows-per-shard", type=int, dest="rows_per_shard",
                        help="image rows per parquet shard (default 4000; readers split work by shard row group)")
    parser.add_argument("--workers", type=int, help="render processes (default: up to 2 for large runs)")
    parser.add_argument("--overwrite", action="store_true", help="replace a different dataset in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    overrides = {name: getattr(args, name) for name in ("num_genes", "num_complexes", "num_compounds", "guides",
                                                        "replicates", "experiments", "compound_experiments",
                                                        "plates", "batch_strength", "rows_per_shard")}
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    start = time.perf_counter()
    out = generate(args.out, size=args.size, seed=args.seed, image_size=args.image_size, workers=args.workers,
                   overwrite=args.overwrite, progress=not args.no_progress, **overrides)
    counts = load_ground_truth(out)["counts"]
    print(f"wrote {counts['wells']} wells ({counts['images']} images, {counts['shards']} shards), "
          f"{counts['genes']} genes, {counts['compounds']} compounds to {out} in {time.perf_counter() - start:.1f} s")
    return 0


__all__ = ["build_parser", "main"]
