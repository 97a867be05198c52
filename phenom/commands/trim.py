"""`phenom trim`: the command line of `eval.trim.trim` (a model trimmed to its first k blocks, with the compute it
saves).

    phenom trim --model <hub id or dir> --blocks K --out DIR [--channels C] [--verify] [--overwrite]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eval.trim import VERIFY_TOLERANCE, TrimReport, trim
from phenom_data.errors import command


def format_report(report: TrimReport) -> str:
    """The report as the lines `phenom trim` prints."""
    shape = "x".join(map(str, report.input_shape))
    lines = [
        f"kept blocks 1..{report.blocks_kept} of {report.blocks_full}",
        f"encoder FLOPs per {shape} view: {report.encoder_flops_trimmed:.4g} vs {report.encoder_flops_full:.4g} "
        f"(ratio {report.encoder_flops_ratio:.4f}, {100 * report.compute_saved:.1f}% saved)",
        f"parameters: {report.parameters_trimmed:,} vs {report.parameters_full:,} "
        f"({100 * (1 - report.parameters_trimmed / report.parameters_full):.1f}% fewer)",
        f"weights: {report.weights_bytes_trimmed:,} vs {report.weights_bytes_full:,} bytes; "
        f"model.safetensors {report.file_bytes_trimmed:,} bytes",
        f"kept from the source: {', '.join(report.kept_files) or 'nothing (no image processor config or license)'}",
    ]
    if report.max_abs_difference is not None:
        lines.append(f"verified: pooler_output = full block {report.blocks_kept} (max |diff| "
                     f"{report.max_abs_difference:.2e})")
    return "\n".join(lines)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Trim a Phenom/OpenPhenom model to its first k encoder blocks (trim_encoder_blocks = k): "
                    "AutoModel loads the result and its pooler_output is block k's pooled embedding of the full "
                    "model. Reports the encoder FLOPs, parameters and bytes saved.",
    )
    parser.add_argument("--model", required=True, help="model: Hub repo id or save_pretrained directory")
    parser.add_argument("--blocks", required=True, type=int, metavar="K",
                        help="keep blocks 1..K (blocks are numbered from 1; `phenom probe` recommends one)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (save_pretrained)")
    parser.add_argument("--channels", type=int, metavar="C",
                        help="channels of the view the FLOPs are counted at (default: the model's num_channels; 6 for "
                             "a channel-agnostic model)")
    parser.add_argument("--revision", help="Hub revision of the model")
    parser.add_argument("--verify", action="store_true",
                        help=f"load both models and check pooler_output = full block K to {VERIFY_TOLERANCE:g} "
                             "(runs the full model once on two random views)")
    parser.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    return parser


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    report = trim(args.model, args.blocks, args.out, revision=args.revision, overwrite=args.overwrite,
                  verify=args.verify, num_channels=args.channels)
    print(format_report(report))
    print(f"wrote {args.out}")
    return 0


__all__ = ["build_parser", "format_report", "main"]
