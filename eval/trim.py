"""`phenom trim`: a model cut to its first k encoder blocks (paper.md §1.7 and §3), and the compute it saves.

    phenom trim --model <hub id or dir> --blocks k --out DIR [--verify]

The trimmed model is the same checkpoint with `trim_encoder_blocks = k` in its config: `PhenomModel` then builds
blocks 1..k only and ignores the dropped blocks' weights when it loads a full checkpoint, so
`AutoModel.from_pretrained(DIR)` loads it and its `pooler_output` (the patch-token mean of its last block) is block
k's pooled embedding of the full model (`get_block_embeddings(..., blocks=[k])`). The output folder holds the
`save_pretrained` files (`config.json`, `model.safetensors` with k blocks), the source's `preprocessor_config.json`
and LICENSE file(s) unchanged (converted OpenPhenom weights keep their non-commercial license), and
`trim_report.json`.

Compute saved: encoder FLOPs of one view at the config's `image_size` (channels: `--channels`, else a standard
model's `num_channels`, else 6 for a channel-agnostic model) through the patch embedding and the blocks, counted by
`torch.utils.flop_counter.FlopCounterMode` on the meta device (shapes only, no memory or time), trimmed vs full;
also parameters (the full count from a meta-device copy of the untrimmed model) and weight bytes. The ratio is what
trimming saves at inference; the paper's MAE-G/8 cut to 38 of 48 blocks keeps 79% of the FLOPs.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from phenom_data.atomic import replace_directory
from phenom_data.errors import command, report_error

KEPT_FILES = ("preprocessor_config.json", "LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE")
REPORT_NAME = "trim_report.json"
VERIFY_TOLERANCE = 1e-6
CHANNEL_AGNOSTIC_FLOP_CHANNELS = 6


@dataclass
class TrimReport:
    """What `phenom trim` wrote and what it saves.

    Args:
        model: the source model (Hub id or folder).
        blocks_kept: `trim_encoder_blocks` of the output (k).
        blocks_full: encoder blocks of the full model (`num_hidden_layers`).
        input_shape: `[1, channels, height, width]` the FLOPs are counted at.
        encoder_flops_full, encoder_flops_trimmed: FLOPs of the patch embedding and the encoder blocks for one view.
        encoder_flops_ratio: trimmed / full.
        compute_saved: `1 - encoder_flops_ratio`.
        parameters_full, parameters_trimmed: parameter counts of the encoder model (`PhenomModel`).
        weights_bytes_full, weights_bytes_trimmed: bytes of the parameters (in the checkpoint's dtype).
        file_bytes_trimmed: size of the written `model.safetensors`.
        kept_files: files copied unchanged from the source (image processor config, license).
        max_abs_difference: with `--verify`, the largest |trimmed pooler_output - full block-k embedding|.
    """

    model: str
    blocks_kept: int
    blocks_full: int
    input_shape: list[int]
    encoder_flops_full: int
    encoder_flops_trimmed: int
    encoder_flops_ratio: float
    compute_saved: float
    parameters_full: int
    parameters_trimmed: int
    weights_bytes_full: int
    weights_bytes_trimmed: int
    file_bytes_trimmed: int
    kept_files: list[str]
    max_abs_difference: float | None = None


def untrimmed(config):
    """A copy of `config` with every block (`trim_encoder_blocks = None`)."""
    full_config = copy.deepcopy(config)
    full_config.trim_encoder_blocks = None
    return full_config


def flop_channels(config, num_channels: int | None = None) -> int:
    """Channels of the view FLOPs are counted at: `num_channels` if given; a standard model's `num_channels`; six
    (Cell Painting, as RxRx1 and RxRx3) for a channel-agnostic model, whose `num_channels` is only the size of its
    legacy position table (11 for OpenPhenom)."""
    if num_channels is not None:
        return num_channels
    return CHANNEL_AGNOSTIC_FLOP_CHANNELS if config.channel_agnostic else config.num_channels


def encoder_flops_per_block(config, num_channels: int | None = None) -> tuple[int, list[int], list[int]]:
    """FLOPs of one view of `[1, channels, image_size, image_size]` (channels: `flop_channels`) through the untrimmed
    encoder of `config`, counted on the meta device: `(patch embedding FLOPs, [FLOPs of block 1, ..., block L],
    input shape)`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from modeling_phenom import PhenomModel

    with torch.device("meta"):
        model = PhenomModel(untrimmed(config))
        pixels = torch.empty(1, flop_channels(config, num_channels), config.image_size, config.image_size)
    # The embeddings take self-standardized pixels; standardizing itself is elementwise and not counted.
    with FlopCounterMode(display=False) as counter:
        tokens = model.embeddings(pixels)
    embedding_flops, per_block = int(counter.get_total_flops()), []
    for layer in model.encoder.layers:
        with FlopCounterMode(display=False) as counter:
            tokens = layer(tokens)
        per_block.append(int(counter.get_total_flops()))
    return embedding_flops, per_block, list(pixels.shape)


def encoder_flops(config, num_blocks: int | None = None, num_channels: int | None = None) -> tuple[int, list[int]]:
    """FLOPs of the patch embedding and the first `num_blocks` encoder blocks (all by default) for one view; returns
    `(flops, input shape)`."""
    embedding_flops, per_block, shape = encoder_flops_per_block(config, num_channels)
    return embedding_flops + sum(per_block[:num_blocks]), shape


def full_size(config) -> tuple[int, int]:
    """`(parameters, bytes)` of the untrimmed `PhenomModel` of `config`, from a meta-device copy."""
    import torch

    from modeling_phenom import PhenomModel

    with torch.device("meta"):
        model = PhenomModel(untrimmed(config))
    return model_size(model)


def model_size(model) -> tuple[int, int]:
    """`(parameters, bytes)` of a model's parameters."""
    parameters = list(model.parameters())
    return sum(p.numel() for p in parameters), sum(p.numel() * p.element_size() for p in parameters)


def source_file(model: str, filename: str, revision: str | None = None) -> Path | None:
    """A file of the source model: from its folder, or downloaded from its Hub repo; None when the model has none."""
    local = Path(model)
    if local.is_dir():
        path = local / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    try:
        return Path(hf_hub_download(model, filename, revision=revision))
    except RemoteEntryNotFoundError:
        return None
    except LocalEntryNotFoundError:
        print(f"warning: {filename} of {model} is not in the local Hub cache and the Hub cannot be reached; "
              "it is not copied", file=sys.stderr)
        return None


def check_blocks(config, blocks: int) -> None:
    """`blocks` must be in 1..the blocks the source model has (a trimmed model can only be trimmed further)."""
    available = config.trim_encoder_blocks or config.num_hidden_layers
    if not isinstance(blocks, int) or not 1 <= blocks <= available:
        raise ValueError(f"--blocks must be in 1..{available} (the encoder blocks this model has, numbered from 1), "
                         f"got {blocks}")


def verify_trim(model: str, trimmed_dir: Path, blocks: int, revision: str | None = None, seed: int = 0,
                tolerance: float = VERIFY_TOLERANCE) -> float:
    """Load the full model and the written trimmed one; compare the trimmed `pooler_output` with the full model's
    block-`blocks` embedding on two seeded random uint8 views. Returns the largest absolute difference; raises
    `ValueError` beyond `tolerance`."""
    import torch
    from transformers import AutoModel

    full = AutoModel.from_pretrained(model, revision=revision).eval()
    trimmed = AutoModel.from_pretrained(trimmed_dir).eval()
    config = full.config
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (2, flop_channels(config), config.image_size, config.image_size),
                           generator=generator, dtype=torch.uint8)
    with torch.inference_mode():
        expected = full.get_block_embeddings(pixels, blocks=[blocks])[blocks].float()
        actual = trimmed(pixels).pooler_output.float()
    difference = float((actual - expected).abs().max())
    if difference > tolerance:
        raise ValueError(f"the trimmed model's pooler_output differs from block {blocks} of the full model by "
                         f"{difference:.3g} (> {tolerance:g})")
    return difference


