"""Errors a user can fix: raised before any work starts, with the bad value and the valid choices."""

import errno


class ConfigError(ValueError):
    """A configuration that cannot run (bad value, impossible combination, missing data column)."""


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
