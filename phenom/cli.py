"""The `phenom` command: parses the subcommand and hands the rest of the arguments to the module that owns it.

Each subcommand module exposes `main(argv: list[str] | None = None, prog: str | None = None) -> int` with its own
argparse parser, and is imported only when its subcommand runs, so `phenom --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

from phenom import __version__
from phenom_data.errors import DEBUG_ENV, DEBUG_FLAG, USER_ERRORS, debug_flag_applied, report_error

# name -> (module with `main(argv, prog)`, one-line help). Only subcommands that exist are listed.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "phenom.commands.demo", "the whole loop on a generated screen in minutes on a CPU: train, embed, score, card"
    ),
    "card": ("phenom.commands.card", "model card (README.md with model-index) from results JSON; --push to the Hub"),
    "leaderboard": (
        "phenom.commands.leaderboard", "one table of results across models and blocks: markdown, CSV, PNG"
    ),
    "pretrain": ("phenom.commands.pretrain", "MAE pretraining (Lion, one-cycle cosine, Fourier loss) with accelerate"),
    "convert": ("phenom.commands.convert", "convert the released OpenPhenom checkpoint to Phenom format"),
    "embed": ("phenom.commands.embed", "embed every well of a dataset with a model: one parquet per block"),
    "eval": ("phenom.commands.eval", "batch correction, the paper's benchmarks and plots from an embeddings file"),
    "verify-openphenom": (
        "phenom.commands.verify_openphenom",
        "embed RxRx3-core wells with the released OpenPhenom and compare with the published embeddings (network)",
    ),
    "probe": ("phenom.commands.probe", "block-wise linear probe: balanced accuracy per block on held-out experiments"),
    "trim": ("phenom.commands.trim", "a model trimmed to its first k blocks, with the compute it saves"),
    "curate": ("phenom.commands.curate", "perturbation-consistency curation: the well list pretraining reads"),
    "synth": ("phenom.commands.synth", "generate a synthetic RxRx-like dataset (RxRx3-core layout, planted biology)"),
}


def _usage() -> str:
    width = max((len(name) for name in SUBCOMMANDS), default=0)
    lines = [
        "usage: phenom <command> [options]",
        "",
        "Phenom: channel-agnostic microscopy MAEs (OpenPhenom, Phenom-1/2 geometries) on Hugging Face.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines += ["", "Run `phenom <command> --help` for the options of a command.",
              f"Errors in what you asked for are one line on stderr (exit code 2); {DEBUG_FLAG} (any command) or "
              f"{DEBUG_ENV}=1 shows the traceback."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    with debug_flag_applied(list(sys.argv[1:] if argv is None else argv)) as arguments:
        return _dispatch(arguments)


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"phenom {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"phenom: unknown command {name!r}; commands: {', '.join(SUBCOMMANDS) or '(none)'}", file=sys.stderr)
        return 2
    module_name, _ = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    try:
        return int(module.main(rest, prog=f"phenom {name}") or 0)
    except USER_ERRORS as error:  # commands report their own; this catches a command that does not
        return report_error(f"phenom {name}", error)


__all__ = ["SUBCOMMANDS", "main"]
