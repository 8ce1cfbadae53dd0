"""Errors a user can fix: raised before any work starts, with the bad value and the valid choices (or the command that
fixes it). Every command turns a UserError into one `error:` line and exit status 2 (harness.cli)."""

import errno


class UserError(Exception):
    """A mistake the user can fix: its message names the bad value and the fix."""


class ConfigError(UserError, ValueError):
    """A configuration that cannot run (bad value, impossible combination, missing data column)."""


class UsageError(UserError):
    """A command line that does not parse (unknown option, missing argument)."""


class BenchmarksFailed(RuntimeError):
    """A run finished and was recorded, but some of its benchmarks failed (their stages rerun next time)."""


# How a full disk shows through the libraries that write (SQLite, safetensors, torch's zip writer) when not as ENOSPC.
DISK_FULL_MESSAGES = ("No space left on device", "database or disk is full", "os error 28")


def disk_full(exc: BaseException | None) -> BaseException | None:
    """The error in `exc` or its causes that says the disk is full, if one does."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or any(m in str(exc) for m in DISK_FULL_MESSAGES):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
