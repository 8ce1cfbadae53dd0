"""One GPU acceptance command: a ~0.5B model through every engine the paper's jobs use, each stage's measured peak
memory beside the memory plan's figure (harness/sweep/memory.py), tokens per second, all written to one JSON.

    pip install -e ".[dev,vllm]"
    python -m harness.acceptance --model-path /models/Qwen2.5-0.5B-Instruct     # one GPU, a few minutes, no network
    python -m harness.acceptance --device cpu                                    # dry mode: the tiny model, built here

Steps (STEPS, in order; `--steps a,b` runs some of them), each on the model given (conf/model/qwen25_05b.yaml, its
files read from `--model-path`), in bf16 mixed precision (fp32 weights and AdamW states, bf16 compute):
    reward_model  TRL's RewardTrainer from the model (the reward model the next steps score with)
    dpo           TRL's DPOTrainer (reference log-probs precomputed: one process)
    ppo           the project's PPO sharded with FSDP2 in one process (harness/train/fsdp.py: mixed precision, the
                  policy gathered once per rollout, sharded checkpoints), against the reward model
    grpo          TRL's GRPOTrainer against the reward model
    eval          20 GSM8k problems (the paper's 8-shot chain-of-thought prompt through lm-eval) on lm-eval's vLLM
                  backend; `--gsm8k-file` reads the real test split from a local JSON-lines file instead of the
                  bundled 20 (harness/assets/benchmarks/gsm8k/acceptance.jsonl, in GSM8k's schema, written here)
    rollout       PPO's rollout engines on the same prompts, model and sampler: HF generate (in chunks of
                  algorithm.generation_batch_size) against the colocated vLLM engine (algorithm.rollout_backend=vllm),
                  response tokens per second of each and their ratio (harness.train.rollout.throughput)
A step is a function `step(ctx) -> StepOutput` registered with `@step("name")`: a new row (e.g. vLLM against HF
generation on the same prompts) is one more function. Each training step runs at small sizes (SIZES: minutes, not
the paper's) into a fresh directory under `--out` (no stage is reused, so every step trains and is measured).

For each step: wall time, tokens per second (the tokens the trainer counts: training sequences, or prompts and
completions for GRPO, generated tokens for PPO and evaluation), the peak of torch.cuda.max_memory_allocated (reset
before the step) and the plan's peak for that stage on one GPU (its workload with the model's exact shape and the
longest sequence the step's data holds). A measured peak further than memory.MARGIN from the plan's, or a step that
fails, makes the command exit 1 naming the step(s), after every step ran and the JSON was written.
`--device cpu` runs the same steps on the tiny model: no GPU memory to measure (the plan's figures are printed
alone), and the evaluation on the HF backend (vLLM needs a GPU; the reason is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness import console
from harness.config.errors import ConfigError

# Sizes per step, GPU then CPU (overrides on top of the step's config): small enough for minutes on one GPU and
# seconds on a CPU; not the paper's (memory and throughput are measured, not quality).
SIZES = {
    "reward_model": (["reward_model.learning_rate=1e-5", "reward_model.final_learning_rate=1e-6", "reward_model.max_steps=16",
                      "reward_model.effective_batch_size=16", "reward_model.per_device_batch_size=8",
                      "reward_model.max_length=1024", "reward_model.activation_checkpointing=true"],
                     ["reward_model.max_steps=4"]),
    "dpo": (["algorithm.learning_rate=5e-7", "algorithm.max_steps=16", "algorithm.effective_batch_size=16",
             "algorithm.per_device_batch_size=8", "algorithm.max_length=1024", "algorithm.activation_checkpointing=true"],
            ["algorithm.max_steps=4"]),
    "ppo": (["algorithm.learning_rate=1e-6", "algorithm.max_steps=2", "algorithm.rollout_batch_size=32",
             "algorithm.effective_batch_size=16", "algorithm.per_device_batch_size=8", "algorithm.generation_batch_size=32",
             "algorithm.max_new_tokens=128", "algorithm.max_length=640", "algorithm.activation_checkpointing=true"],
            ["algorithm.max_steps=1", "algorithm.rollout_batch_size=16", "algorithm.effective_batch_size=8",
             "algorithm.per_device_batch_size=4", "algorithm.max_new_tokens=16"]),
    "grpo": (["algorithm.learning_rate=1e-6", "algorithm.max_steps=4", "algorithm.effective_batch_size=16",
              "algorithm.per_device_batch_size=16", "algorithm.num_generations=4", "algorithm.max_new_tokens=128",
              "algorithm.max_length=640", "algorithm.activation_checkpointing=true"],
             ["algorithm.max_steps=2", "algorithm.effective_batch_size=8", "algorithm.per_device_batch_size=8",
              "algorithm.max_new_tokens=16"]),
    "eval": (["eval.benchmarks.gsm8k.generation.max_new_tokens=256"], ["eval.benchmarks.gsm8k.generation.max_new_tokens=16"]),
    "rollout": (["algorithm.max_new_tokens=256"], ["algorithm.max_new_tokens=16"]),
}
# Prompts each rollout engine samples (one response each), GPU then CPU: a PPO process's share of the paper's rollout
# batch on 8 GPUs (512 / 8).
ROLLOUT_PROMPTS = (64, 8)
GSM8K_FILE = "benchmarks/gsm8k/acceptance.jsonl"
PROBLEMS = 20
# vLLM's share of the GPU (weights and KV cache, in its own engine process): this process's CUDA context and cached
# blocks stay beside it.
VLLM_MEMORY = 0.5


@dataclass
class Context:
    """What the steps share: where they write, the model, and what earlier steps made (the reward model)."""

    device: str
    out: Path
    stages: Path
    model: list[str]  # overrides naming the model
    gsm8k_file: str
    base: object = None  # ModelRef of the model's files
    shape: object = None  # its memory.Shape
    reward_model: object = None  # RewardModel, once the reward_model step trained it

    def compose(self, name: str, *overrides: str):
        from harness.config.compose import compose

        sizes = SIZES.get(name, ([], []))[self.device == "cpu"]
        return compose(["tracking=none", "dataset=tiny", "prompts=tiny", "reward_model=tiny", "reward_model.base_model=null",
                        "reward_model.params_b=0", f"paths.home={self.out}", f"paths.stages={self.stages}", *self.model,
                        *overrides, *sizes])


@dataclass
class StepOutput:
    """What a step reports: the stage it plans as (harness.sweep.memory.workload kind and config), how it sharded, the
    longest sequence it held (tokens), the tokens it processed and what they count, and its result."""

    kind: str | None
    cfg: object
    sharding: str = "none"
    sequence: int | None = None
    tokens: float = 0.0
    tokens_counted: str = ""
    result: dict = field(default_factory=dict)
    # why the peak is not compared with the plan (a step whose memory this process cannot see)
    unmeasured: str | None = None


STEPS: dict[str, Callable[[Context], StepOutput]] = {}


def step(name: str):
    """Register a step under `name` (run in registration order)."""
    def add(fn):
        STEPS[name] = fn
        return fn
    return add


def logged_tokens(out_dir: Path) -> float:
    """The last `num_tokens` a TRL trainer logged (its count of the tokens it trained on)."""
    history = json.loads((out_dir / "log_history.json").read_text())
    return float(next((e["num_tokens"] for e in reversed(history) if "num_tokens" in e), 0.0))


def pair_lengths(pairs, tok, max_length: int) -> int:
    """The longest side of preference pairs as trained (through its final EOS), capped at max_length."""
    from harness.train.reward import encode_pairs

    enc = encode_pairs(pairs, tok)
    return min(max_length, max(len(ids) for side in ("chosen_ids", "rejected_ids") for ids in enc[side]))


# ------------------------------------------------------------------------------------------------- steps
@step("reward_model")
def reward_model_step(ctx: Context) -> StepOutput:
    from harness.models import ModelRef, load_tokenizer
    from harness.train import reward

    cfg = ctx.compose("reward_model", "algorithm=ppo")
    p = reward.plan(cfg)
    out = ctx.out / "reward_model"
    result = reward.train(p.cfg, ctx.base, p.model, p.train, p.heldout, out, "none", "acceptance-rm")
    ctx.reward_model = reward.RewardModel(ModelRef(str(out / "model")), p.model.chat_template, result)
    tok = load_tokenizer(ctx.base, p.model.chat_template)
    return StepOutput("reward_model", cfg, sequence=pair_lengths(p.train, tok, p.cfg.max_length),
                      tokens=logged_tokens(out), tokens_counted="chosen and rejected sequences trained", result=result)


def train_policy(ctx: Context, name: str, cfg, sharding: str = "none") -> tuple[dict, Path]:
    from harness.pipeline import fit_training_data, load_training_data, train_in_process

    out = ctx.out / name
    inputs = fit_training_data(cfg, load_training_data(cfg), ctx.base)
    return train_in_process(cfg, ctx.base, inputs, out, ctx.reward_model, "none", f"acceptance-{name}"), out


def needs_reward_model(ctx: Context, name: str) -> None:
    if ctx.reward_model is None:
        raise ConfigError(f"step {name} scores with the reward model the reward_model step trains; run that step too")


@step("dpo")
def dpo_step(ctx: Context) -> StepOutput:
    from harness import data
    from harness.models import load_tokenizer

    cfg = ctx.compose("dpo", "algorithm=dpo")
    result, out = train_policy(ctx, "dpo", cfg)
    pairs = data.load_preferences(cfg.dataset)
    longest = pair_lengths(pairs, load_tokenizer(ctx.base, cfg.model.chat_template), cfg.algorithm.max_length)
    return StepOutput("policy", cfg, sequence=longest, tokens=logged_tokens(out),
                      tokens_counted="chosen and rejected sequences trained", result=result)


def longest_prompt(ctx: Context, cfg) -> int:
    from harness import data
    from harness.models import load_tokenizer
    from harness.train.ppo import keep_short_prompts, prompt_budget

    tok = load_tokenizer(ctx.base, cfg.model.chat_template)
    _, ids = keep_short_prompts(data.load_prompts(cfg.prompts), tok, prompt_budget(cfg.algorithm, cfg.prompts.max_prompt_tokens))
    return max(len(q) for q in ids)


@step("ppo")
def ppo_step(ctx: Context) -> StepOutput:
    needs_reward_model(ctx, "ppo")
    cfg = ctx.compose("ppo", "algorithm=ppo", "launch.sharding=fsdp")
    with process_group(ctx.device):  # FSDP2 in one process: a process group of one
        result, out = train_policy(ctx, "ppo", cfg, "fsdp")
    history = json.loads((out / "log_history.json").read_text())
    generated = sum(h["val/response_length"] for h in history) * cfg.algorithm.rollout_batch_size
    return StepOutput("policy", cfg, "fsdp", longest_prompt(ctx, cfg) + cfg.algorithm.max_new_tokens, generated,
                      "response tokens generated", result)


@step("grpo")
def grpo_step(ctx: Context) -> StepOutput:
    needs_reward_model(ctx, "grpo")
    cfg = ctx.compose("grpo", "algorithm=grpo")
    result, out = train_policy(ctx, "grpo", cfg)
    return StepOutput("policy", cfg, sequence=longest_prompt(ctx, cfg) + cfg.algorithm.max_new_tokens,
                      tokens=logged_tokens(out), tokens_counted="prompt and completion tokens", result=result)


@step("eval")
def eval_step(ctx: Context) -> StepOutput:
    from omegaconf import open_dict

    from harness.eval.generation import REQUESTS_FILE, make_lm
    from harness.eval.suite import EvalContext, LazyPolicy, run_benchmark
    from harness.models import load_tokenizer
    from harness.records.jsonl import read_jsonl

    cfg = ctx.compose("eval", "eval=smoke", f"eval.benchmarks.gsm8k.limit={PROBLEMS}",
                      f"eval.benchmarks.gsm8k.files.test={ctx.gsm8k_file}")
    bench = cfg.eval.benchmarks.gsm8k
    backend, unmeasured = ("vllm", "vLLM holds its weights and KV cache in its own engine process "
                                   f"(gpu_memory_utilization {VLLM_MEMORY})") if ctx.device == "cuda" else ("hf", None)
    if backend == "hf":
        print("[acceptance] eval: vLLM needs a GPU; on --device cpu the 20 problems go through the HF backend", flush=True)
    engine = {"gpu_memory_utilization": VLLM_MEMORY} if backend == "vllm" else None
    with open_dict(cfg):
        cfg.eval.backend = backend
    run_dir = ctx.out / "eval"
    policy = LazyPolicy(lambda: make_lm(backend, ctx.base, cfg.model, cfg.eval.batch_size, engine=engine))
    result = run_benchmark(bench, EvalContext(run_dir, policy, cfg.eval.batch_size, name="gsm8k"))
    tok = load_tokenizer(ctx.base, cfg.model.chat_template)
    answers = [r["answer"] for r in read_jsonl(run_dir / REQUESTS_FILE) if r["kind"] == "generate_until"]
    tokens = sum(len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers)
    return StepOutput("eval", cfg, sequence=None, tokens=tokens, tokens_counted=f"tokens generated ({backend})",
                      result={"backend": backend, "problems": len(answers), "score": result.get("score")},
                      unmeasured=unmeasured)


@step("rollout")
def rollout_step(ctx: Context) -> StepOutput:
    from harness import data
    from harness.models import load_tokenizer
    from harness.train import rollout
    from harness.train.ppo import keep_short_prompts, prompt_budget

    cfg = ctx.compose("rollout", "algorithm=ppo")
    tok = load_tokenizer(ctx.base, cfg.model.chat_template)
    _, ids = keep_short_prompts(data.load_prompts(cfg.prompts), tok, prompt_budget(cfg.algorithm, cfg.prompts.max_prompt_tokens))
    prompts = (ids * ROLLOUT_PROMPTS[0])[: ROLLOUT_PROMPTS[ctx.device == "cpu"]]
    with_vllm = ctx.device == "cuda"
    if not with_vllm:
        print("[acceptance] rollout: vLLM needs a GPU; on --device cpu only HF generate is timed", flush=True)
    result = rollout.throughput(ctx.base, cfg.model.dtype, prompts, rollout.Sampling.of(cfg.algorithm, tok.eos_token_id),
                                tok.pad_token_id, cfg.algorithm.generation_batch_size, VLLM_MEMORY, with_vllm)
    tokens = result["hf_tokens"] + (result["vllm_tokens"] or 0)
    return StepOutput(None, cfg, sequence=max(map(len, prompts)) + cfg.algorithm.max_new_tokens, tokens=tokens,
                      tokens_counted="response tokens sampled by both engines (each one's rate in result)", result=result,
                      unmeasured="a throughput comparison: two engines one after the other, no single stage to plan")


# ------------------------------------------------------------------------------------------------- running
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def process_group(device: str):
    """A process group of this process alone (NCCL on a GPU, gloo on CPU), for FSDP2's collectives."""
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    backend = "cuda:nccl,cpu:gloo" if device == "cuda" else "gloo"  # gloo for CPU tensors, as PPO's launched processes
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def plan_gb(ctx: Context, out: StepOutput, gpu_gb: float) -> dict | None:
    """The memory plan's estimate for the step's stage on one GPU, with the model's exact shape and the step's
    longest sequence."""
    from harness.sweep import memory

    if out.kind is None:
        return None
    w = memory.workload(out.kind, out.cfg, processes=1, known=ctx.shape)
    if w is None:
        return None
    if out.sequence is not None and w.trained:
        w = dataclasses.replace(w, sequence=out.sequence)
    if out.sequence is not None and w.generation:
        w = dataclasses.replace(w, generation=(w.generation[0], w.generation[1], out.sequence))
    est = memory.estimate(w, 1, out.sharding, 1)
    est["fits"] = est["peak"] <= memory.HEADROOM * gpu_gb
    return est


