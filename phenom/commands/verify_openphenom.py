"""`phenom verify-openphenom`: the command line of `eval.verify_openphenom.verify_openphenom` (embed RxRx3-core wells
with the released OpenPhenom and compare with the published embeddings; needs the Hub or a filled cache).

Exit code 1 when neither the raw nor the aligned median cosine reaches `--min-cosine`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eval.verify_openphenom import DEFAULT_OUT, DEFAULT_WELLS, MODEL_REPO, NUM_SHARDS, verify_openphenom
from phenom_data.errors import command


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Embed RxRx3-core wells with the released OpenPhenom and compare them with the published "
        "OpenPhenom_rxrx3_core_embeddings.parquet (needs network access to the Hugging Face Hub).",
    )
    parser.add_argument("--wells", type=int, default=DEFAULT_WELLS,
                        help="complete wells of the shard to embed (default 1024; the aligned comparison needs about "
                        "2 x 385 per experiment)")
    parser.add_argument("--shard", type=int, default=0, help=f"image shard index 0..{NUM_SHARDS - 1} (default 0)")
    parser.add_argument("--model", default=MODEL_REPO, help=f"model repo id or local directory (default {MODEL_REPO})")
    parser.add_argument("--batch-size", type=int, default=16, help="wells per forward pass (default 16)")
    parser.add_argument("--device", default="auto", help="torch device; auto = cuda if available, else cpu")
    parser.add_argument("--cache-dir", default=None, help="Hugging Face cache directory (default: the hub's)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for report.json and our embeddings parquet")
    parser.add_argument("--min-cosine", type=float, default=0.99,
                        help="exit 1 unless the raw or the aligned median cosine reaches this (default 0.99)")
    return parser


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    verification = verify_openphenom(model=args.model, wells=args.wells, shard=args.shard,
                                     batch_size=args.batch_size, device=args.device, cache_dir=args.cache_dir,
                                     out=args.out)
    report = verification.report
    raw, aligned = report["raw"], report["aligned"]
    print(f"wells compared: {report['wells_compared']} (missing from the published file: "
          f"{report['wells_missing_from_published']})")
    print(f"raw cosine: median {raw['median']:.6f}, mean {raw['mean']:.6f}, min {raw['min']:.6f}")
    if aligned.get("wells"):
        print(f"aligned (held-out affine per experiment): median {aligned['median']:.6f}, min {aligned['min']:.6f}")
    else:
        print(f"aligned: not computed ({aligned['reason']})")
    if "published_controls" in report:
        print(f"published control wells: mean |feature mean| {report['published_controls']['mean_abs_feature_mean']}"
              f", mean feature std {report['published_controls']['mean_feature_std']}")
    print(f"wrote {verification.report_path}")
    return 0 if verification.best_median_cosine >= args.min_cosine else 1


__all__ = ["build_parser", "main"]
