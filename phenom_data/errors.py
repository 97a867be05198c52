"""How every command reports a user error: one line on stderr and exit code 2; the traceback only when asked.

A user error is bad input the user can fix (a wrong option value, a missing or unreadable file, an output that is
in use or already holds something): the `ValueError` and `OSError` families (`FileNotFoundError`,
`FileExistsError`, `phenom_data.paths.UnsafePathError`, `phenom_data.locks.OutputLockedError`, ...). Anything else
is a bug and keeps its traceback. `PHENOM_DEBUG=1` in the environment, or `--debug` anywhere on a command line,
shows the traceback of user errors too.

Each command's `main(argv, prog)` is wrapped with `@command`, so `phenom <command>`, `python -m <module>` and a test
calling `main([...])` behave the same. While a command runs, the project's loggers (`PROJECT_LOGGERS`) write their
INFO-and-above records (library progress notes: "resuming: ...", "wrote ...") to stderr as bare lines.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

DEBUG_ENV = "PHENOM_DEBUG"
DEBUG_FLAG = "--debug"
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
# Top-level packages whose library code logs progress (`logging.getLogger(__name__)`) instead of printing.
PROJECT_LOGGERS = ("eval", "hub_cards", "modeling_phenom", "phenom", "phenom_data", "train")


def debug_enabled() -> bool:
    """True when `PHENOM_DEBUG` is set to anything but an empty string, `0` or `false`."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextmanager
def debug_flag_applied(argv: list[str]) -> Iterator[list[str]]:
    """Yield `argv` without `--debug`; when it was there, `PHENOM_DEBUG=1` is set for the `with` block (and so for
    the processes the command starts: accelerate launches, the demo's stages), then restored."""
    if DEBUG_FLAG not in argv:
        yield argv
        return
    previous = os.environ.get(DEBUG_ENV)
    os.environ[DEBUG_ENV] = "1"
    try:
        yield [item for item in argv if item != DEBUG_FLAG]
    finally:
        if previous is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = previous


def one_line(error: BaseException) -> str:
    """The error's message on one line (a multi-line message is joined with `; `)."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, KeyError) and error.args:  # str(KeyError) is the quoted key only
        text = str(error.args[0])
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def report_error(prog: str, error: BaseException) -> int:
    """Print `<prog>: error: <message>` on stderr and return 2; with debugging on, re-raise instead."""
    if debug_enabled():
        raise error
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
    return 2


def on_main_process(state, function: Callable[[], object]) -> object:
    """Collective over accelerate's processes (`state`: an `Accelerator` or `PartialState`): `function()` runs on
    the main process only and every process returns its result; a user error it raises is raised on every process
    (as `ValueError`, or `OSError` for the `OSError` family, with the same message), so no process is left waiting in a
    collective while another one has stopped."""
    result, failure = None, None
    if state.is_main_process:
        try:
            result = function()
        except USER_ERRORS as error:
            failure = ("OSError" if isinstance(error, OSError) else "ValueError", one_line(error), error)
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        shared = broadcast_object_list([result, failure and failure[:2]])
        result = shared[0]
        if failure is None and shared[1] is not None:
            failure = (*shared[1], None)
    if failure is not None:
        kind, message, original = failure
        if original is not None:
            raise original
        raise (OSError if kind == "OSError" else ValueError)(message)
    return result


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a record is emitted (a redirected stream, pytest's capture), as
    `logging.lastResort` does, with the bare message."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.setLevel(level)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the current stderr is always used
        pass


@contextmanager
def progress_on_stderr(level: int = logging.INFO) -> Iterator[None]:
    """For the `with` block, the records of `PROJECT_LOGGERS` at `level` and above go to stderr (once: a command
    run inside another one, as the demo's stages, adds nothing)."""
    loggers = [logging.getLogger(name) for name in PROJECT_LOGGERS]
    if any(isinstance(handler, _CurrentStderrHandler) for handler in loggers[0].handlers):
        yield
        return
    handler, levels = _CurrentStderrHandler(level), [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
    try:
        yield
    finally:
        for logger, previous in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(previous)


def command(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorate a command's `main(argv=None, prog=None) -> int`: strips `--debug` from `argv` and turns user errors
    into one line on stderr and exit code 2 (see the module docstring)."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None, prog: str | None = None) -> int:
        module = getattr(main, "__module__", "phenom")
        name = prog or (Path(sys.argv[0]).name if module == "__main__" else module)
        with debug_flag_applied(list(sys.argv[1:] if argv is None else argv)) as arguments, progress_on_stderr():
            try:
                return int(main(arguments, prog) or 0)
            except USER_ERRORS as error:
                return report_error(name, error)

    return wrapper


__all__ = ["DEBUG_ENV", "DEBUG_FLAG", "PROJECT_LOGGERS", "USER_ERRORS", "command", "debug_enabled",
           "debug_flag_applied", "on_main_process", "one_line", "progress_on_stderr", "report_error"]