def verdict(row: dict) -> str | None:
    """Why a step's row fails the command, or None: a failed step, or a peak further than the plan's margin."""
    from harness.sweep.memory import MARGIN

    if row.get("error"):
        return f"step {row['step']} failed: {row['error']}"
    measured, planned = row.get("peak_gb"), row.get("plan_gb")
    if measured is None or planned is None or row.get("unmeasured"):
        return None
    if abs(measured - planned) > MARGIN * planned:
        return (f"step {row['step']}: measured peak {measured:.2f} GB vs the plan's {planned:.2f} GB, off by "
                f"{(measured - planned) / planned:+.0%} (margin {MARGIN:.0%}; harness/sweep/memory.py)")
    return None


def run_step(name: str, ctx: Context, gpu_gb: float) -> dict:
    import torch

    gc.collect()
    if ctx.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    print(f"[acceptance] {name} ...", flush=True)  # to the log
    try:
        out = STEPS[name](ctx)
    except Exception as exc:  # noqa: BLE001  (every step runs; the command fails at the end, naming this one)
        traceback.print_exc()
        seconds = time.perf_counter() - start
        console.say(f"[acceptance] {name:<13} FAILED after {seconds:.1f} s: {type(exc).__name__}: {exc}".splitlines()[0])
        return {"step": name, "error": f"{type(exc).__name__}: {exc}", "seconds": round(seconds, 2)}
    seconds = time.perf_counter() - start
    console.say(f"[acceptance] {name:<13} done in {seconds:.1f} s")
    peak = torch.cuda.max_memory_allocated() / 1e9 if ctx.device == "cuda" else None
    plan = plan_gb(ctx, out, gpu_gb)
    return {"step": name, "seconds": round(seconds, 2), "tokens": out.tokens, "tokens_counted": out.tokens_counted,
            "tokens_per_s": round(out.tokens / seconds, 1) if seconds > 0 else None,
            "peak_gb": None if peak is None else round(peak, 3), "plan_gb": plan and round(plan["peak"], 3),
            "plan": plan, "sharding": out.sharding, "sequence": out.sequence, "unmeasured": out.unmeasured,
            "result": out.result}


