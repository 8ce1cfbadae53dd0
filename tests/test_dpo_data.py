"""DPO's data as the paper fed it: over-length pairs are truncated and kept (EasyLM data.py truncates to seq_length;
the paper's DPO command does not remove truncated samples), unless algorithm.drop_overlength asks for dropping."""

from harness import pipeline


def test_dpo_keeps_over_length_pairs_unless_asked_to_drop_them(run_config, tiny_base):
    cfg = run_config("algorithm.max_length=48", "dataset.max_bad_fraction=1.0")
    assert cfg.algorithm.name == "dpo" and not cfg.algorithm.drop_overlength
    inputs = pipeline.load_training_data(cfg)
    loaded = len(inputs.train)
    kept = pipeline.fit_training_data(cfg, inputs, tiny_base)
    assert len(kept.train) == loaded
    dropped = pipeline.fit_training_data(run_config("algorithm.max_length=48", "dataset.max_bad_fraction=1.0",
                                                    "algorithm.drop_overlength=true"), inputs, tiny_base)
    assert 0 < len(dropped.train) < loaded  # 48 tokens is short enough to drop some of the toy pairs


def test_each_side_is_its_own_conversation_trained_on_its_last_message_through_eos(tiny_base):
    """EasyLM's only_train_last_message on a Chatbot-Arena-like pair whose sides differ from the first answer on."""
    from datasets import Dataset

    from harness.models import load_tokenizer
    from harness.train.dpo_data import LastMessageCollator, encode_pairs

    tok = load_tokenizer(tiny_base, "tulu")
    user = lambda text: {"role": "user", "content": text}  # noqa: E731
    bot = lambda text: {"role": "assistant", "content": text}  # noqa: E731
    pair = {"prompt": [user("Name a color.")], "chosen": [bot("Red."), user("Another?"), bot("Blue.")],
            "rejected": [bot("No."), user("Another?"), bot("Green, maybe.")]}
    batch = LastMessageCollator(tok.pad_token_id)(encode_pairs(Dataset.from_list([pair]), tok, None).to_list())
    for row, side in enumerate(("chosen", "rejected")):
        ids, mask, attn = (batch[k][row] for k in ("input_ids", "completion_mask", "attention_mask"))
        seq = ids[attn.bool()].tolist()
        # the whole conversation of this side, rendered by the template and ending at its final EOS
        rendered = tok.apply_chat_template(pair["prompt"] + pair[side], tokenize=False)
        assert tok.decode(seq) == rendered[: rendered.rfind(tok.eos_token) + len(tok.eos_token)]
        assert seq[-1] == tok.eos_token_id
        # log-probs only on the last assistant message (and its EOS): no user turn, no earlier answer
        assert tok.decode(ids[mask.bool()]) == pair[side][-1]["content"] + tok.eos_token
    # over-length: truncated from the end and kept while the last message starts inside max_length
    kept = encode_pairs(Dataset.from_list([pair]), tok, 40)
    assert len(kept) == 1 and len(LastMessageCollator(tok.pad_token_id, 40)(kept.to_list())["input_ids"][0]) <= 40
    assert len(encode_pairs(Dataset.from_list([pair]), tok, 5)) == 0
