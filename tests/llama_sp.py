"""Token-level conformance: the SentencePiece-style Llama tokenizer fixture (tests/fixtures/llama_sp) as transformers
loads it today (`legacy` true, false or unset), the reference's token ids for each golden input, and the golden files.

A token golden `tests/golden/<name>.ids` holds the ids the paper's code produced for one input with the fixture
tokenizer loaded as that code loaded it (the committed tokenizer.json as it is: a `▁` prepended to every text segment
between special tokens), after a header naming the code. Regenerate them (after a text golden changed) with

    python tests/llama_sp.py
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer

TESTS = Path(__file__).resolve().parent
FIXTURE = TESTS / "fixtures" / "llama_sp"
GOLDEN = TESTS / "golden"
# the `legacy` values a Llama tokenizer_config.json carries (None: the key is absent, as in many Llama 2 checkpoints)
LEGACY = (True, False, None)

OI, OI_MAIN, OI_PLUS = "allenai/open-instruct", "ea3467dbb", "b6737f623"
# Eval prompt families -> (commit, file, function). Every one renders its chat prompt with add_bos=False (or uses the
# raw text without a chat format) and lets the tokenizer add BOS itself: vLLM's generate and eval/utils.py
# generate_completions / get_next_word_predictions / score_completions encode with add_special_tokens=True.
BOS_BY_TOKENIZER = "the prompt without BOS, encoded with the tokenizer's own BOS (add_special_tokens=True)"
EVAL = {
    "gsm8k": (OI_MAIN, "eval/gsm/run_eval.py", "main: chat_formatting_function(..., add_bos=False); " + BOS_BY_TOKENIZER),
    "gsm8k_plain": (OI_MAIN, "eval/gsm/run_eval.py", "main (no chat format): " + BOS_BY_TOKENIZER),
    "bbh_boolean_expressions": (OI_MAIN, "eval/bbh/run_eval.py", "main: chat_formatting_function(..., add_bos=False); "
                                + BOS_BY_TOKENIZER),
    "bbh_boolean_expressions_plain": (OI_MAIN, "eval/bbh/run_eval.py", "main (no chat format): " + BOS_BY_TOKENIZER),
    "mmlu_abstract_algebra": (OI_MAIN, "eval/mmlu/run_eval.py + eval/utils.py", "eval_hf_model (add_bos=False) + "
                              "get_next_word_predictions(add_special_tokens=True); answers: encode(' ' + letter)[-1]"),
    "mmlu_abstract_algebra_plain": (OI_MAIN, "eval/mmlu/run_eval.py + eval/utils.py",
                                    "eval_hf_model (no chat format) + get_next_word_predictions(add_special_tokens=True)"),
    "truthfulqa": (OI_MAIN, "eval/truthfulqa/run_eval.py + eval/utils.py", "run_hf_model (add_bos=False) + "
                   "generate_completions(add_special_tokens=True)"),
    "truthfulqa_plain": (OI_MAIN, "eval/truthfulqa/run_eval.py + eval/utils.py",
                         "run_hf_model (no chat format) + generate_completions(add_special_tokens=True)"),
    "toxigen": (OI_MAIN, "eval/toxigen/run_eval.py", "main: chat_formatting_function(..., add_bos=False); "
                + BOS_BY_TOKENIZER),
    "toxigen_plain": (OI_MAIN, "eval/toxigen/run_eval.py", "main (no chat format): " + BOS_BY_TOKENIZER),
    "xstest": (OI_MAIN, "eval/xstest/run_eval.py", "main: chat_formatting_function(..., add_bos=False); "
               + BOS_BY_TOKENIZER),
    "alpaca_eval": (OI_MAIN, "eval/alpaca_farm/run_eval.py", "main: chat_formatting_function(..., add_bos=False); "
                    + BOS_BY_TOKENIZER),
    "ifeval": (OI_MAIN, "eval/ifeval/run_eval.py", "main: chat_formatting_function(..., add_bos=False); "
               + BOS_BY_TOKENIZER),
    "humaneval_plus": (OI_PLUS, "eval/codex_humaneval/run_eval.py", "main: apply_chat_format (add_bos=False); "
                       + BOS_BY_TOKENIZER),
    "humaneval_plus_plain": (OI_PLUS, "eval/codex_humaneval/run_eval.py", "main (no chat format): " + BOS_BY_TOKENIZER),
    "mbpp_plus": (OI_PLUS, "eval/mbpp/run_eval.py", "main: apply_chat_format (add_bos=False); " + BOS_BY_TOKENIZER),
}

# The training inputs: one conversation with whitespace around every message (EasyLM strips it) and two turns, so a
# `</s>` sits inside the prompt.
CONVERSATION = {
    "prompt": [{"role": "user", "content": "  What is 3 + 4? "},
               {"role": "assistant", "content": " It is 7.\n"},
               {"role": "user", "content": "And the capital of France?\n\n"}],
    "chosen": [{"role": "assistant", "content": " The capital of France is Paris. "}],
    "rejected": [{"role": "assistant", "content": "I do not know.\n"}],
}
EASYLM = ("hamishivi/EasyLM", "dbf2212")
TRAINING = {
    "preference_pair": ("EasyLM/data.py", "PreferenceDataset._process_sample -> TuluJsonTorchDataset."
                        "encode_with_messages_format(only_train_last_message=True): bos_token + the stripped messages' "
                        "text, .strip()ed, encoded with add_special_tokens=False (llama_train_dpo.py and "
                        "llama_train_rm.py); `start`: the first token of the last message's loss mask"),
    "ppo_prompt": ("EasyLM/data.py", "TuluPromptDataset._process_sample: the stripped messages' text + "
                   "'<|assistant|>\\n', encoded with add_special_tokens=False (no BOS; llama_train_ppo.py)"),
}


def model_dir(root: Path, legacy: bool | None) -> Path:
    """A tokenizer directory laid out like Tulu 2's: the fixture's tokenizer.json and a tokenizer_config.json naming
    LlamaTokenizer with `legacy` (None: no such key)."""
    path = Path(root) / f"llama_sp_legacy_{legacy}".lower()
    path.mkdir(parents=True, exist_ok=True)
    (path / "tokenizer.json").write_bytes((FIXTURE / "tokenizer.json").read_bytes())
    config = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
              "add_bos_token": True, "add_eos_token": False, "model_max_length": 4096}
    if legacy is not None:
        config["legacy"] = legacy
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def reference() -> Tokenizer:
    """The fixture as the paper's code loaded it: tokenizer.json as it is (transformers 4.43's PreTrainedTokenizerFast
    in EasyLM, vLLM's and open-instruct's fast tokenizer), `▁` prepended to every segment between special tokens."""
    return Tokenizer.from_file(str(FIXTURE / "tokenizer.json"))


# ------------------------------------------------------------------------------------------------ the reference's rules
def text_golden(name: str) -> str:
    return (GOLDEN / f"{name}.txt").read_text().partition("\n=====\n")[2]


def open_instruct_prompt(name: str) -> list[int]:
    """open-instruct's prompt `name` (the text golden after the harness's rendered <s>), BOS added by the tokenizer."""
    body = text_golden(name)
    assert body.startswith("<s>"), name
    return reference().encode(body[len("<s>"):], add_special_tokens=True).ids


def open_instruct_answer(letter: str) -> int:
    """eval/mmlu/run_eval.py answer_choice_ids: encode(' ' + letter, add_special_tokens=False)[-1]."""
    return reference().encode(" " + letter, add_special_tokens=False).ids[-1]


def easylm_text(messages: list[dict], eos: str = "</s>") -> str:
    """EasyLM's Tulu rendering of messages, each content stripped (data.py _concat_messages)."""
    heads = {"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n"}
    return "".join(heads[m["role"]] + m["content"].strip() + (eos if m["role"] == "assistant" else "") + "\n"
                   for m in messages)


