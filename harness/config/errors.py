"""Errors a user can fix: raised before any work starts, with the bad value and the valid choices."""


class ConfigError(ValueError):
    """A configuration that cannot run (bad value, impossible combination, missing data column)."""


class BenchmarksFailed(RuntimeError):
    """A run finished and was recorded, but some of its benchmarks failed (their stages rerun next time)."""
