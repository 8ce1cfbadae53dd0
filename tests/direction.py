"""Independent measurements of what training did, read from the saved model directories evaluation loads.

They use plain transformers forward passes, not the trainer that produced the model, so a trainer that saved the wrong
weights (the base model, a stale checkpoint) is caught.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from harness.models import ModelRef, load_causal_lm, load_tokenizer


def weights(model_dir: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(model_dir) / "model.safetensors"))


def max_weight_change(a: str | Path, b: str | Path) -> float:
    """The largest absolute difference between two saved models' parameters (same architecture)."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)


@torch.no_grad()
def response_logprob(model, tok, conversation: list[dict]) -> float:
    """Sum of log p(final assistant turn | the turns before it), tokenised as prompt ids + response ids; the response
    ends at its EOS, as DPO trains it (the template's trailing newline after EOS is not part of it)."""
    prompt = tok.apply_chat_template(conversation[:-1], add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(conversation, tokenize=False)
    full = full[: full.rfind(tok.eos_token) + len(tok.eos_token)]
    assert full.startswith(prompt), (prompt, full)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tok(full[len(prompt):], add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + r_ids])
    logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
    targets = ids[0, 1:]
    picked = logp.gather(-1, targets[:, None])[:, 0]
    return float(picked[len(p_ids) - 1:].sum())


def preference_margin(model_dir: str | Path, chat_template: str, pairs_file: str | Path) -> float:
    """Mean over preference pairs of log p(chosen) - log p(rejected) under the model in `model_dir`.

    DPO's implicit reward margin is beta * (this for the policy - this for the reference), so a DPO-trained policy must
    have a larger one than the model it started from."""
    tok = load_tokenizer(ModelRef(str(model_dir)), chat_template)
    model = load_causal_lm(ModelRef(str(model_dir))).eval()
    rows = [json.loads(line) for line in Path(pairs_file).read_text().splitlines() if line.strip()]
    return sum(response_logprob(model, tok, r["chosen"]) - response_logprob(model, tok, r["rejected"]) for r in rows) / len(rows)


@torch.no_grad()
def gsm8k_accuracy(model_dir: str | Path, chat_template: str, questions: list[str], answers: list[float],
                   samples: int = 4, max_new_tokens: int = 32, temperature: float = 0.7, seed: int = 0) -> float:
    """Fraction of sampled answers (seeded) whose final number is the gold answer (harness.train.grpo.gsm8k_reward)."""
    from transformers import GenerationConfig

    from harness.train.grpo import gsm8k_reward

    tok = load_tokenizer(ModelRef(str(model_dir)), chat_template)
    tok.padding_side = "left"
    model = load_causal_lm(ModelRef(str(model_dir))).eval()
    texts = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
             for q in questions] * samples
    enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    torch.manual_seed(seed)
    out = model.generate(**enc, generation_config=GenerationConfig(
        do_sample=True, temperature=temperature, top_k=0, max_new_tokens=max_new_tokens,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    responses = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    rewards = gsm8k_reward(responses, answers * samples)
    return sum(rewards) / len(rewards)
