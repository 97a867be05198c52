"""`phenom convert`: the command line of `phenom.convert_writer.convert_openphenom` (the released OpenPhenom
checkpoint -> a native Phenom directory).

    phenom convert recursionpharma/OpenPhenom openphenom-native [--encoder-only]
"""

from __future__ import annotations

import argparse

from modeling_phenom.openphenom import HUB_REPO_ID, LICENSE_NAME
from phenom_data.errors import command


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Convert the released OpenPhenom checkpoint (Hub repo id or a directory in its layout) into a native "
            "Phenom directory: PhenomConfig, real safetensors, preprocessor config, and the source's non-commercial "
            "license file. Lossless: the converted model reproduces the released one exactly."
        ),
    )
    parser.add_argument("source", help=f"Hub repo id (e.g. {HUB_REPO_ID}) or a local directory in its layout")
    parser.add_argument("destination", help="output directory (written atomically)")
    parser.add_argument("--encoder-only", action="store_true",
                        help="keep only the encoder (drops the decoder: ca-s16 712 MB -> about 90 MB)")
    parser.add_argument("--revision", default=None, help="Hub branch, tag or commit (default: main)")
    parser.add_argument("--cache-dir", default=None, help="Hugging Face cache directory")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: the logged-in one)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    return parser


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from huggingface_hub.constants import is_offline_mode

    from phenom.convert_writer import convert_openphenom

    args = build_parser(prog).parse_args(argv)
    # A bad source or destination raises OSError / ValueError: one line on stderr, exit code 2 (`@command`).
    destination = convert_openphenom(
        args.source, args.destination, encoder_only=args.encoder_only, overwrite=args.overwrite,
        revision=args.revision, cache_dir=args.cache_dir, token=args.token, local_files_only=is_offline_mode(),
    )
    weights = destination / "model.safetensors"
    print(f"wrote {destination} ({'encoder only' if args.encoder_only else 'encoder + decoder'}, "
          f"model.safetensors {weights.stat().st_size / 1e6:.1f} MB)")
    print(f"license: {LICENSE_NAME} (non-commercial); see {destination / 'README.md'}")
    return 0


__all__ = ["build_parser", "main"]