def easylm_preference_side(messages: list[dict]) -> dict:
    """A DPO / reward-model sequence: BOS + the stripped text, stripped again; the loss mask of the last message
    starts after BOS + the context's tokens up to and including '<|assistant|>\\n'."""
    tok = reference()
    ids = tok.encode("<s>" + easylm_text(messages).strip(), add_special_tokens=False).ids
    start = 1 + len(tok.encode(easylm_text(messages[:-1]) + "<|assistant|>\n", add_special_tokens=False).ids)
    return {"ids": ids, "start": start}


def easylm_ppo_prompt(messages: list[dict]) -> list[int]:
    return reference().encode(easylm_text(messages) + "<|assistant|>\n", add_special_tokens=False).ids


def derived(name: str):
    """What the reference produced for golden `name`."""
    if name in EVAL:
        ids = open_instruct_prompt(name)
        return {"ids": ids, "answers": {x: open_instruct_answer(x) for x in "ABCD"}} if name.startswith("mmlu") else ids
    if name == "preference_pair":
        c = CONVERSATION
        return {side: easylm_preference_side(c["prompt"] + c[side]) for side in ("chosen", "rejected")}
    if name == "ppo_prompt":
        return easylm_ppo_prompt(CONVERSATION["prompt"])
    raise KeyError(name)


# ------------------------------------------------------------------------------------------------ golden files
def golden_ids(name: str) -> tuple[dict, object]:
    """A token golden: its header fields and its JSON body."""
    head, _, body = (GOLDEN / f"{name}.ids").read_text().partition("\n=====\n")
    fields = dict(line[2:].split(": ", 1) for line in head.splitlines() if ": " in line)
    return fields, json.loads(body)


def write_golden(name: str) -> None:
    value = derived(name)
    if name in EVAL:
        commit, file, function = EVAL[name]
        repo, source = OI, f"text: tests/golden/{name}.txt (the text after its <s>)"
    else:
        (repo, commit), (file, function) = EASYLM, TRAINING[name]
        source = "input: tests/llama_sp.py CONVERSATION"
    first = value if isinstance(value, list) else value.get("ids") or value["chosen"]["ids"]
    lines = ["# golden token ids: what the reference's code produced for one input with the SentencePiece-style Llama "
             "tokenizer tests/fixtures/llama_sp/tokenizer.json (after `=====`: JSON)",
             f"# repo: {repo}", f"# commit: {commit}", f"# file: {file}", f"# function: {function}", f"# {source}",
             "# starts: " + " ".join(reference().id_to_token(i) for i in first[:8])]
    (GOLDEN / f"{name}.ids").write_text("\n".join(lines) + "\n=====\n" + json.dumps(value) + "\n")


if __name__ == "__main__":
    for golden in [*EVAL, *TRAINING]:
        write_golden(golden)
