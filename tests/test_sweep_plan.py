"""Sweep files, the plan (deduplicated runs and stages, GPU-hours) and stage-sized Slurm resources, without running."""

from __future__ import annotations


import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from conftest import CONF, compose
from harness.records.stages import MARKER
from harness.sweep import memory, plan
from harness.sweep.__main__ import main as sweep_main
from harness.sweep.launcher import profile_overrides
from harness.sweep.profiles import choose_profile

# Grid points per sweep file, counted by hand from the files (identical points listed once).
GRID_POINTS = {
    "tiny": 2 * 2,
    "table1": 14 + 2,  # 14 DPO datasets; SFT and Llama 2 base
    "table2": 5 + 4 + 1,  # DPO x 5; PPO with its own RM x 4; PPO with the 13B UF RM
    "table3": 4 * 3,  # RMs x {RewardBench, best-of-N, PPO}
    "table4": 4 * 2,  # RMs x {uf, mixed}
    "table5": 5 + 1 + 2 + 1,  # evaluated models; DPO; PPO 13B/70B UF RM; PPO 70B UF RM + mixed
    "figure3": 4 * 4,  # RMs x prompt sources
    # Tables 1-5 (55 points) less the 13 that repeat an earlier table exactly: T2's DPO on ChatArena 2023 and
    # UltraFeedback (T1), T2's UF PPO (T3), T4's uf column (T3), T5's SFT, base, DPO and three PPO rows.
    "all": 55 - 13,
    # DPO x 17 (14 sources, 3 subsets); SFT and 4 model stand-ins; Table-2 PPO x 4; RMs x {RewardBench, best-of-N};
    # SFT on the best-of-N suite; PPO RMs x 6 prompt sets (Tables 3-5 and Figure 3)
    "tiny_all": 17 + 5 + 4 + 4 * 2 + 1 + 4 * 6,
}


def test_every_sweep_file_expands_to_its_hand_counted_grid():
    assert sorted(GRID_POINTS) == sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))
    jobs = {name: plan.sweep_jobs(name) for name in GRID_POINTS}
    assert {name: len(j) for name, j in jobs.items()} == GRID_POINTS
    for name, job_list in jobs.items():
        assert all(f"+sweep={name}" in job for job in job_list)
    # `all` is exactly the union of Tables 1-5.
    strip = lambda js: {frozenset(o for o in j if not o.startswith("+sweep=")) for j in js}  # noqa: E731
    assert strip(jobs["all"]) == set().union(*(strip(jobs[f"table{i}"]) for i in range(1, 6)))


def test_command_line_overrides_apply_to_every_grid_point():
    jobs = plan.sweep_jobs("table5", ["seed=1,2"])
    assert len(jobs) == 2 * GRID_POINTS["table5"]
    assert all(any(o in ("seed=1", "seed=2") for o in j) for j in jobs)


def test_plan_deduplicates_runs_and_stages_on_the_tiny_grid(tmp_path, shared_stages, tiny_base):
    """SFT x 2 seeds + DPO x 2 seeds: 4 runs; one base model, two policies, and three evaluations, because the SFT
    model's evaluation does not depend on the seed. A grid point differing only in a non-determining key (the
    evaluation batch size) is the same run."""
    overrides = [f"paths.home={tmp_path}", f"paths.stages={shared_stages}"]
    jobs = plan.sweep_jobs("tiny", overrides)
    jobs.append([*jobs[0], "eval.batch_size=2"])
    runs = plan.plan_runs(jobs, plan._compose)
    assert len(runs) == 4
    assert [r.job_nums for r in runs][0] == [0, 4]
    report = plan.report(runs, len(jobs), name="tiny")
    assert report["grid_points"] == 5 and report["runs"] == 4
    n_bench = len(plan._compose(jobs[0]).eval.benchmarks)  # the tiny suite: one stage per benchmark
    assert report["stages_by_kind"] == {"model": 1, "policy": 2, "eval": 3 * n_bench}
    assert report["stage_uses"] == 4 + 2 + 4 * n_bench  # every run: the base model, DPO runs: a policy, all: evals
    assert report["stages_complete"] >= 1  # the tiny base model (built for this session)
    text = plan.render(report)
    assert "5 grid points -> 4 unique runs" in text and "6 x params x tokens" in text


def test_plan_cli_rejects_an_unknown_sweep_with_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        sweep_main(["plan", "table9"])
    err = capsys.readouterr().err
    assert "unknown sweep 'table9'" in err and "table1" in err and "all" in err


