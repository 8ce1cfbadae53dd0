"""Plan a sweep before spending GPUs: its runs and unique stages after deduplication, what is complete, GPU-hours.

    python -m harness.sweep plan table1                  # the grid of sweeps/table1.yaml
    python -m harness.sweep plan all model=tulu2_7b      # extra overrides apply to every run

Two grid points are the same run when their configs have the same identity (pipeline.identity: the configuration that
determines the numbers), e.g. Table 1's DPO on UltraFeedback is also Table 2's and Table 5's. Two runs share a stage
when the stage keys match (the same functions the pipeline uses: harness.planning.planned_stages), e.g. one reward model
serves every PPO run naming it. Stage counts and costs below count each unique stage once.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

from harness.config.groups import CONF_DIR  # noqa: F401  (sweep files: CONF_DIR / "sweep")
from harness.records.stages import Stage
from harness.sweep.cost import CostModel, gpu_hours
from harness.sweep.memory import PHASES


@dataclass
class PlannedRun:
    overrides: list[str]
    config: DictConfig
    run_id: str
    config_hash: str
    stages: list[Stage]
    # Grid points (Hydra job numbers) that are this run.
    job_nums: list[int] = field(default_factory=list)

    @property
    def result_path(self) -> Path:
        return Path(self.config.paths.results) / "runs" / self.run_id / "result.json"

    @property
    def complete(self) -> bool:
        """Recorded, with every benchmark scored (a run with a failed benchmark is rerun; its scored ones are reused)."""
        try:
            result = json.loads(self.result_path.read_text())
        except (OSError, ValueError):
            return False
        return all("error" not in b for b in result.get("benchmarks", {}).values())


def task_config(cfg: DictConfig) -> DictConfig:
    """The config a run sees (Hydra removes its own node before calling the task)."""
    if "hydra" in cfg:
        cfg = cfg.copy()
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def plan_runs(jobs: Sequence[Sequence[str]], compose: Callable[[list[str]], DictConfig], first_num: int = 0) -> list[PlannedRun]:
    """One PlannedRun per distinct run identity, in grid order; duplicates only add their job numbers."""
    from harness.config.checks import check
    from harness.planning import planned_stages
    from harness.records.identity import identity

    runs: dict[str, PlannedRun] = {}
    for num, overrides in enumerate(jobs, start=first_num):
        cfg = task_config(compose(list(overrides)))
        check(cfg)
        config_hash, run_id = identity(cfg)
        if run_id not in runs:
            runs[run_id] = PlannedRun(list(overrides), cfg, run_id, config_hash, planned_stages(cfg))
        runs[run_id].job_nums.append(num)
    return list(runs.values())


def unique_stages(runs: Sequence[PlannedRun]) -> dict[str, tuple[Stage, PlannedRun, int]]:
    """Stage key -> (stage, first run that needs it, how many runs need it)."""
    out: dict[str, tuple[Stage, PlannedRun, int]] = {}
    for run in runs:
        for stage in run.stages:
            first, n = out.get(stage.key, (stage, run, 0))[1:] if stage.key in out else (run, 0)
            out[stage.key] = (stage, first, n + 1)
    return out


# ------------------------------------------------------------------------------------------------- sweep files
def _compose(overrides: list[str], hydra: bool = False) -> DictConfig:
    from harness.config.compose import compose

    return compose(overrides, hydra)


def sweep_jobs(sweep: str, overrides: Sequence[str] = ()) -> list[list[str]]:
    """The job override lists `python -m harness -m +sweep=<sweep> <overrides>` launches."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from harness.sweep.grid import expand

    arguments = [f"+sweep={sweep}", *overrides]
    parser = OverridesParser.create()
    fixed = [o.input_line for o in parser.parse_overrides(arguments) if not o.is_sweep_override()]
    sweeper = _compose(fixed, hydra=True).hydra.sweeper
    params, grids = (OmegaConf.to_container(sweeper[k], resolve=False) if sweeper.get(k) else {} for k in ("params", "grids"))
    return expand(params, grids, arguments, parser)


def plan_sweep(sweep: str, overrides: Sequence[str] = ()) -> list[PlannedRun]:
    from harness.config.compose import warm

    jobs = sweep_jobs(sweep, overrides)
    warm(jobs)  # a cold cache: the runs composed on every core first
    return plan_runs(jobs, _compose)


# ------------------------------------------------------------------------------------------------- report
def slurm_profiles(overrides: Sequence[str] = ()) -> dict[str, dict]:
    """The Slurm launcher's resource profiles (conf/hydra/launcher/slurm.yaml), smallest first."""
    cfg = _compose(["hydra/launcher=slurm", *overrides], hydra=True)
    return OmegaConf.to_container(cfg.hydra.launcher.resources, resolve=True)


