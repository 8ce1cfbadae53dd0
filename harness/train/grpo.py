"""GRPO through TRL's GRPOTrainer (an extension beyond the paper, comparable with its PPO).

    python -m harness algorithm=grpo reward_model=tiny                                  # tiny model, CPU
    python -m harness algorithm=grpo algorithm.reward=gsm8k prompts=gsm8k model=tulu2_13b   # Figure 3's math setting

Rewards (`algorithm.reward`): `reward_model` (a sequence classifier reading prompt + completion in its own
tokenizer and chat template; a completion without EOS scores `missing_eos_penalty`, as in PPO), `gsm8k` (verifiable: 1 when the completion's final number equals the
gold answer, else 0), or `both` (summed). KL: beta > 0 against the frozen SFT reference. TRL loads policy and
reference itself (fp32 weights, model.dtype compute; the pinned revision) on each process's device. Completions are
sampled by `algorithm.rollout_backend`: TRL's transformers generate, or TRL's own vLLM path in colocate mode
(harness.train.rollout.trl_vllm_args); micro-batches are length-grouped (`LengthGroupedGRPOTrainer`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from harness.config.schema import GRPO_REWARDS
from harness.data.mirror import load_hub
from harness.data.preferences import asset_path
from harness.config.errors import ConfigError
from harness.models import TRAINABLE_DTYPE, ModelRef, load_tokenizer, torch_dtype
from harness.records.stages import latest_checkpoint
from harness.train import fsdp, length_groups, rollout
from harness.train.common import CountSteps, batch_record, save_trained, trl_config, whole_run_loss
from harness.train.ppo import eos_trick, keep_short_prompts, prompt_budget
from harness.train.reward import RewardScorer, load_reward_model

# A number: digits with thousands separators only in groups of three ("1,080", not "1,2,3": a list), an optional
# decimal part, or a decimal without its leading zero (".5").
NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)?(?:\.\d+)?")


# ------------------------------------------------------------------------------------------------- GSM8k reward
def final_number(text: str) -> float | None:
    """The last number in a text (GSM8k's answer convention; thousands separators dropped)."""
    found = [n for n in NUMBER.findall(text) if any(c.isdigit() for c in n)]
    return float(found[-1].replace(",", "")) if found else None


def gold_answer(solution: str) -> float:
    """openai/gsm8k solutions end with `#### <answer>`."""
    if "####" not in solution:
        raise ValueError(f"GSM8k solution without '#### <answer>': {solution[-80:]!r}")
    value = final_number(solution.split("####")[-1])
    if value is None:
        raise ValueError(f"GSM8k solution with no number after '####': {solution[-80:]!r}")
    return value


def gsm8k_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 when a completion's final number equals the gold answer, else 0.0 (TRL reward-function signature)."""
    out = []
    for completion, gold in zip(completions, answer):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        pred = final_number(text)
        out.append(1.0 if pred is not None and abs(pred - float(gold)) < 1e-6 else 0.0)
    return out


# ------------------------------------------------------------------------------------------------- reward model
class RewardModelReward:
    """The reward model's score of each completion (rendered with the reward model's own chat template), replaced by
    `penalty` for a completion that never wrote EOS: PPO's EOS trick (EasyLM llama_train_ppo.py: -10 when the last
    token is not EOS), so GRPO and PPO are rewarded alike. TRL reward-function signature."""

    __name__ = "reward_model"  # TRL logs rewards/<name>/mean

    def __init__(self, scorer: RewardScorer, eos_id: int, penalty: float | None):
        self.scorer, self.eos_id, self.penalty = scorer, eos_id, penalty

    def __call__(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        scores = self.scorer.score_conversations([p + c for p, c in zip(prompts, completions)])
        ended = torch.tensor([len(ids) > 0 and ids[-1] == self.eos_id for ids in completion_ids])
        return eos_trick(scores, ended, self.penalty).tolist()


def _norm(text: str) -> str:
    return " ".join(text.split())


def attach_answers(prompts: Dataset, problems: list[dict]) -> Dataset:
    """Add the gold `answer` of each prompt, found by its question text (exactly, else contained in the prompt)."""
    gold = {_norm(p["question"]): gold_answer(p["answer"]) for p in problems}
    answers, missing = [], []
    for row in prompts:
        text = _norm(row["prompt"][-1]["content"])
        value = gold.get(text)
        if value is None:
            value = next((a for q, a in gold.items() if q in text), None)
        if value is None:
            missing.append(text)
        answers.append(value)
    if missing:
        raise ConfigError(f"algorithm.reward=gsm8k: {len(missing)} of {len(prompts)} prompts match no GSM8k problem "
                          f"(first: {missing[0][:100]!r}); use GSM8k prompts (prompts=gsm8k) or set algorithm.answers_*")
    return prompts.add_column("answer", answers)


def with_answers(alg, prompts: Dataset, mirror: str | None = None) -> Dataset:
    """The prompts with the gold `answer` column the GSM8k reward reads (as they are for the reward model alone)."""
    if alg.reward == "reward_model" or "answer" in prompts.column_names:
        return prompts
    return attach_answers(prompts, load_problems(alg, mirror))


def load_problems(alg, mirror: str | None) -> list[dict]:
    if alg.answers_file:
        import json

        return [json.loads(line) for line in asset_path(alg.answers_file).read_text().splitlines() if line.strip()]
    return list(load_hub(alg.answers_hub_id, alg.answers_config, alg.answers_split, None, mirror,
                         "python -m harness.data prefetch ... (openai/gsm8k train)"))


# ------------------------------------------------------------------------------------------------- training
class GatherOnceGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer whose transformers generation all-gathers an FSDP2-sharded policy once per generation round
    and frees it after (harness.train.fsdp.gathered), as PPO's rollouts do. TRL 1.16 gathers only FSDP1 models
    (trl/distributed.py summon_full_params is a no-op for FSDP2) and accelerate's FSDP2 reshards every layer after
    each forward (conf/accelerate/fsdp.yaml), so each decoded token would all-gather every layer again. Costs the
    whole policy in the compute dtype on each GPU while generating. vLLM generation has weights of its own."""

    def _generate_single_turn(self, *args, **kwargs):
        if self.use_vllm:
            return super()._generate_single_turn(*args, **kwargs)
        with fsdp.gathered(self.model):
            return super()._generate_single_turn(*args, **kwargs)


class LengthGroupedGRPOTrainer(GatherOnceGRPOTrainer):
    """TRL's GRPOTrainer with length-grouped micro-batches (harness.train.length_groups). TRL 1.16 has no hook for
    them: each fresh generation batch TRL has shuffled and split into micro-batches (`_buffered_inputs`) is cut again
    after sorting its rows by completion length, each micro-batch trimmed to its own longest prompt and completion.
    Only for loss types whose normaliser ignores which rows share a micro-batch (length_groups.GROUPABLE_LOSSES; the
    harness's default, dapo, is one); the generation batch is one optimiser step (TRL's default steps_per_generation
    = gradient accumulation), so the step's gradient is unchanged but for rounding."""

    def _prepare_inputs(self, generation_batch):
        every = self.args.steps_per_generation * self.num_iterations
        fresh = self.model.training and (self._step % every == 0 or self._buffered_inputs is None)
        inputs = super()._prepare_inputs(generation_batch)
        if fresh and self.loss_type in length_groups.GROUPABLE_LOSSES:
            self._buffered_inputs = length_groups.regroup(self._buffered_inputs, "completion_mask",
                                                          ("prompt_ids", "prompt_mask"))
            inputs = self._buffered_inputs[self._step % self.args.steps_per_generation]
        return inputs


def build(alg, base: ModelRef, model_cfg, prompts: Dataset, reward_model, out_dir: Path, report_to: str, run_name: str,
          seed: int, max_prompt_tokens: int, mirror: str | None = None) -> tuple[LengthGroupedGRPOTrainer, object, Dataset]:
    """The GRPOTrainer, tokenizer and kept prompts: models are loaded after GRPOConfig has set this process's device."""
    if alg.reward not in GRPO_REWARDS:
        raise ConfigError(f"algorithm.reward={alg.reward!r}; valid: {list(GRPO_REWARDS)}")
    tok = load_tokenizer(base, model_cfg.chat_template)
    prompts, _ = keep_short_prompts(prompts, tok, prompt_budget(alg, max_prompt_tokens), bos=True)  # TRL renders <s>
    args = trl_config(
        GRPOConfig, alg, out_dir, model_cfg.dtype, report_to, run_name, seed,
        num_generations=alg.num_generations,
        max_completion_length=alg.max_new_tokens,
        temperature=alg.temperature,
        beta=alg.beta,
        loss_type=alg.loss_type,
        scale_rewards=alg.scale_rewards,
        epsilon=alg.epsilon,
        # TRL loads policy and reference (fp32: mixed precision) on each process's device, at the pinned revision
        model_init_kwargs={"dtype": torch_dtype(TRAINABLE_DTYPE), "revision": base.revision},
        **rollout.trl_vllm_args(alg),  # rollout_backend=vllm: TRL's colocated vLLM engine samples the completions
    )
    funcs, processing = [], []
    if alg.reward in ("reward_model", "both"):  # frozen: model.dtype, on this process's device (set by GRPOConfig)
        scorer = RewardScorer(load_reward_model(reward_model.ref, model_cfg.dtype, on=args.device),
                              load_tokenizer(reward_model.ref, reward_model.chat_template), alg.per_device_batch_size)
        funcs.append(RewardModelReward(scorer, tok.eos_token_id, alg.missing_eos_penalty))
        processing.append(None)
    if alg.reward in ("gsm8k", "both"):
        prompts = with_answers(alg, prompts, mirror)
        funcs.append(gsm8k_reward)
        processing.append(None)
    trainer = LengthGroupedGRPOTrainer(model=base.path, reward_funcs=funcs, args=args, train_dataset=prompts,
                                       processing_class=tok, reward_processing_classes=processing,
                                       callbacks=[CountSteps()])
    return trainer, tok, prompts


def train(alg, base: ModelRef, model_cfg, prompts: Dataset, reward_model, out_dir: Path, report_to: str, run_name: str,
          seed: int, max_prompt_tokens: int, mirror: str | None = None) -> dict:
    trainer, tok, prompts = build(alg, base, model_cfg, prompts, reward_model, out_dir, report_to, run_name, seed,
                                  max_prompt_tokens, mirror)
    resume = latest_checkpoint(out_dir / "checkpoints")
    result = trainer.train(resume_from_checkpoint=resume)
    save_trained(trainer, tok, out_dir)
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    return {"train_loss": whole_run_loss(trainer, result, resume), "global_step": trainer.state.global_step, "resumed_from": resume,
            "prompts": len(prompts), "reward_first": rewards[0] if rewards else None,
            "reward_last": rewards[-1] if rewards else None, **batch_record(alg)}
