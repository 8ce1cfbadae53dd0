"""Reward models: trained from an SFT model with TRL's RewardTrainer (scalar head, Bradley-Terry loss), or loaded
from a path; and the one scorer PPO, GRPO, best-of-N and RewardBench read scores from.

    python -m harness algorithm=ppo reward_model=tiny        # trains the tiny reward model once, then PPO with it

A trained reward model is a stage of its own (`results/stages/reward_model/<key>/`), keyed by exactly what determines
it: base model, chat template, training data and recipe, never the entry's name. So `reward_model=uf_13b` and a
Table-2 run (`algorithm.table2=true`) on `ultrafeedback_fg` from `tulu2_13b` share one stage when their recipes match.

The score of a conversation is the head's output at its final EOS, as the paper's reward models were trained and read
(EasyLM strips the text): the chat template's rendering of the whole conversation cut after that EOS
(harness.chat.through_final_eos), in training (pre-tokenised for RewardTrainer) and in every scorer.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from datasets import Dataset

from harness.chat import stripped, through_final_eos
from harness.models import TRAINABLE_DTYPE, ModelRef, base_model, device, load_tokenizer, torch_dtype
from harness.records.stages import Stage, latest_checkpoint
from harness.train.common import CountSteps, batch_record, save_trained, trl_config, whole_run_loss
from harness.train.fsdp import root_gathered
from harness.train.reward_plan import RewardModel, RewardModelPlan, plan, stage_spec  # noqa: F401  (callers say reward.plan ...)


def obtain(p: RewardModelPlan, stages_root: str, tracker, run_id: str, launch=None) -> RewardModel:
    """The run's reward model: the given path, or trained once as a stage (in a nested MLflow run). `launch(base,
    stage_dir, run_name, mlflow_run_id) -> result`: trains it on the job's processes instead of this one (the
    pipeline passes harness.train.processes under launch.processes > 1, as for the policy)."""
    if not p.trained_here:
        return RewardModel(ModelRef(p.cfg.path, p.cfg.revision), p.cfg.chat_template, {"reused": True, "path": p.cfg.path})
    base, _ = base_model(p.model, stages_root)
    stage = Stage("reward_model", stage_spec(p, base), Path(stages_root))
    name = f"{run_id}-rm"
    with tracker.child("reward_model"):
        if launch is not None:  # other processes train it; this one waits and records
            work = lambda d: launch(base, d, name, tracker.current_run_id)  # noqa: E731
        else:
            work = lambda d: train(p.cfg, base, p.model, p.train, p.heldout, d, tracker.report_to, name)  # noqa: E731
        result, reused = stage.run(work, label=f"reward model {p.cfg.name} {stage.key}")
        if reused and (stage.dir / "log_history.json").exists():
            tracker.log_history(json.loads((stage.dir / "log_history.json").read_text()))
    info = {**result, "reused": reused, "key": stage.key, "dir": str(stage.dir)}
    return RewardModel(ModelRef(str(stage.dir / "model"), key=stage.key), p.model.chat_template, info)


# ------------------------------------------------------------------------------------------------- training
def train(rm, base: ModelRef, model_cfg, train_ds: Dataset, heldout: Dataset | None, out_dir: Path,
          report_to: str, run_name: str) -> dict:
    """Bradley-Terry reward model from `base` (TRL loads the causal LM as a sequence classifier with a new head)."""
    from trl import RewardConfig, RewardTrainer

    tok = load_tokenizer(base, model_cfg.chat_template)
    init = {"dtype": torch_dtype(TRAINABLE_DTYPE), "revision": base.revision}  # fp32 weights, model.dtype compute
    args = trl_config(
        RewardConfig, rm, out_dir, model_cfg.dtype, report_to, run_name, rm.seed,
        lr_scheduler_kwargs={"lr_end": rm.final_learning_rate, "power": 1.0} if rm.lr_scheduler == "polynomial" else {},
        max_length=rm.max_length,
        model_init_kwargs=init,
    )
    trainer = RewardTrainer(model=base.path, args=args, train_dataset=encode_pairs(train_ds, tok), processing_class=tok,
                            callbacks=[CountSteps()])
    resume = latest_checkpoint(out_dir / "checkpoints")
    result = trainer.train(resume_from_checkpoint=resume)
    save_trained(trainer, tok, out_dir)
    metrics = {}
    if heldout is not None:
        scorer = RewardScorer(trainer.model.eval(), tok, batch_size=rm.per_device_batch_size)
        metrics = heldout_metrics(scorer, heldout)
    return {**metrics, "train_loss": whole_run_loss(trainer, result, resume), "global_step": trainer.state.global_step,
            "resumed_from": resume, "train_rows": len(train_ds), "train_rows_used": len(trainer.train_dataset),
            **batch_record(rm)}


def encode_pairs(pairs: Dataset, tok) -> Dataset:
    """`chosen_ids` / `rejected_ids`: each side's whole conversation, every message stripped (EasyLM trained its reward
    models on DPO's sequences: data.py PreferenceDataset), through its final EOS, where RewardTrainer reads the score
    (its last token); TRL then drops pairs over max_length (the paper)."""

    def encode(row):
        return {f"{side}_ids": tok(through_final_eos(tok.apply_chat_template(stripped(row["prompt"] + row[side]),
                                                                             tokenize=False),
                                                     tok.eos_token), add_special_tokens=False)["input_ids"]
                for side in ("chosen", "rejected")}

    return pairs.map(encode, remove_columns=pairs.column_names)


def heldout_metrics(scorer: RewardScorer, pairs: Dataset) -> dict:
    margins = pair_margins(scorer, pairs)
    return {"heldout_accuracy": float((margins > 0).float().mean()), "heldout_margin": float(margins.mean()),
            "heldout_pairs": len(margins)}


def pair_margins(scorer: RewardScorer, pairs) -> torch.Tensor:
    """score(prompt + chosen) - score(prompt + rejected) for normalised pairs (harness.data schema)."""
    chosen = scorer.score_conversations([r["prompt"] + r["chosen"] for r in pairs])
    rejected = scorer.score_conversations([r["prompt"] + r["rejected"] for r in pairs])
    return chosen - rejected


# ------------------------------------------------------------------------------------------------- scoring
def load_reward_model(ref: ModelRef, dtype: str = "float32", on=None):
    """The reward model in `dtype` on `on` (a trainer's per-process device) or this machine's default device."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(ref.path, revision=ref.revision, num_labels=1,
                                                               dtype=torch_dtype(dtype))
    return model.to(on or device()).eval()


def token_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids=None) -> torch.Tensor:
    """The scalar head at every position, [batch, length]: reward at the last token, or a value per token."""
    backbone = getattr(model, model.base_model_prefix)
    with root_gathered(model):  # a reward model sharded by accelerate's FSDP2 (held-out scoring after training)
        hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=False).last_hidden_state
        return model.score(hidden).squeeze(-1)


class RewardScorer:
    """Scores conversations, rendered texts or token ids with a sequence-classification reward model."""

    def __init__(self, model, tokenizer, batch_size: int = 8):
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size

    @classmethod
    def load(cls, ref: ModelRef, chat_template: str | None, batch_size: int = 8, dtype: str = "float32") -> RewardScorer:
        return cls(load_reward_model(ref, dtype), load_tokenizer(ref, chat_template), batch_size)

    def shares_tokenizer(self, tok) -> bool:
        """Same vocabulary, special tokens and chat template: the policy's token ids can be scored as they are."""
        return (tok.get_vocab() == self.tok.get_vocab() and tok.chat_template == self.tok.chat_template
                and (tok.bos_token, tok.eos_token) == (self.tok.bos_token, self.tok.eos_token))

    @torch.no_grad()
    def score_ids(self, sequences: list[list[int]]) -> torch.Tensor:
        """Score at the last token of each (unpadded) sequence."""
        out = []
        for i in range(0, len(sequences), self.batch_size):
            chunk = sequences[i : i + self.batch_size]
            longest = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), longest), self.tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, seq in enumerate(chunk):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            dev = self.model.device
            scores = token_scores(self.model, ids.to(dev), mask.to(dev))
            out.append(scores[torch.arange(len(chunk)), mask.sum(1).to(dev) - 1].float().cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def encode(self, text: str) -> list[int]:
        # Rendered chat text carries BOS itself (harness.chat): never add special tokens again.
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def score_texts(self, texts: list[str]) -> torch.Tensor:
        return self.score_ids([self.encode(t) for t in texts])

    def render(self, conversation: list[dict]) -> str:
        """A finished conversation as the reward model reads it: through its final EOS."""
        return through_final_eos(self.tok.apply_chat_template(conversation, tokenize=False), self.tok.eos_token)

    def score_conversations(self, conversations: list[list[dict]]) -> torch.Tensor:
        return self.score_texts([self.render(c) for c in conversations])

    def score_responses(self, prompts: list[list[dict]], query_ids: list[list[int]], response_ids: list[list[int]],
                        ended: list[bool], policy_tok) -> torch.Tensor:
        """Score policy samples: prompt messages, the policy's prompt and response ids (response through EOS when it
        ended). With the policy's tokenizer the ids are scored as they are; otherwise the text is re-rendered and
        re-tokenised for the reward model."""
        if self.shares_tokenizer(policy_tok):
            return self.score_ids([q + r for q, r in zip(query_ids, response_ids)])  # through EOS when it ended
        texts = []
        for prompt, resp, e in zip(prompts, response_ids, ended):
            text = policy_tok.decode(resp, skip_special_tokens=True)
            if e:
                texts.append(self.render(prompt + [{"role": "assistant", "content": text}]))
            else:  # an unfinished response: no end-of-turn the policy never wrote
                texts.append(self.tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False) + text)
        return self.score_texts(texts)


@torch.no_grad()
def policy_score(policy: ModelRef, chat_template: str | None, prompts: list[list[dict]], scorer: RewardScorer,
                 samples: int = 1, max_new_tokens: int = 64, temperature: float = 0.7, seed: int = 0) -> float:
    """Mean reward-model score of a policy's sampled responses to `prompts` (seeded): how far training moved it."""
    from transformers import GenerationConfig

    from harness.models import load_causal_lm

    tok = load_tokenizer(policy, chat_template)
    tok.padding_side = "left"
    model = load_causal_lm(policy).eval()
    gen = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, max_new_tokens=max_new_tokens,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    texts = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts] * samples
    enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(model.device)
    out = model.generate(**enc, generation_config=gen)[:, enc["input_ids"].shape[1]:]
    responses = tok.batch_decode(out, skip_special_tokens=True)
    scores = scorer.score_conversations([p + [{"role": "assistant", "content": r}] for p, r in zip(prompts * samples, responses)])
    return float(scores.mean())