def render(rows: list[dict]) -> str:
    lines = [f"{'step':<14} {'seconds':>8} {'tokens/s':>10} {'peak GB':>8} {'plan GB':>8}  verdict"]
    for r in rows:
        if r.get("error"):
            lines.append(f"{r['step']:<14} {r['seconds']:>8.1f} {'-':>10} {'-':>8} {'-':>8}  FAILED: {r['error']}")
            continue
        peak = "-" if r["peak_gb"] is None else f"{r['peak_gb']:.2f}"
        plan = "-" if r["plan_gb"] is None else f"{r['plan_gb']:.3f}" if r["plan_gb"] < 1 else f"{r['plan_gb']:.2f}"
        why = verdict(r)
        note = ("MISMATCH" if why else "ok" if r["peak_gb"] is not None and not r["unmeasured"]
                else f"not compared: {r['unmeasured'] or 'no GPU memory measured on CPU'}")
        if (r.get("result") or {}).get("hf_tokens_per_s"):  # the rollout row: each engine's rate and the ratio
            res = r["result"]
            vllm = "-" if res["ratio"] is None else f"{res['vllm_tokens_per_s']:.1f}; vllm / hf {res['ratio']:.2f}"
            note += f"; hf {res['hf_tokens_per_s']:.1f} tokens/s, vllm {vllm}"
        lines.append(f"{r['step']:<14} {r['seconds']:>8.1f} {r['tokens_per_s'] or 0:>10.1f} {peak:>8} {plan:>8}  {note}")
    return "\n".join(lines)