@pytest.fixture(scope="module")
def all_runs():
    return plan.plan_sweep("all")


def test_plan_of_all_equals_the_hand_count(all_runs):
    """Tables 1-5 deduplicated, counted by hand from the paper's grid (protocol.md, tables/*.csv):
    runs: T1 16 (14 DPO, SFT, Llama 2 base) + T2 8 new (DPO on 3 subsets; PPO with its own RM on 4 datasets;
    the 13B UF RM PPO run) + T3 11 new (4 RewardBench, 4 best-of-N, 3 PPO besides the 13B UF one) + T4 4 new (mixed
    prompts) + T5 3 new (other models) = 42.
    policies trained: 17 DPO (14 + 3 subsets) + 12 PPO (4 Table-2, 4 uf, 4 mixed) = 29.
    reward models trained: 4 (13B/70B x UF/Mix) + 4 Table-2 RMs (the UltraFeedback one is uf_13b) = 8.
    evaluations: 34 policies on the paper suite (29 trained + SFT, Llama 2 base and the 3 other models), 4 best-of-N
    policies on the best-of-N suite, 4 reward models on RewardBench."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        suites = {s: len(hydra_compose("config", overrides=[f"eval={s}"]).eval.benchmarks) for s in ("paper", "bon", "rewardbench")}
    assert suites["paper"] == 11
    runs = all_runs
    assert len(runs) == 42
    by_kind = plan.report(runs, 42)["stages_by_kind"]
    assert by_kind == {"policy": 29, "reward_model": 8, "eval": 34 * 11 + 4 * suites["bon"] + 4 * suites["rewardbench"]}


# ------------------------------------------------------------------------------------------------- resources
def slurm_profiles() -> dict:
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher.resources, resolve=True)


def test_every_paper_run_gets_a_default_profile_whose_plan_holds_each_of_its_stages(all_runs):
    """conf/hydra/launcher/slurm.yaml against the memory plan: no run of the paper's sweeps is refused, and the one
    profile a run's job gets holds every stage of it by its own plan, reward-model training included."""
    profiles = slurm_profiles()
    got = {}
    for run in all_runs:
        name = got[run.run_id] = choose_profile(run, profiles)
        for stage in run.stages:
            assert stage.kind in profiles[name]["kinds"], (run.run_id, stage.kind, name)
            ok, est = memory.fits(stage.kind, run.config, profiles[name], stage.spec)
            assert ok, (run.run_id, stage.kind, name, est and memory.describe(est))
    # Table 3's RewardBench runs (a reward model trained, then scored): 13B on one node sharded, 70B offloaded
    rewardbench = {r.config.reward_model.name: got[r.run_id] for r in all_runs if r.config.algorithm.name == "none"
                   and any(s.kind == "reward_model" for s in r.stages)}
    assert rewardbench == {"uf_13b": "train_13b", "mix_13b": "train_13b", "uf_70b": "train_70b", "mix_70b": "train_70b"}


def test_slurm_resources_are_sized_by_the_stages_a_run_still_needs(tmp_path):
    profiles = slurm_profiles()
    stages = f"paths.stages={tmp_path}"

    def profile(*overrides):
        (run,) = plan.plan_runs([[*overrides, stages]], lambda o: compose(*o))
        return choose_profile(run, profiles), run

    assert profile("model=tiny")[0] == "cpu"
    assert profile("model=tulu2_13b", "algorithm=none")[0] == "eval_13b"
    name, dpo_run = profile("model=tulu2_13b", "algorithm=dpo", "dataset=ultrafeedback_fg")
    assert name == "train_13b"
    assert profile_overrides(profiles[name]) == ["launch.processes=8", "launch.sharding=fsdp"]
    # Once the policy is trained, what is left is evaluation: the rerun asks for an evaluation's resources.
    policy = next(s for s in dpo_run.stages if s.kind == "policy")
    policy.dir.mkdir(parents=True)
    (policy.dir / MARKER).write_text("{}")
    assert choose_profile(dpo_run, profiles) == "eval_13b"
    # A stage is as big as the largest model it holds: 13B PPO scored by a 70B reward model is a 70B job, and by its
    # memory per GPU (tests/test_sweep_memory.py) one of two nodes.
    assert profile("model=tulu2_13b", "algorithm=ppo", "algorithm.table2=true", "reward_model.params_b=70")[0] == "train_70b_2nodes"
    with pytest.raises(ValueError, match="no resource profile fits stage policy"):
        choose_profile(profile("model=tulu2_13b", "model.params_b=400")[1], profiles)
