"""Rollouts at engine speed (harness/train/rollout.py) on CPU, without vLLM: a fake vLLM 0.30.0 (tests/fake_vllm: the
modules, names and signatures the harness, TRL and lm-eval use, read from the 0.30.0 wheel; transformers samples)
stands in for the engine. PPO sampled through it equals `rollout_backend=hf` bit for bit, every parameter reaches it
before every rollout (whole, under its HF name, in model.dtype; from FSDP2 shards on 2 processes too), it samples
with exactly the recipe's sampler; GRPO runs through TRL's own colocated vLLM path, best-of-N samples its candidates
through lm-eval's vLLM backend; without vLLM a run stops before any stage with one `error:` line."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import LAUNCHER_VARIABLES, ROOT, compose, torchrun_two
from safetensors.torch import load_file

from harness import data
from harness.train import ppo, rollout

FAKE_VLLM = ROOT / "tests" / "fake_vllm"


@contextlib.contextmanager
def fake_vllm():
    """The fake vLLM importable as `vllm` inside the block only (find_spec("vllm") is None again after it); the
    torchrun variables an engine sets for vLLM's external_launcher (rollout.launcher_env) are gone after it too."""
    before = {k: os.environ.get(k) for k in LAUNCHER_VARIABLES}
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(FAKE_VLLM))
        try:
            import vllm

            vllm.LLM.engines.clear()
            yield vllm
        finally:
            for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
                del sys.modules[name]
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def ppo_trainer(out, base, rm, *overrides):
    cfg = compose("algorithm=ppo", "reward_model=tiny", *overrides)
    return ppo.PPOTrainer(cfg.algorithm, base, cfg.model, data.load_prompts(cfg.prompts), rm, out, lambda m, s: None,
                          cfg.seed)


def loads(events) -> list[list[tuple]]:
    """The weights each sync pushed: (name, shape, dtype) per parameter, one list per wake-up of the weights."""
    syncs = []
    for event in events:
        if event[:2] == ("wake_up", ["weights"]):
            syncs.append([])
        elif event[0] == "load":
            syncs[-1].append((event[1], tuple(event[2]), event[3]))
    return syncs


@pytest.fixture(scope="module")
def ppo_runs(tiny_base, tiny_reward_model, tmp_path_factory):
    """The tiny PPO recipe, 2 iterations, sampled by transformers and by the fake vLLM engine."""
    out = tmp_path_factory.mktemp("rollout")
    with fake_vllm() as vllm:
        trainers = {}
        for backend in ("hf", "vllm"):
            trainers[backend] = ppo_trainer(out / backend, tiny_base, tiny_reward_model, "algorithm.max_steps=2",
                                            f"algorithm.rollout_backend={backend}")
            trainers[backend].train()
        (engine,) = vllm.LLM.engines
    return out, trainers, engine


