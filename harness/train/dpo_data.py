"""DPO's training sequences as the paper's code built them (hamishivi/EasyLM@dbf2212 EasyLM/data.py, preference
datasets with `only_train_last_message`): each side of a pair is its own whole conversation (prompt + that side's
turns, so a multi-turn Chatbot Arena or HH-RLHF side keeps its own earlier answers as context), rendered with the chat
template from its stripped messages and cut right after its final EOS (EasyLM strips every message and the text, so
the template's trailing newline is not trained on), and DPO's log-probs cover that side's last assistant message only. Sequences longer than max_length
are truncated from the end and kept (EasyLM truncates to seq_length); a pair whose last message starts beyond it has
nothing to train on and is left out.

`LastMessageDPOTrainer` is TRL's DPOTrainer with this encoding in place of TRL's shared-prompt one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from datasets import Dataset
from transformers.data.data_collator import DataCollatorMixin
from trl import DPOTrainer
from trl.data_utils import common_prefix_length

from harness.chat import stripped, through_final_eos

SIDES = ("chosen", "rejected")


def encode_side(tok, messages: list[dict]) -> tuple[list[int], int]:
    """Token ids of a conversation (every message stripped, as EasyLM) through its final EOS, and the position where
    its last assistant message starts."""
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError(f"a DPO side must end with an assistant message, got roles {[m['role'] for m in messages]}")
    messages = stripped(messages)
    full = tok.apply_chat_template(messages, tokenize=False)
    context = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    end = full.rfind(tok.eos_token)
    if not full.startswith(context) or end < len(context):
        raise ValueError(f"the chat template does not render {messages[-1]['content'][:60]!r} after its context and "
                         "end it with EOS; use a template that does (model.chat_template=tulu)")
    ids = tok(through_final_eos(full, tok.eos_token), add_special_tokens=False)["input_ids"]  # the text carries BOS
    start = common_prefix_length(tok(context, add_special_tokens=False)["input_ids"], ids)
    return ids, start


def encode_pairs(pairs: Dataset, tok, max_length: int | None) -> Dataset:
    """`<side>_input_ids` and `<side>_start` (first token of the last assistant message) for both sides."""

    def encode(row):
        out = {}
        for side in SIDES:
            out[f"{side}_input_ids"], out[f"{side}_start"] = encode_side(tok, row["prompt"] + row[side])
        return out

    encoded = pairs.map(encode, remove_columns=[c for c in pairs.column_names if c not in ("ref_chosen_logps", "ref_rejected_logps")])
    if max_length is None:
        return encoded
    return encoded.filter(lambda r: max(r["chosen_start"], r["rejected_start"]) < max_length)


@dataclass
class LastMessageCollator(DataCollatorMixin):
    """Chosen sequences, then rejected ones (TRL's layout), right-padded; `completion_mask` marks each side's last
    assistant message; sequences are truncated to `max_length` from the end."""

    pad_token_id: int
    max_length: int | None = None
    return_tensors: str = "pt"

    def torch_call(self, examples: list[dict]) -> dict:
        seqs, masks = [], []
        for side in SIDES:
            for e in examples:
                ids = e[f"{side}_input_ids"][: self.max_length]
                start = min(e[f"{side}_start"], len(ids))
                seqs.append(ids)
                masks.append([0] * start + [1] * (len(ids) - start))
        width = max(len(s) for s in seqs)
        out = {"input_ids": torch.tensor([s + [self.pad_token_id] * (width - len(s)) for s in seqs]),
               "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs]),
               "completion_mask": torch.tensor([m + [0] * (width - len(m)) for m in masks])}
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            if key in examples[0]:
                out[key] = torch.tensor([e[key] for e in examples])
        return out


class LastMessageDPOTrainer(DPOTrainer):
    """TRL's DPOTrainer on sequences built by encode_pairs (pass `data_collator=LastMessageCollator(...)`)."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return encode_pairs(dataset, processing_class, args.max_length)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = [f"{s}_{k}" for s in SIDES for k in ("input_ids", "start")] + [
                "ref_chosen_logps", "ref_rejected_logps"]
