"""`phenom embed`: the command line of `eval.embed.embed` (well embeddings of every requested block of a dataset).

    phenom embed --model <hub id or dir> --data <source> --out embeddings.parquet [options]
    accelerate launch -m phenom embed ...            # several processes, each its own wells, parts merged
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from eval.embed import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_PART_WELLS,
    DEVICES,
    FORMATS,
    embed,
    parse_blocks,
    parse_channels,
)
from eval.precision import DTYPE_CHOICES
from modeling_phenom.image_processing_phenom import UINT16_RULES
from phenom_data.errors import command


def argument_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse `type=` of a library parser: its `ValueError` message becomes argparse's own error line."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = parse.__name__
    return convert


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Embed every well of a dataset (RxRx3-core, RxRx1, a CellProfiler LoadData CSV or a plate CSV) "
                    "with a Phenom/OpenPhenom model: pooled embeddings of the chosen blocks, averaged over every view "
                    "of every site of a well, in the official embeddings layout (well_id, feature_0 ...). "
                    "Resumable; runs under `accelerate launch`.",
    )
    parser.add_argument("--model", required=True, help="model: Hub repo id or save_pretrained directory")
    parser.add_argument("--data", required=True,
                        help="RxRx3-core Hub dataset id (recursionpharma/rxrx3-core) or a local folder in its layout, "
                             "an RxRx1 release folder, a CellProfiler LoadData CSV (.csv/.csv.gz, JUMP-CP) or "
                             "Phenom's plate CSV (well_id, channel, path)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output parquet; with several blocks <name>_block<k>.parquet beside it")
    parser.add_argument("--blocks", type=argument_type(parse_blocks), default="last",
                        help="last, all, or block numbers like 4,8,12 (numbered from 1; default: last)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"wells per forward pass, all their views together (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="auto = the accelerator accelerate picks (a GPU when there is one)")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="float32",
                        help="precision of the forward pass: float32 (default), bfloat16 or float16 (float32 "
                             "weights under autocast), or auto = bfloat16 where the hardware has it natively (a GPU "
                             "with bf16, a CPU with avx512_bf16 or AMX), float32 elsewhere; recorded in the "
                             "provenance")
    parser.add_argument("--format", choices=FORMATS, default="parquet", help="output format (default: parquet)")
    parser.add_argument("--channels", type=argument_type(parse_channels),
                        help="channels to stack, in this order: LoadData/plate-CSV names (DNA,ER,RNA,AGP,Mito) or "
                             "RxRx names/numbers (nuclei,er,actin,rna,mitochondria,golgi); default: the source's own "
                             "(LoadData: every non-brightfield channel); recorded in the provenance")
    parser.add_argument("--per-site", action="store_true",
                        help="one row per site (well_id, site, features) instead of one per well")
    parser.add_argument("--uint16-rule", choices=UINT16_RULES,
                        help="how 16-bit images become 8-bit (default: the model's processor, else channel_max); "
                             "percentile clips each image to its 0.1-99.9 percentiles")
    parser.add_argument("--metadata", help="metadata CSV (default: the dataset's metadata_rxrx3_core.csv)")
    parser.add_argument("--experiments", nargs="+", help="embed only these experiments")
    parser.add_argument("--well-list", help="embed only the wells in this file (one well_id per line)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers per process (image decoding)")
    parser.add_argument("--part-wells", type=int, default=DEFAULT_PART_WELLS,
                        help=f"wells per part file written while running (default: {DEFAULT_PART_WELLS})")
    parser.add_argument("--revision", help="Hub revision of the model and the dataset")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist and discard the parts of an interrupted run "
                             "(without it, the same command resumes that run)")
    parser.add_argument("--per-channel", action="store_true",
                        help="channel-agnostic models: each channel's token mean side by side (C x hidden_size "
                             "features) instead of the mean over all tokens")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    result = embed(args.model, args.data, args.out, blocks=args.blocks, batch_size=args.batch_size,
                   device=args.device, dtype=args.dtype, format=args.format, channels=args.channels,
                   per_site=args.per_site, uint16_rule=args.uint16_rule, metadata=args.metadata,
                   experiments=args.experiments, well_list=args.well_list, num_workers=args.num_workers,
                   part_wells=args.part_wells, revision=args.revision, overwrite=args.overwrite,
                   per_channel=args.per_channel, show_progress=not args.no_progress)
    for block, path in result.outputs.items():
        print(f"block {block}: {path}")
    return 0


__all__ = ["argument_type", "build_parser", "main"]
