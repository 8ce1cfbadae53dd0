"""Stage-sized resources: which Slurm resource profile a run's stages need, by the largest model a stage holds and
its memory per GPU under the profile's sharding (harness.sweep.memory); a run no profile can hold is refused with
what would hold it."""

from __future__ import annotations

from harness import algorithms
from harness.sweep import memory


def stage_params_b(kind: str, cfg) -> float:
    """The largest model a stage holds (what sizes its job): PPO with a 70B reward model is a 70B job."""
    model = cfg.model.params_b or 0.0
    rm = (cfg.reward_model.params_b or 0.0) if algorithms.get(cfg.algorithm).uses_reward_model(cfg.algorithm) else 0.0
    if kind == "reward_model":
        return cfg.reward_model.params_b or model
    return max(model, rm)


def choose_profile(run, profiles: dict[str, dict]) -> str:
    """The smallest profile (in the given order) that every incomplete stage of the run fits: by kind, by the largest
    model it holds, and by memory per GPU under the profile's sharding (harness.sweep.memory), all stages in the one
    profile the job gets (a stage that fits a smaller profile may not fit the run's under another sharding); the first
    profile when nothing is left to compute. Refuses a run no profile can hold, saying what would."""
    names = list(profiles)
    todo = [s for s in run.stages if not s.complete]
    runs_on = {s.key: [n for n in names if s.kind in profiles[n]["kinds"]
                       and stage_params_b(s.kind, run.config) <= profiles[n]["max_params_b"]] for s in todo}
    for stage in todo:
        sized = runs_on[stage.key]
        if not sized:
            raise ValueError(f"no resource profile fits stage {stage.kind} {stage.key} of {run.run_id} "
                             f"({stage_params_b(stage.kind, run.config):g}B parameters); profiles: "
                             f"{[(n, profiles[n]['kinds'], profiles[n]['max_params_b']) for n in names]}")
        if not any(memory.fits(stage.kind, run.config, profiles[n], stage.spec)[0] for n in sized):
            raise ValueError(memory_refusal(stage, run, sized[-1], profiles[sized[-1]]))
    for name in names:
        if all(name in runs_on[s.key] and memory.fits(s.kind, run.config, profiles[name], s.spec)[0] for s in todo):
            return name
    raise ValueError(f"no one resource profile holds every stage of {run.run_id} although each fits one: "
                     + "; ".join(f"{s.kind} {s.key} fits {[n for n in runs_on[s.key] if memory.fits(s.kind, run.config, profiles[n], s.spec)[0]]}"
                                 for s in todo) + "; add a profile that holds them all to hydra.launcher.resources")


def memory_refusal(stage, run, name: str, profile: dict) -> str:
    """Why the largest profile cannot hold a stage, and how many of its nodes would."""
    est = memory.fits(stage.kind, run.config, profile, stage.spec)[1]
    gpu_mem = profile.get("gpu_mem_gb") or memory.DEFAULT_GPU_MEM_GB
    would = next((n for n in range(1, 65) if memory.fits(stage.kind, run.config, {**profile, "nodes": n}, stage.spec)[0]), None)
    where = (f"it would fit profile {name} with nodes={would} ({would * profile['gpus_per_node']} GPUs); add such a "
             "profile to hydra.launcher.resources") if would else "no node count of it would (a larger GPU or more offload)"
    return (f"stage {stage.kind} {stage.key} of {run.run_id} does not fit the largest profile that may run it, {name} "
            f"({profile.get('nodes') or 1} x {profile['gpus_per_node']} GPUs of {gpu_mem:g} GB, host {profile.get('mem_gb')} "
            f"GB/node, sharding {profile.get('sharding') or 'none'}): {memory.describe(est)}; {where}")
