"""`phenom pretrain`: the command line of `train.pretrain.pretrain` (also what `accelerate launch train/pretrain.py`
and `accelerate launch -m phenom pretrain` run on every process)."""

from __future__ import annotations

import argparse
import logging
import sys

from phenom_data.errors import command


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    import train.pretrain

    parser = argparse.ArgumentParser(
        prog=prog, description=train.pretrain.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="YAML run config (train/configs/tiny.yaml, ca-s16.yaml, ...)")
    parser.add_argument("--resume", default=None, help="'latest' or a checkpoints/step_<N> folder of this run")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run's outputs in output_dir")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. data.path=DIR max_steps=40")
    return parser


def _log_progress_to_stderr() -> None:
    """The trainer's progress lines (processes and batch split, resumed step) as plain lines on stderr."""
    train_logger = logging.getLogger("train")
    if not train_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        train_logger.addHandler(handler)
        train_logger.setLevel(logging.INFO)


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Exit code 2 on bad input (one line, before any work), 3 on a non-finite loss."""
    from train.config import load_config
    from train.pretrain import NonFiniteLossError, pretrain

    args = build_parser(prog).parse_intermixed_args(argv)  # overrides before and after --resume
    config = load_config(args.config, args.overrides)
    _log_progress_to_stderr()
    try:
        result = pretrain(config, resume=args.resume, overwrite=args.overwrite)
    except NonFiniteLossError as error:
        print(f"pretrain stopped: {error}; the last good checkpoint is kept (resume with --resume latest)",
              file=sys.stderr)
        return 3
    if result.main_process:
        print(f"done: {result.steps} steps, final model in {result.final_dir} (last checkpoint: step "
              f"{result.last_checkpoint}) in {result.seconds:.1f} s on {result.processes} process(es)")
    return 0


__all__ = ["build_parser", "main"]
