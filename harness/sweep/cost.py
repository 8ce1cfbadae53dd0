"""GPU-hours of a stage from a stated cost model (printed with every plan, and in the README).

    training       6 x parameters x tokens (forward + backward) for each model being trained
    forward only   2 x parameters x tokens for each forward pass without a backward: DPO's reference (once over the
                   data when its log-probs are precomputed, algorithm.precompute_ref_log_probs, else in every epoch);
                   PPO's policy and value model on the rollout (old log-probs, values), again before each step when
                   they are recomputed per minibatch (algorithm.recompute_per_minibatch), its reference and reward
                   model; GRPO's reference (beta > 0) and reward model (unless on the GSM8k reward alone)
    generation     2 x parameters x generated tokens, at a much lower utilisation (decoding is memory-bound)
    GPU-hours      FLOPs / (peak FLOP/s x utilisation) / 3600

An evaluation whose generations another benchmark of the plan already makes (the same policy, runner, prompts and
generation settings, e.g. AlpacaEval 1 and 2: harness.eval.generation_cache) costs nothing more.

Token counts are assumptions (CostModel below), not measurements: mean tokens of one sequence, prompt and response
lengths, and example counts when a config does not say. Unknown stage kinds cost 0 and are flagged in the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

# Protocol: PPO makes one pass over ~60.9k prompts; Table 2's subsets and UltraFeedback have 60,908 rows.
PAPER_ROWS = 60_908


@dataclass(frozen=True)
class CostModel:
    # A100 80GB bf16 dense peak.
    peak_tflops: float = 312.0
    # Model FLOPs utilisation of training / of autoregressive generation (both assumed).
    train_utilisation: float = 0.40
    generation_utilisation: float = 0.05
    # Mean tokens of one chosen or rejected conversation (assumed; UltraFeedback-like data).
    tokens_per_sequence: int = 512
    # PPO / evaluation prompts and generated responses (assumed means; the caps are 1024 and max_new_tokens).
    prompt_tokens: int = 256
    response_tokens: int = 512
    # Examples of a benchmark whose config keeps the whole test set (limit: null).
    eval_examples: int = 1_000

    def describe(self) -> str:
        return (f"cost model: training 6 x params x tokens, forward-only passes 2 x params x tokens, generation 2 x "
                f"params x tokens; {self.peak_tflops:g} TFLOP/s peak per GPU (A100 bf16) at {self.train_utilisation:.0%} "
                f"utilisation (training) and {self.generation_utilisation:.0%} (generation); assumed "
                f"{self.tokens_per_sequence} tokens per sequence, {self.prompt_tokens}-token prompts, "
                f"{self.response_tokens}-token responses, {self.eval_examples} examples for a full test set")

    def hours(self, train_flops: float, generation_flops: float = 0.0) -> float:
        peak = self.peak_tflops * 1e12
        return (train_flops / (peak * self.train_utilisation) + generation_flops / (peak * self.generation_utilisation)) / 3600


def _params(b: float | None) -> float:
    return (b or 0.0) * 1e9


# Fields of a benchmark's config that do not change the requests it sends the policy (how they are scored).
SCORING_FIELDS = ("name", "category", "metric", "judges", "options")


def generation_key(stage_spec: dict) -> str:
    """What an evaluation stage's generations depend on: policy, runner, prompts and generation settings."""
    from harness.records.stages import digest

    bench = {k: v for k, v in stage_spec.get("benchmark", {}).items() if k not in SCORING_FIELDS}
    return digest({"policy": stage_spec.get("policy"), "benchmark": bench})


def gpu_hours(kind: str, cfg, stage_spec: dict, model: CostModel, generated: set | None = None) -> float | None:
    """Estimated GPU-hours of one stage of run `cfg`; None for a kind the model does not know. `generated` collects
    the generation keys of the evaluations costed so far: one whose generations are already there costs 0."""
    n = _params(cfg.model.params_b)
    alg = cfg.algorithm
    if kind == "model":  # the tiny model, built on CPU
        return 0.0
    if kind == "reward_model":
        rm = cfg.reward_model
        tokens = PAPER_ROWS * rm.epochs * 2 * model.tokens_per_sequence
        # Table 2 trains its reward model from the run's own SFT model (reward_model=none, params_b 0)
        return model.hours(6 * (_params(rm.params_b) or n) * tokens)
    if kind == "policy" and alg.name in ("dpo", "ipo"):  # IPO: DPO's trainer with another loss
        rows = cfg.dataset.max_samples or cfg.dataset.paper_rows or PAPER_ROWS
        tokens = rows * 2 * model.tokens_per_sequence  # one epoch, chosen and rejected
        precomputed = alg.get("precompute_ref_log_probs", False) and cfg.launch.processes == 1  # harness.train.dpo
        reference_passes = 1 if precomputed else alg.epochs
        return model.hours((6 * alg.epochs + 2 * reference_passes) * n * tokens)  # policy trained, reference forward
    if kind == "policy" and alg.name in ("ppo", "grpo"):
        prompts = (cfg.prompts.max_samples or PAPER_ROWS) * alg.epochs
        samples = prompts * alg.get("num_generations", 1)
        seq = model.prompt_tokens + model.response_tokens
        n_rm = _params(cfg.reward_model.params_b) or n
        if alg.name == "ppo":  # harness.train.ppo
            n_value = n_rm if alg.value_from_reward_model else n
            epochs = alg.ppo_epochs
            forward = n + n_value + n + n_rm + (n + n_value) * epochs * alg.recompute_per_minibatch
            trained = (n + n_value) * epochs
        else:  # TRL's GRPOTrainer, one iteration per batch: the sampling policy is the trained one
            forward = n * (alg.beta > 0) + n_rm * (alg.reward in ("reward_model", "both"))
            trained = n
        return model.hours(samples * (2 * forward + 6 * trained) * seq, samples * 2 * n * model.response_tokens)
    if kind == "eval":
        if generated is not None:
            key = generation_key(stage_spec)
            if key in generated:
                return 0.0
            generated.add(key)
        bench = stage_spec.get("benchmark", {})
        examples = bench.get("limit") or model.eval_examples
        gen = bench.get("generation", {})
        samples = examples * gen.get("num_samples", 1)
        return model.hours(samples * 2 * n * model.prompt_tokens, samples * 2 * n * min(gen.get("max_new_tokens", 512), model.response_tokens))
    return None
