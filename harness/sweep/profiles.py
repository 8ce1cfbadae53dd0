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
    model it holds, and by memory per GPU under the profile's sharding (harness.sweep.memory); the first profile when
    nothing is left to compute. Refuses a run no profile can hold, saying what would."""
    names = list(profiles)
    chosen = 0
    for stage in run.stages:
        if stage.complete:
            continue
        size = stage_params_b(stage.kind, run.config)
        sized = [i for i, n in enumerate(names) if stage.kind in profiles[n]["kinds"] and size <= profiles[n]["max_params_b"]]
        if not sized:
            raise ValueError(f"no resource profile fits stage {stage.kind} {stage.key} of {run.run_id} ({size:g}B "
                             f"parameters); profiles: {[(n, profiles[n]['kinds'], profiles[n]['max_params_b']) for n in names]}")
        fitting = [i for i in sized if memory.fits(stage.kind, run.config, profiles[names[i]], stage.spec)[0]]
        if not fitting:
            raise ValueError(memory_refusal(stage, run, names[sized[-1]], profiles[names[sized[-1]]]))
        chosen = max(chosen, fitting[0])
    return names[chosen]


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
