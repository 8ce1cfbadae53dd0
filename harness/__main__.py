"""One point of the paper's grid, end to end.

    python -m harness                                   # embedded default: tiny model, bundled data, DPO, eval
    python -m harness dataset=ultrafeedback_fg model=tulu2_13b eval=paper
    python -m harness -m +sweep=table1                  # a sweep (see sweeps/)
"""

from __future__ import annotations

import os

# Before torch / transformers import: quiet, offline-friendly defaults a user can still override.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import sys  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from harness import cli  # noqa: E402
from harness.config import schema  # noqa: E402,F401  (registers the config schemas)
from harness.config.errors import BenchmarksFailed, UserError, disk_full  # noqa: E402

# Exit status of a single run: 2 a mistake the user can fix (config, data, a model or data the machine cannot reach),
# found before any work, or a full disk; 3 the run finished and was recorded but some benchmark failed; 130
# interrupted (SIGINT, as shells count it). In a sweep (-m) the error is the job's, and the sweep exits non-zero.
USER_ERROR, BENCHMARK_FAILED, INTERRUPTED = cli.USER_ERROR, 3, 130
RESUMES = "rerunning the same command resumes: complete stages are kept"


def to_log_file(message: str, exc: BaseException | None) -> None:
    """Write why a run failed into the run's log file (Hydra's <run dir>/harness.log) only, not the console: a run in
    the background leaves its reason on disk."""
    import logging

    record = logging.LogRecord("harness", logging.ERROR, __file__, 0, message, None,
                               (type(exc), exc, exc.__traceback__) if exc is not None else None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from harness.records.fastpath import finished, report_finished
    from harness.records.tracking import log_pending

    done = finished(cfg)  # a recorded run answers before torch & co. are imported
    if done is not None:
        log_pending(cfg.tracking, cfg.paths.results, done)  # its own logging had failed: logged now
        report_finished(done)
        return done.get("average")
    from harness import console
    from harness.records.identity import run_log_path

    log_path = None
    try:
        log_path = run_log_path(cfg)
        # the terminal: a line per stage; the rest: the run's log (the traceback of any failure too)
        with console.capture(log_path, cfg.verbose, reported=(UserError, BenchmarksFailed, KeyboardInterrupt)):
            from harness.pipeline import run

            result = run(cfg)
            failed = {k: b["error"] for k, b in result.get("benchmarks", {}).items() if "error" in b}
            if failed:
                raise BenchmarksFailed(f"run {result['run_id']}: {len(failed)} of {len(result['benchmarks'])} "
                                       "benchmark(s) failed (rerunning the command retries only them): "
                                       + "; ".join(f"{k}: {e.strip().splitlines()[0]}" for k, e in failed.items()))
    except (UserError, BenchmarksFailed) as exc:
        to_log_file(f"error: {exc}", None)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweep's launcher records it as the job's error
        if cli.debug():
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        fail(f"error: {cli.one_line(exc)}" + (f"  (log: {log_path})" if log_path and log_path.exists() else ""),
             BENCHMARK_FAILED if isinstance(exc, BenchmarksFailed) else USER_ERROR)
    except KeyboardInterrupt:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        fail(f"error: interrupted; {RESUMES}, an interrupted one continues" + (f"  (log: {log_path})" if log_path else ""),
             INTERRUPTED)
    except Exception as exc:
        full = disk_full(exc)
        if full is None:
            to_log_file(f"run failed: {type(exc).__name__}: {exc}", exc)
            raise
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        where = getattr(full, "filename", None) or cfg.paths.results
        fail(f"error: no space left on the disk holding {where} ({type(full).__name__}: "
             f"{str(full).splitlines()[0][:200]}); free space there or set paths.results / paths.stages to another "
             f"disk, then {RESUMES}", USER_ERROR)
    return result.get("average")


def fail(line: str, status: int) -> None:
    """One line on stderr and the exit status: the traceback, if any, is in the run's log."""
    print(line, file=sys.stderr, flush=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