@pytest.mark.slow
def test_ppo_sampled_by_the_fake_vllm_engine_equals_hf_bit_for_bit(ppo_runs):
    out, trainers, _ = ppo_runs
    hf, engine_run = trainers["hf"].history, trainers["vllm"].history
    assert [h["step"] for h in engine_run] == [1, 2]
    assert engine_run == hf  # every metric of every iteration, exactly
    assert abs(hf[1]["objective/kl"]) > 1e-4  # the second rollout comes from an updated policy
    a, b = (load_file(out / backend / "model" / "model.safetensors") for backend in ("hf", "vllm"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_every_parameter_reaches_the_engine_before_every_rollout(ppo_runs):
    _, trainers, engine = ppo_runs
    policy = trainers["vllm"].accelerator.unwrap_model(trainers["vllm"].model).policy
    expected = [(name, tuple(p.shape), "float32") for name, p in policy.named_parameters()]  # tiny: model.dtype fp32
    assert loads(engine.events) == [expected, expected]
    # asleep while the models train: weights woken and loaded, KV cache woken, one generate, asleep again
    steps = [e[0] if e[0] not in ("sleep", "wake_up") else e for e in engine.events if e[0] not in ("init", "load")]
    rollout_steps = [("wake_up", ["weights"]), "reset_prefix_cache", ("wake_up", ["kv_cache"]), "generate", ("sleep", 2)]
    assert steps == [("sleep", 2), *rollout_steps, *rollout_steps]


@pytest.mark.slow
def test_engine_samples_with_exactly_the_recipes_sampler(ppo_runs):
    _, trainers, engine = ppo_runs
    trainer, alg = trainers["vllm"], trainers["vllm"].alg
    init = engine.events[0][1]
    assert {k: init[k] for k in ("model", "dtype", "skip_tokenizer_init", "tensor_parallel_size",
                                 "distributed_executor_backend", "max_model_len", "max_num_seqs", "enable_sleep_mode",
                                 "gpu_memory_utilization")} == {
        "model": trainer.engine.llm.kwargs["model"], "dtype": "float32", "skip_tokenizer_init": True,
        "tensor_parallel_size": 1, "distributed_executor_backend": "external_launcher", "max_model_len": alg.max_length,
        "max_num_seqs": alg.rollout_batch_size, "enable_sleep_mode": True, "gpu_memory_utilization": 0.5}
    eos = trainer.tok.eos_token_id
    generates = [e for e in engine.events if e[0] == "generate"]
    for iteration, (_, prompts, params, _) in enumerate(generates):
        rows = trainer.batch_indices(iteration)
        assert prompts == [trainer.query_ids[i] for i in rows]
        assert [p.seed for p in params] == rollout.request_seeds(trainer.seed, iteration, rows)
        assert len(set(p.seed for p in params)) == len(params)  # one random stream per request
        for p in params:
            assert (p.n, p.temperature, p.top_k, p.top_p, p.min_p, p.max_tokens, p.min_tokens) == (
                1, 0.7, 50, 1.0, 0.0, alg.max_new_tokens, 0)
            assert (p.repetition_penalty, p.presence_penalty, p.frequency_penalty) == (1.0, 0.0, 0.0)
            # stops at the policy's EOS and nowhere else; token ids only, no log-probs asked
            assert (p.ignore_eos, p.stop_token_ids, p.stop, p.detokenize, p.logprobs) == (True, [eos], [], False, None)


@pytest.mark.slow
def test_engine_gets_the_weights_in_model_dtype_and_stays_awake_without_sleep(tiny_base, tiny_reward_model, tmp_path):
    with fake_vllm() as vllm:
        trainer = ppo_trainer(tmp_path, tiny_base, tiny_reward_model, "algorithm.rollout_backend=vllm",
                              "model.dtype=bfloat16", "algorithm.vllm_sleep=false", "algorithm.max_steps=1")
        with trainer.compute():
            batch = trainer.rollout(trainer.batch_indices(0))
        (engine,) = vllm.LLM.engines
    policy = trainer.accelerator.unwrap_model(trainer.model).policy
    assert {p.dtype for p in policy.parameters()} == {torch.float32}  # fp32 master weights in the trainer
    assert (engine.kwargs["dtype"], engine.kwargs["enable_sleep_mode"]) == ("bfloat16", False)
    assert [e[0] for e in engine.events if e[0] != "load"] == ["init", "reset_prefix_cache", "generate"]
    assert [tuple(e[1:3]) + (e[3],) for e in engine.events if e[0] == "load"] == [
        (n, list(p.shape), "bfloat16") for n, p in policy.named_parameters()]
    assert batch.mask.sum() > 0 and batch.ended.dtype == torch.bool


@pytest.mark.slow
def test_a_sharded_policy_reaches_the_engine_whole_on_two_processes(tiny_base, tiny_reward_model, tmp_path):
    """FSDP2 on 2 gloo processes (tests/rollout_worker.py): each rank's engine gets every parameter gathered whole."""
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(FAKE_VLLM)])}
    torchrun_two("rollout_worker.py", tiny_base.path, tiny_reward_model.ref.path, str(tmp_path), env=env)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in ranks:
        assert r["vllm"] == r["hf"] and len(r["hf"]) == 2  # sharded: sampled by the engine equals hf bit for bit
        sharded = [(name, tuple(shape), "float32") for name, shape, is_shard in r["policy"] if is_shard]
        assert len(sharded) == len(r["policy"])  # every parameter of the trained policy is a DTensor shard
        assert [[tuple(x[:1]) + (tuple(x[1]), x[2]) for x in sync] for sync in r["loads"]] == [sharded, sharded]
    assert ranks[0]["vllm"] == ranks[1]["vllm"]
    a, b = (load_file(tmp_path / backend / "model" / "model.safetensors") for backend in ("hf", "vllm"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("algorithm", ["ppo", "grpo"])
def test_without_vllm_a_run_stops_before_any_stage(algorithm, tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", f"algorithm={algorithm}", "reward_model=tiny",
                          "algorithm.rollout_backend=vllm", f"paths.home={tmp_path}", "tracking=none",
                          f"hydra.run.dir={tmp_path}/hydra"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(ROOT)})
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: algorithm.rollout_backend=vllm"), out.stderr[-2000:]
    assert 'pip install -e ".[vllm]"' in lines[0] and "CUDA GPU" in lines[0] and "no vLLM" in lines[0]
    assert not list((tmp_path / "results" / "stages").glob("*/*"))  # no stage started, not even the tiny base model


def test_a_bad_rollout_backend_is_refused():
    from harness.checks import check
    from harness.config.errors import ConfigError

    with pytest.raises(ConfigError, match=r"algorithm.rollout_backend='sglang'; valid: \['hf', 'vllm'\]"):
        check(compose("algorithm=ppo", "reward_model=tiny", "algorithm.rollout_backend=sglang"))


def test_rollout_backend_is_part_of_the_policy_stage_key_and_the_engines_memory_is_not(tiny_base):
    from harness.planning import policy_stage

    key = lambda *o: policy_stage(compose("algorithm=ppo", "reward_model=tiny", *o), tiny_base).key  # noqa: E731
    assert key("algorithm.rollout_backend=vllm") != key()
    assert key("algorithm.rollout_backend=vllm", "algorithm.vllm_gpu_memory_utilization=0.8",
               "algorithm.vllm_sleep=false") == key("algorithm.rollout_backend=vllm")


@pytest.mark.slow
def test_grpo_samples_through_trls_colocated_vllm_path(tiny_base, tiny_reward_model, tmp_path):
    """TRL binds vLLM's names when it is imported, so this runs in a process with the fake on its path from the start
    (tests/grpo_vllm_worker.py): 2 GRPO steps of the tiny recipe with algorithm.rollout_backend=vllm. Not equal to the
    hf backend: TRL 1.16's colocate path gives vLLM no dtype, so it samples the fp32 tiny checkpoint in bf16 (vLLM's
    "auto"), and TRL's importance-sampling correction reweights the loss by the bf16 / fp32 log-prob gap."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(FAKE_VLLM)])}
    done = subprocess.run([sys.executable, "tests/grpo_vllm_worker.py", tiny_base.path, tiny_reward_model.ref.path,
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads((tmp_path / "grpo_vllm.json").read_text())
    alg, events = seen["alg"], seen["events"]
    init = events[0][1]
    assert {k: init[k] for k in ("model", "tensor_parallel_size", "distributed_executor_backend",
                                 "gpu_memory_utilization", "enable_sleep_mode", "max_model_len", "logprobs_mode")} == {
        "model": tiny_base.path, "tensor_parallel_size": 1, "distributed_executor_backend": "external_launcher",
        "gpu_memory_utilization": alg["vllm_gpu_memory_utilization"], "enable_sleep_mode": alg["vllm_sleep"],
        "max_model_len": alg["max_length"], "logprobs_mode": "processed_logprobs"}
    # every step: the policy's weights into the awake engine, then its completions
    policy = [(name, shape, "float32") for name, shape in seen["policy"]]
    loads, generates = [], []
    for event in events:
        if event[:2] == ["wake_up", ["weights"]]:
            loads.append([])
        elif event[0] == "load":
            loads[-1].append((event[1], event[2], event[3]))
        elif event[0] == "generate":
            generates.append(event)
    assert loads == [policy, policy] and len(generates) == 2
    for _, prompts, (params,), lengths, last in generates:
        assert params == {"n": 1, "temperature": alg["temperature"], "top_k": 0, "top_p": 1.0, "min_p": 0.0,
                          "repetition_penalty": 1.0, "max_tokens": alg["max_new_tokens"], "logprobs": 0,
                          "ignore_eos": False, "stop_token_ids": []}  # TRL's defaults; vLLM stops at the EOS
        assert prompts == 32 and all(n == alg["max_new_tokens"] or t == seen["eos"] for n, t in zip(lengths, last))
    # TRL trained on the engine's completions
    assert [h["completions/mean_length"] for h in seen["log"]] == [sum(g[3]) / len(g[3]) for g in generates]


@pytest.mark.slow
def test_best_of_n_samples_its_candidates_with_vllm(tiny_base, tiny_reward_model, monkeypatch):
    from lm_eval.api.instance import Instance

    from harness import pipeline
    from harness.algorithms.best_of_n import BestOfN

    cfg = compose("algorithm=best_of_n", "reward_model=tiny", "eval=bon", "eval.backend=vllm",
                  "eval.tensor_parallel_size=2", "algorithm.n=4")
    built = {}
    monkeypatch.setattr(pipeline, "run_suite", lambda *a, lm_factory, **k: built.update(lm=lm_factory()) or {})
    with fake_vllm() as vllm:
        pipeline.evaluate(cfg, tiny_base, tiny_reward_model)
        lm = built["lm"]
        context = lm.apply_chat_template([{"role": "user", "content": "What is 3 + 4?"}])
        request = Instance("generate_until", doc={}, arguments=(context, {"until": ["\n\n"], "max_gen_toks": 16}), idx=0)
        picked = lm.generate_until([request])
        (engine,) = vllm.LLM.engines
    assert isinstance(lm, BestOfN)
    assert (engine.kwargs["model"], engine.kwargs["tensor_parallel_size"]) == (tiny_base.path, 2)
    ((_, prompts, params, outputs),) = [e for e in engine.events if e[0] == "generate"]
    assert len(prompts) == 4 and all(p == prompts[0] for p in prompts)  # N requests of the one context
    assert all((p.temperature, p.top_p, p.max_tokens, p.stop) == (0.7, 1.0, 16, ["\n\n", "</s>"]) for p in params)
    pick = lm.picks[0]
    assert len(pick["candidates"]) == 4 and len({tuple(o[0]) for o in outputs}) > 1  # sampled, not greedy
    assert picked == [pick["candidates"][max(range(4), key=pick["scores"].__getitem__)]]


@pytest.mark.slow
def test_throughput_times_both_engines_on_the_same_prompts(tiny_base):
    from harness.models import load_tokenizer

    tok = load_tokenizer(tiny_base, "tulu")
    prompts = [tok(f"<|user|>\nSay {w}.\n<|assistant|>\n")["input_ids"] for w in ("hi", "yes", "no", "more")]
    sampling = rollout.Sampling(0.7, 50, 1.0, 8, tok.eos_token_id)
    with fake_vllm() as vllm:
        result = rollout.throughput(tiny_base, "float32", prompts, sampling, tok.pad_token_id, hf_batch_size=2)
        (engine,) = vllm.LLM.engines
    assert result["prompts"] == 4 and 4 <= result["hf_tokens"] <= 32 and 4 <= result["vllm_tokens"] <= 32
    assert result["ratio"] == pytest.approx(result["vllm_tokens_per_s"] / result["hf_tokens_per_s"])
    # both timed on the same prompts after a warm-up on the first two
    assert [len(e[1]) for e in engine.events if e[0] == "generate"] == [2, 4]


@pytest.mark.slow
def test_the_acceptance_commands_rollout_row_times_vllm_against_hf(tiny_base, shared_stages, tmp_path, monkeypatch):
    """harness/acceptance.py's rollout step as on a GPU (vLLM timed too), here with the fake engine at tiny sizes."""
    from harness import acceptance

    monkeypatch.setattr(acceptance, "ROLLOUT_PROMPTS", (6, 6))
    monkeypatch.setitem(acceptance.SIZES, "rollout", (["algorithm.max_new_tokens=8"], []))
    ctx = acceptance.Context("cuda", tmp_path, shared_stages, ["model=tiny"], acceptance.GSM8K_FILE, base=tiny_base)
    with fake_vllm() as vllm:
        out = acceptance.rollout_step(ctx)
        (engine,) = vllm.LLM.engines
    result = out.result
    assert result["prompts"] == 6 and result["ratio"] == pytest.approx(result["vllm_tokens_per_s"] / result["hf_tokens_per_s"])
    assert out.tokens == result["hf_tokens"] + result["vllm_tokens"]
    assert engine.kwargs["gpu_memory_utilization"] == acceptance.VLLM_MEMORY
    row = {"step": "rollout", "seconds": 1.0, "tokens_per_s": out.tokens, "peak_gb": 1.0, "plan_gb": None,
           "unmeasured": out.unmeasured, "result": result}
    assert f"vllm / hf {result['ratio']:.2f}" in acceptance.render([row]) and acceptance.verdict(row) is None


@pytest.mark.slow
def test_the_rollout_benchmark_prints_both_rates_and_says_when_the_ratio_means_nothing(shared_stages, tiny_base):
    """benchmarks/rollout_throughput.py, the command docs/scaling.md shows, with the fake engine on CPU."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), str(FAKE_VLLM)])}
    out = subprocess.run([sys.executable, "benchmarks/rollout_throughput.py", "--prompts", "4", "--hf-batch-size", "2",
                          "--stages", str(shared_stages), "algorithm.max_new_tokens=8"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines() if line.split()[:1] in (["hf"], ["vllm"])}
    assert set(rows) == {"hf", "vllm"} and all(0 < int(n) <= 32 and float(rate) > 0 for n, rate in rows.values())
    ratio = float(next(line for line in out.stdout.splitlines() if line.startswith("ratio (vllm / hf):")).split()[-1])
    assert ratio == pytest.approx(float(rows["vllm"][1]) / float(rows["hf"][1]), rel=0.02)
    assert "the ratio is only meaningful on a GPU with vLLM installed" in out.stdout