def stage_memory(stage: Stage, run: PlannedRun, profiles: dict[str, dict]) -> dict:
    """The profile a stage alone would get and its memory per GPU there (harness.sweep.memory); `error` when no
    profile fits."""
    from harness.sweep.profiles import choose_profile
    from harness.sweep.memory import fits

    alone = PlannedRun(run.overrides, run.config, run.run_id, run.config_hash, [stage])
    try:
        profile = choose_profile(alone, profiles)
    except ValueError as exc:
        return {"profile": None, "memory_gb": None, "error": str(exc)}
    est = fits(stage.kind, run.config, profiles[profile], stage.spec)[1]
    phases = {k: round(v, 1) for k, v in est["phases"].items()} if est else {}
    return {"profile": profile, "memory_gb": est and round(est["peak"], 1), "phases_gb": phases, "memory": est}


def report(runs: Sequence[PlannedRun], n_jobs: int, cost: CostModel = CostModel(), name: str = "",
           profiles: dict[str, dict] | None = None) -> dict:
    """Counts, per-stage rows, GPU-hours and (given resource profiles) memory per GPU; `render` prints it."""
    stages = unique_stages(runs)
    rows, unknown, generated = [], set(), set()
    for key, (stage, run, users) in stages.items():
        hours = gpu_hours(stage.kind, run.config, stage.spec, cost, generated)
        if hours is None:
            unknown.add(stage.kind)
        rows.append({"kind": stage.kind, "key": key, "complete": stage.complete, "runs": users,
                     "gpu_hours": hours or 0.0, "first_run": run.run_id, "dir": str(stage.dir)}
                    | (stage_memory(stage, run, profiles) if profiles else {}))
    todo = [r for r in rows if not r["complete"]]
    return {
        "sweep": name,
        "grid_points": n_jobs,
        "runs": len(runs),
        "runs_complete": sum(r.complete for r in runs),
        "stages": len(rows),
        "stages_by_kind": dict(Counter(r["kind"] for r in rows)),
        "stages_complete": len(rows) - len(todo),
        "stage_uses": sum(len(r.stages) for r in runs),
        "gpu_hours_total": round(sum(r["gpu_hours"] for r in rows), 1),
        "gpu_hours_remaining": round(sum(r["gpu_hours"] for r in todo), 1),
        "unknown_cost_kinds": sorted(unknown),
        "memory_errors": [r["error"] for r in rows if r.get("error")],
        "cost_model": cost.describe(),
        "run_ids": [r.run_id for r in runs],
        "stage_rows": rows,
    }


def render(plan: dict) -> str:
    lines = [f"sweep {plan['sweep']}: {plan['grid_points']} grid points -> {plan['runs']} unique runs "
             f"({plan['runs_complete']} complete)",
             f"  stages: {plan['stages']} unique of {plan['stage_uses']} uses, {plan['stages_complete']} complete; "
             + ", ".join(f"{k} {v}" for k, v in sorted(plan["stages_by_kind"].items())),
             f"  GPU-hours: {plan['gpu_hours_remaining']:g} remaining of {plan['gpu_hours_total']:g}",
             f"  {plan['cost_model']}"]
    if plan["unknown_cost_kinds"]:
        lines.append(f"  no cost model for stage kinds {plan['unknown_cost_kinds']} (counted as 0)")
    lines += ["", "  GB per GPU by phase (harness/sweep/memory.py): training, rollout (generation); peak the larger",
              f"  {'kind':<13} {'key':<13} {'state':<9} {'runs':>4} {'GPU-h':>9} {'train':>6} {'rollout':>7} "
              f"{'profile':<17} first run"]
    for r in sorted(plan["stage_rows"], key=lambda r: (r["kind"], -r["gpu_hours"])):
        state = "complete" if r["complete"] else "todo"
        mem = {p: "-" if (r.get("phases_gb") or {}).get(p) is None else f"{r['phases_gb'][p]:.0f}" for p in PHASES}
        profile = r.get("profile") or ("NO FIT" if r.get("error") else "-")
        lines.append(f"  {r['kind']:<13} {r['key']:<13} {state:<9} {r['runs']:>4} {r['gpu_hours']:>9.1f} "
                     f"{mem['training']:>6} {mem['rollout']:>7} {profile:<17} {r['first_run']}")
    details = {(r["kind"], r["profile"]): r for r in plan["stage_rows"] if r.get("memory") and r["kind"] != "eval"}
    if details:
        from harness.sweep.memory import describe

        lines += ["", "  memory per GPU (harness/sweep/memory.py; one stage of each kind per profile shown):"]
        lines += [f"    {kind} {r['key']} on {p}: {describe(r['memory'])}" for (kind, p), r in sorted(details.items())]
    lines += [f"  REFUSED: {e}" for e in plan.get("memory_errors", [])]
    return "\n".join(lines)
