"""The embedded tiny model: a byte-level BPE tokenizer trained on bundled text, a small Llama, a short SFT.

Built deterministically from `conf/model/tiny.yaml` (harness.models.base_model_stage caches the result), so every
code path runs on a CPU with no network, while the same code loads `allenai/tulu-2-13b` for users with GPUs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from harness.chat import TULU_TEMPLATE
from harness.config.schema import TinyModelSpec
from harness.tiny.data import TINY_DIR

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<s>", "</s>", "<pad>"]
# Tulu's role markers become single (non-special) tokens: a tiny model learns the format faster.
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]


def _corpus() -> list[str]:
    """Every user and assistant message in the bundled tiny files, in a fixed order."""
    texts = []
    for path in sorted(TINY_DIR.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for key in ("messages", "chosen", "rejected"):
                texts.extend(m["content"] for m in row.get(key, []))
    return texts


def build_tokenizer(spec: TinyModelSpec) -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=spec.max_position_embeddings
    )
    tok.add_tokens(ROLE_TOKENS)
    tok.chat_template = TULU_TEMPLATE
    return tok


def build_model(spec: TinyModelSpec, tok: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    torch.manual_seed(spec.seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def sft_dataset() -> Dataset:
    """Bundled SFT rows as conversational prompt/completion pairs (loss on the completion, as Tulu's SFT)."""
    rows = [json.loads(line) for line in (TINY_DIR / "sft.jsonl").read_text().splitlines()]
    return Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])


def build(spec: TinyModelSpec, out_dir: Path) -> dict:
    """Build tokenizer and model, SFT them on the bundled data, save both to `out_dir`; returns SFT metrics."""
    from trl import SFTConfig, SFTTrainer

    tok = build_tokenizer(spec)
    model = build_model(spec, tok)
    work = out_dir.parent / (out_dir.name + ".sft")
    args = SFTConfig(
        output_dir=str(work),
        num_train_epochs=spec.sft_epochs,
        learning_rate=spec.sft_learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        per_device_train_batch_size=spec.sft_batch_size,
        max_length=256,
        bf16=False,
        use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        seed=spec.seed,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=sft_dataset(), processing_class=tok)
    result = trainer.train()
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"sft_steps": trainer.state.global_step, "sft_first_loss": losses[0], "sft_final_loss": losses[-1],
            "sft_train_loss": result.training_loss, "parameters": sum(p.numel() for p in model.parameters())}
