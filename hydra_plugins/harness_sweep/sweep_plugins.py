"""The harness's Hydra sweeper and launchers, registered as `hydra/sweeper=grids`, `hydra/launcher=harness_local`
and `hydra/launcher=harness_slurm` (conf/hydra/launcher/{local,slurm}.yaml build on them).

The logic lives in harness.sweep (grid, launcher, plan, status); these classes only bind it to Hydra and submitit.
"""


import sys
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher

import harness.sweep.config  # noqa: F401  (registers the sweeper and launcher configs)
from harness.sweep.launcher import SweepLaunch, as_dict, profile_overrides, submitit_parameters
from harness.sweep.profiles import choose_profile


# ------------------------------------------------------------------------------------------------- sweeper
class GridSweeper(BasicSweeper):
    """Hydra's basic sweeper over a union of grids; batches and launches exactly as the basic sweeper does."""

    def __init__(self, max_batch_size: Optional[int], params: Optional[dict] = None, grids: Optional[dict] = None):
        super().__init__(max_batch_size, params)
        self.grids = grids or {}

    def sweep(self, arguments: List[str]) -> Any:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from harness.sweep.grid import expand

        jobs = expand(self.params, self.grids, arguments, OverridesParser.create(config_loader=self.hydra_context.config_loader))
        # The basic sweeper parses `params` + arguments into one product; hand it the expanded union instead.
        self.params, self.grids = {}, {}
        self.split_arguments = lambda overrides, max_batch_size: list(BasicSweeper.split_overrides_to_chunks(jobs, max_batch_size))
        return super().sweep([])


# ------------------------------------------------------------------------------------------------- launchers
class LocalLauncher(SweepLaunch, BasicLauncher):
    """Runs one job at a time in this process (Hydra's basic launcher), deduplicated, skipping complete runs."""

    def __init__(self, rerun_complete: bool = False) -> None:
        super().__init__()
        self.rerun_complete = rerun_complete

    def start_runs(self, runs: list) -> Dict[str, dict]:
        out = {}
        for run in runs:
            num = run.job_nums[0]
            ret = BasicLauncher.launch(self, [run.overrides], initial_job_idx=num)[0]
            log = Path(str(self.config.hydra.sweep.dir)) / str(num) / f"{self.config.hydra.job.name}.log"
            if ret.status == JobStatus.FAILED:  # Hydra hands the exception back: keep its traceback in the job's log
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "a") as f:
                    traceback.print_exception(ret._return_value, file=f)
            out[run.run_id] = {"return": ret, "job_id": None, "logs": [str(log)]}
        return out


class SlurmLauncher(SweepLaunch, SubmititSlurmLauncher):
    """hydra-submitit-launcher's Slurm launcher, one job array per resource profile."""

    def __init__(self, wait: bool = True, rerun_complete: bool = False, resources: Any = None, **params: Any) -> None:
        super().__init__(**params)
        self.wait, self.rerun_complete = wait, rerun_complete
        self.resources = {name: as_dict(p) for name, p in as_dict(resources).items()}

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """In the job: run it as hydra-submitit does, and print a failed run's traceback into the job's log."""
        ret = super().__call__(*args, **kwargs)
        if ret.status == JobStatus.FAILED:
            traceback.print_exception(ret._return_value, file=sys.stderr)
        return ret

    def _executor(self, profile: dict):
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"),
                                         slurm_max_num_timeout=params.pop("max_num_timeout"))
        params = submitit_parameters(profile, params)
        base = set(BaseQueueConf.__dataclass_fields__)
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
        return executor

    def start_runs(self, runs: list) -> Dict[str, dict]:
        from hydra.core.singleton import Singleton

        groups: dict[str, list] = {}
        for run in runs:
            groups.setdefault(choose_profile(run, self.resources) if self.resources else "", []).append(run)
        submitted = {}
        for name, group in groups.items():
            profile = self.resources.get(name, {})
            extra = profile_overrides(profile) if profile else []
            args = [(run.overrides + extra, "hydra.sweep.dir", run.job_nums[0], f"job_id_for_{run.job_nums[0]}",
                     Singleton.get_state()) for run in group]
            jobs = self._executor(profile).map_array(self, *zip(*args))
            for run, job in zip(group, jobs):
                print(f"[harness] job {job.job_id} ({name or 'default'} resources): {run.run_id}", flush=True)
                submitted[run.run_id] = {"job": job, "job_id": job.job_id, "profile": name,
                                         "logs": [str(job.paths.stdout), str(job.paths.stderr)]}
        for run in runs:
            info = submitted[run.run_id]
            job = info.pop("job")
            info["return"] = self._result(job, run) if self.wait else None
        return submitted

    @staticmethod
    def _result(job, run) -> JobReturn:
        """The job's JobReturn; a job that died without one (time limit, cancel, node failure) is a failed run."""
        try:
            return job.results()[0]
        except Exception as exc:  # noqa: BLE001  (any way a job can die is a failed run, not a failed sweep)
            return JobReturn(overrides=run.overrides, status=JobStatus.FAILED, _return_value=exc)

