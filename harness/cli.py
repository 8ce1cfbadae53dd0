"""Every command's front door: a mistake the user can fix (harness.config.errors.UserError: a bad value, a missing
file, data or a model this machine cannot reach, a sweep or run that does not exist; a config Hydra cannot compose)
ends in one `error:` line that names the fix, and exit status 2. The traceback goes to the command's log,
`results/logs/<command>.log` under $HARNESS_HOME (else the directory the command runs in), and to the console too with
HARNESS_DEBUG=1. Anything else is a bug and raises as usual.

    @cli.command("harness.sweep")
    def main(argv: list[str] | None = None) -> int: ...
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable, Iterator

from harness.config.errors import UsageError, UserError

USER_ERROR = 2


def debug() -> bool:
    return os.environ.get("HARNESS_DEBUG", "").lower() in ("1", "true", "yes")


def user_error(exc: BaseException) -> bool:
    """A mistake the user can fix: ours, or a config Hydra / OmegaConf cannot compose (unknown option, bad value)."""
    if isinstance(exc, UserError):
        return True
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(exc, (HydraException, OmegaConfBaseException))


def one_line(exc: BaseException) -> str:
    """The message on one line (a multi-line message, e.g. Hydra's list of options, joined with its spaces; Hydra's
    config search path, which names no fix, left out)."""
    text = str(exc).split("Config search path:")[0]
    return " ".join(text.split()) or type(exc).__name__


def log_path(command: str) -> Path:
    """Where a command's tracebacks go: results/logs/<command>.log of the project home, else the temp directory."""
    home = Path(os.environ.get("HARNESS_HOME") or os.getcwd())
    for folder in (home / "results" / "logs", Path(tempfile.gettempdir()) / "harness-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder / f"{command}.log"
        except OSError:
            continue
    return Path(os.devnull)


def write_log(path: Path, exc: BaseException) -> None:
    try:
        with open(path, "a") as log:
            log.write(f"\n===== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {' '.join(sys.argv)}\n")
            log.write("".join(traceback.format_exception(exc)))
    except OSError:
        pass


def report(command: str, exc: BaseException) -> int:
    """One `error:` line on stderr (the traceback to the log, and to the console with HARNESS_DEBUG=1); returns 2."""
    path = log_path(command)
    write_log(path, exc)
    if debug():
        traceback.print_exception(exc, file=sys.stderr)
    where = f"  (traceback: {path})" if path != Path(os.devnull) else ""
    print(f"error: {one_line(exc)}{where}", file=sys.stderr, flush=True)
    return USER_ERROR


def command(name: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Wrap a command's `main(argv) -> exit status`: a user error becomes one line and exit status 2."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def guarded(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except Exception as exc:
                if not user_error(exc):
                    raise
                return report(name, exc)

        return guarded

    return wrap


@contextlib.contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """The warnings the harness logs (and Python warnings) while the block runs, kept for the command to fold into
    one line rather than printed one by one."""
    found: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(record.getMessage())

    logger = logging.getLogger("harness")
    handler, propagate = Keep(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            yield found
        found += [str(w.message) for w in caught]
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


class ArgumentParser(argparse.ArgumentParser):
    """argparse, whose usage errors are UsageErrors: one `error:` line like every other mistake."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (--help lists the arguments)")
