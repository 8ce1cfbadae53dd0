"""The program the sandbox runs for one code sample: this file's text followed by `run(<test program>, <seconds>)`
(harness.eval.code.runner_program). It scores the test program as open-instruct did (allenai/open-instruct@b6737f623
eval/codex_humaneval/execution.py and eval/mbpp/execution.py, `unsafe_execute` and `check_correctness`):

- passed = the program ran to its end: `exec` with a fresh globals dict, so `__name__` is not "__main__" and an
  `if __name__ == "__main__":` block is skipped; any exception, SystemExit included, is a failure;
- the time limit runs from the program's first line (an interval timer around the exec, open-instruct's
  `time_limit`), not from interpreter start: numpy, which open-instruct's forked worker had already imported, is
  imported before the clock starts; a program still alive a second after its limit is killed (open-instruct:
  `p.join(timeout + 1)`, then kill, scored "timed out");
- what open-instruct's `reliability_guard` disables is disabled (exit, quit, help, os.kill, os.remove, os.getcwd,
  shutil.rmtree, subprocess.Popen, ...: calling one raises TypeError) and its I/O is swallowed (stdout and stderr
  written to a buffer nobody reads; stdin unreadable).
The verdict is the exit status, PASSED only after the exec returned (a process that exits on its own, `os._exit(0)`
included, never reported "passed" to open-instruct either), and a line on stderr says what happened. The sandbox
(harness.eval.sandbox) keeps the isolation; this file imports nothing from the project, which the program cannot see.
"""

import builtins
import contextlib
import faulthandler
import io
import os
import signal
import sys
import time

PASSED, FAILED, TIMED_OUT = 86, 3, 124
# Names open-instruct's reliability_guard sets to None (read from its code; the list is the behaviour).
DISABLED = {
    builtins: ("exit", "quit", "help"),
    os: ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty", "killpg",
         "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot",
         "lchflags", "lchmod", "lchown", "getcwd", "chdir"),
}
DISABLED_LATER = {"shutil": ("rmtree", "move", "chown"), "subprocess": ("Popen",)}
BLOCKED_MODULES = ("ipdb", "joblib", "resource", "psutil", "tkinter")
_exit = os._exit


class TimedOut(Exception):
    pass


class WriteOnly(io.StringIO):
    """Takes what the program prints; reading it raises (open-instruct's WriteOnlyStringIO)."""

    def read(self, *args, **kwargs):
        raise OSError

    def readline(self, *args, **kwargs):
        raise OSError

    def readlines(self, *args, **kwargs):
        raise OSError

    def readable(self, *args, **kwargs):
        return False


def disable_destructive() -> None:
    import shutil
    import subprocess

    faulthandler.disable()
    os.environ["OMP_NUM_THREADS"] = "1"
    modules = {**DISABLED, shutil: DISABLED_LATER["shutil"], subprocess: DISABLED_LATER["subprocess"]}
    for module, names in modules.items():
        for name in names:
            if hasattr(module, name):
                setattr(module, name, None)
    for name in BLOCKED_MODULES:
        sys.modules[name] = None


def _alarm(signum, frame):
    raise TimedOut("Timed out!")


@contextlib.contextmanager
def swallowed_io():
    sink = WriteOnly()
    stdin, sys.stdin = sys.stdin, sink
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        sys.stdin = stdin


def run(source: str, seconds: float) -> None:
    try:
        import numpy  # noqa: F401  (imported in open-instruct's worker before the clock started)
    except ImportError:
        pass
    err = sys.stderr
    disable_destructive()
    faulthandler.dump_traceback_later(seconds + 1, exit=True, file=err)  # the hard stop, even in C code
    signal.signal(signal.SIGALRM, _alarm)
    start = time.monotonic()
    try:
        with swallowed_io():
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                exec(source, {})
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        verdict, line = PASSED, "passed"
    except TimedOut:
        verdict, line = TIMED_OUT, "timed out"
    except BaseException as e:  # noqa: BLE001  (SystemExit and KeyboardInterrupt fail too)
        verdict, line = FAILED, f"failed: {type(e).__name__}: {e}"
    err.write(f"{line} (the program ran {time.monotonic() - start:.3f} s)\n")
    err.flush()
    _exit(verdict)  # now, whatever threads the program left behind
