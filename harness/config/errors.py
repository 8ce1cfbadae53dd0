"""Errors a user can fix: raised before any work starts, with the bad value and the valid choices (or the command that
fixes it). Every command turns a UserError into one `error:` line and exit status 2 (harness.cli)."""


class UserError(Exception):
    """A mistake the user can fix: its message names the bad value and the fix."""


class ConfigError(UserError, ValueError):
    """A configuration that cannot run (bad value, impossible combination, missing data column)."""


class UsageError(UserError):
    """A command line that does not parse (unknown option, missing argument)."""


class BenchmarksFailed(RuntimeError):
    """A run finished and was recorded, but some of its benchmarks failed (their stages rerun next time)."""