def trim(model: str, blocks: int, out: str | os.PathLike, revision: str | None = None, overwrite: bool = False,
         verify: bool = False, num_channels: int | None = None) -> TrimReport:
    """Write `model` trimmed to its first `blocks` blocks into `out` (see the module docstring); returns the report.

    The folder is assembled under a temporary name beside `out` and renamed when complete.
    """
    from transformers import AutoConfig, AutoModel

    import modeling_phenom  # noqa: F401  (registers Phenom with the Auto classes)
    from modeling_phenom.loading import check_model_source, load_pretrained

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; the trimmed model is a folder")
    check_model_source(model)
    config = AutoConfig.from_pretrained(model, revision=revision)
    if not hasattr(config, "trim_encoder_blocks"):
        raise ValueError(f"{model} is a {type(config).__name__} model; phenom trim needs a Phenom (or OpenPhenom) "
                         "model")
    check_blocks(config, blocks)
    # Refused when the first `blocks` blocks lack weights or a weight is NaN (blocks past them are ignored on purpose).
    trimmed = load_pretrained(AutoModel, model, revision=revision, trim_encoder_blocks=blocks)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    trimmed.save_pretrained(temporary)
    kept = []
    for name in KEPT_FILES:
        path = source_file(model, name, revision)
        if path is not None:
            shutil.copyfile(path, temporary / name)
            kept.append(name)
    embedding_flops, block_flops, input_shape = encoder_flops_per_block(config, num_channels)
    flops_full, flops_trimmed = embedding_flops + sum(block_flops), embedding_flops + sum(block_flops[:blocks])
    parameters_full, bytes_full = full_size(trimmed.config)
    parameters_trimmed, bytes_trimmed = model_size(trimmed)
    report = TrimReport(
        model=model, blocks_kept=blocks, blocks_full=config.num_hidden_layers, input_shape=input_shape,
        encoder_flops_full=flops_full, encoder_flops_trimmed=flops_trimmed,
        encoder_flops_ratio=flops_trimmed / flops_full, compute_saved=1 - flops_trimmed / flops_full,
        parameters_full=parameters_full, parameters_trimmed=parameters_trimmed, weights_bytes_full=bytes_full,
        weights_bytes_trimmed=bytes_trimmed, file_bytes_trimmed=(temporary / "model.safetensors").stat().st_size,
        kept_files=kept,
    )
    if verify:
        report.max_abs_difference = verify_trim(model, temporary, blocks, revision)
    (temporary / REPORT_NAME).write_text(json.dumps(asdict(report), indent=2) + "\n")
    replace_directory(temporary, out)
    return report


def format_report(report: TrimReport) -> str:
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
    try:
        report = trim(args.model, args.blocks, args.out, revision=args.revision, overwrite=args.overwrite,
                      verify=args.verify, num_channels=args.channels)
    except (ValueError, FileExistsError, OSError) as error:
        return report_error(prog or "phenom trim", error)
    print(format_report(report))
    print(f"wrote {args.out}")
    return 0


__all__ = [
    "KEPT_FILES",
    "REPORT_NAME",
    "TrimReport",
    "CHANNEL_AGNOSTIC_FLOP_CHANNELS",
    "untrimmed",
    "flop_channels",
    "encoder_flops_per_block",
    "encoder_flops",
    "full_size",
    "model_size",
    "source_file",
    "check_blocks",
    "verify_trim",
    "trim",
    "format_report",
    "build_parser",
    "main",
]
