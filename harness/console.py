"""A calm console: what the terminal shows while `python -m harness` runs, and the run's log file for the rest.

By default the terminal gets one line per stage (what, where, elapsed), a progress bar while a long stage works
(training steps; the policy generating or scoring what its generation cache lacks; a judge at work:
harness.eval.progress) and the summary. Everything else the process writes (library logs, warnings, per-step metrics,
third-party progress bars, subprocess output) goes to the run's log file, `results/runs/<run_id>/run.log` beside its
result.json; the stage lines and the summary are there too, and a failed run's traceback. With `verbose=true` the
same stream is also shown live.

The capture works on file descriptors 1 and 2, so output of C extensions and child processes is caught as well.
Outside `capture` (a run started in-process, e.g. by the tests) nothing is redirected and these helpers only print.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Iterator

from harness.config.errors import disk_full

# The terminal while a capture is active (None: stdout is the terminal).
_terminal: IO[str] | None = None
_bar = {"label": "", "total": 0, "done": 0, "shown": False}
_shown_stages: set[str] = set()


_verbose = {"on": False}


def _show(text: str) -> None:
    """To the terminal and the log: stdout alone when it reaches both (not captured, or verbose)."""
    _clear_bar()
    if _terminal is not None and not _verbose["on"]:
        _terminal.write(text + "\n")
        _terminal.flush()
    print(text, flush=True)


def say(text: str) -> None:
    _show(text)


def stage(kind: str, label: str, where: str | Path, seconds: float | None, state: str) -> None:
    """The one line of a stage: `<state> <label>  <elapsed>  <dir>`, once per stage (a judge reuses the base model
    the policy started from: said once); data preparation stays in the log."""
    if kind == "data" or _terminal is None or str(where) in _shown_stages:
        return
    _shown_stages.add(str(where))
    elapsed = f"{seconds:7.1f} s" if seconds is not None else " " * 9
    _bar["total"] = 0
    _show(f"[harness] {state:<7} {label:<60} {elapsed}  {where}")


# ------------------------------------------------------------------------------------------------- progress
def progress(label: str, total: int) -> None:
    """Start a bar on the terminal (a TTY only: a piped console keeps one line per stage)."""
    _bar.update(label=label, total=max(int(total), 1), done=0, shown=False)
    advance(0)


def advance(n: int = 1) -> None:
    if _terminal is None or not _bar["total"]:
        return
    before = _bar["done"]
    _bar["done"] = min(before + n, _bar["total"])
    if not _terminal.isatty() or (n and _bar["done"] == before and _bar["shown"]):  # nothing new to draw
        return
    width = 30
    filled = int(width * _bar["done"] / _bar["total"])
    # \033[K: the rest of a longer line drawn before (the previous bar) is cleared
    drawn = f"{_bar['label']} [{'#' * filled}{'.' * (width - filled)}] {_bar['done']}/{_bar['total']}"
    _terminal.write(f"\r  {drawn}\033[K")
    _terminal.flush()
    _bar["shown"] = True


def _clear_bar() -> None:
    if _bar["shown"] and _terminal is not None:
        _terminal.write("\r\033[K")
        _bar["shown"] = False


# ------------------------------------------------------------------------------------------------- capture
def _tee(read_fd: int, log: IO[bytes], terminal_fd: int) -> None:
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            log.write(chunk)
            log.flush()
            os.write(terminal_fd, chunk)


@contextlib.contextmanager
def capture(log_path: Path, verbose: bool = False, reported: tuple[type[BaseException], ...] = ()) -> Iterator[Path]:
    """Send fds 1 and 2 to `log_path` (and, verbose, to the terminal too) for the duration; on failure the traceback
    goes to the log and one line naming the error and the log to the terminal (not for the `reported` errors, which
    the caller reports in a line of its own)."""
    global _terminal
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log = open(log_path, "ab", buffering=0)
    log.write(f"\n===== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {' '.join(sys.argv)}\n".encode())
    thread = None
    if verbose:
        read_fd, write_fd = os.pipe()
        thread = threading.Thread(target=_tee, args=(read_fd, log, saved[0]), daemon=True)
        thread.start()
        target = write_fd
    else:
        target = log.fileno()
    os.dup2(target, 1)
    os.dup2(target, 2)
    if verbose:
        os.close(write_fd)
    _terminal, _verbose["on"] = os.fdopen(os.dup(saved[0]), "w", buffering=1), verbose
    _shown_stages.clear()
    try:
        yield log_path
    except BaseException as exc:
        with contextlib.suppress(OSError):  # a full disk cannot take the traceback either
            traceback.print_exc()
        if not isinstance(exc, reported) and not disk_full(exc):  # the caller says those in one line of its own
            say(f"[harness] run failed: {type(exc).__name__}: {exc}".splitlines()[0] + f"  (log: {log_path})")
        raise
    finally:
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()
        _clear_bar()
        _bar["total"] = 0
        _terminal.close()
        _terminal, _verbose["on"] = None, False
        os.dup2(saved[0], 1)  # closes the pipe's last write ends: the tee sees its end
        os.dup2(saved[1], 2)
        if thread is not None:
            thread.join(timeout=5)
        for fd in saved:
            os.close(fd)
        log.close()