def model_shape(ref):
    """The exact memory.Shape of the model's files (its config built on the meta device: nothing loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from harness.sweep.memory import Shape

    with torch.device("meta"):
        return Shape.of(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(ref.path)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.acceptance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", help="local directory of the ~0.5B model's files (GPU; e.g. Qwen2.5-0.5B-Instruct)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cuda: one GPU (the acceptance); cpu: dry mode on the tiny model")
    parser.add_argument("--out", type=Path, default=Path("results/acceptance"), help="where steps write (fresh each run)")
    parser.add_argument("--stages", type=Path, help="stage directory for the tiny base model (CPU; default <out>/stages)")
    parser.add_argument("--steps", help=f"comma-separated subset of {list(STEPS)}")
    parser.add_argument("--verbose", action="store_true", help="show library output live too (it is in the log)")
    parser.add_argument("--gsm8k-file", help="GSM8k test problems as JSON lines (question, answer); default: the bundled 20")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is read from the network: the model is local
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    import shutil

    import torch

    from harness.models import ModelRef, base_model
    from harness.sweep.memory import MARGIN

    names = args.steps.split(",") if args.steps else list(STEPS)
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        print(f"error: unknown step(s) {unknown}; valid: {list(STEPS)}", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no GPU is visible; run on a GPU machine, or --device cpu for the dry mode",
              file=sys.stderr)
        return 2
    if args.device == "cuda" and not (args.model_path and (Path(args.model_path) / "config.json").is_file()):
        print(f"error: --model-path {args.model_path!r} is not a local model directory (config.json); give the "
              "directory holding the ~0.5B model's files (e.g. Qwen2.5-0.5B-Instruct)", file=sys.stderr)
        return 2
    out = args.out.resolve()
    shutil.rmtree(out / "steps", ignore_errors=True)  # fresh: no step's output is reused
    out.mkdir(parents=True, exist_ok=True)
    gsm8k = str(Path(args.gsm8k_file).resolve()) if args.gsm8k_file else GSM8K_FILE
    ctx = Context(args.device, out / "steps", (args.stages or out / "stages").resolve(), [], gsm8k)
    with console.capture(out / "acceptance.log", args.verbose):  # library output to the log, one line per step here
        if args.device == "cuda":
            path = Path(args.model_path).resolve()
            ctx.model, ctx.base = ["model=qwen25_05b", f"model.path={path}"], ModelRef(str(path))
            gpu_gb, device_name = torch.cuda.get_device_properties(0).total_memory / 1e9, torch.cuda.get_device_name(0)
        else:  # the tiny model, built (once) in the stage directory
            ctx.model = ["model=tiny"]
            ctx.base, _ = base_model(ctx.compose("model").model, str(ctx.stages))
            gpu_gb, device_name = 80.0, "cpu (dry mode)"
        ctx.shape = model_shape(ctx.base)
        ctx.model.append(f"model.params_b={ctx.shape.params / 1e9}")
        console.say(f"[acceptance] {device_name}, {ctx.base.path}; steps {names}; log: {out / 'acceptance.log'}")
        rows = [run_step(name, ctx, gpu_gb) for name in names]
    failures = [v for v in map(verdict, rows) if v]
    report = {"device": device_name, "gpu_memory_gb": gpu_gb if args.device == "cuda" else None,
              "torch": torch.__version__, "model": ctx.base.path, "margin": MARGIN,
              "steps": rows, "ok": not failures, "failures": failures}
    (out / "acceptance.json").write_text(json.dumps(report, indent=1, default=str))
    print(render(rows))
    print(f"[acceptance] {device_name}; written to {out / 'acceptance.json'}")
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
