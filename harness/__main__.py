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

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from harness.config import schema  # noqa: E402,F401  (registers the config schemas)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from harness.records.fastpath import finished, report_finished

    done = finished(cfg)  # a recorded run answers before torch & co. are imported
    if done is not None:
        report_finished(done)
        return done.get("average")
    from harness import console
    from harness.records.identity import run_log_path

    with console.capture(run_log_path(cfg), cfg.verbose):  # the terminal: a line per stage; the rest: the run's log
        from harness.pipeline import run

        return run(cfg).get("average")


if __name__ == "__main__":
    main()
