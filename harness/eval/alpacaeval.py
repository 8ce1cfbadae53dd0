"""AlpacaEval 1 and 2 through the `alpaca_eval` package: its annotator prompts, parsers, randomised output order and
win-rate metrics, with the judge from the benchmark's config (`judges.annotator`) answering its prompts.

Data: `tatsu-lab/alpaca_eval`, config `alpaca_eval`, split `eval` (805 rows):
    {"instruction": "What are the names of some famous actors ...", "output": "<text-davinci-003's answer>",
     "generator": "text_davinci_003", "dataset": "helpful_base"}
AlpacaEval 1 compares with those text-davinci-003 outputs under the `alpaca_eval_gpt4` annotator (ranking prompt,
win rate). AlpacaEval 2 compares with GPT-4-Turbo's outputs (config `alpaca_eval_gpt4_baseline`, `options.reference`)
under `weighted_alpaca_eval_gpt4_turbo` (the judge's probability of "m" vs "M", length-controlled win rate).

The length-controlled win rate (`options.lc_glm`): `length_controlled_v1` is alpaca_eval's own GLM, which downloads
`df_gamed.csv` (instruction difficulties of the 805 prompts) from the hub, so it needs the network or a warm HF
cache and the 805 official prompts; `length_controlled_minimal` fits alpaca_eval's GLM without the instruction-difficulty
term on this run's annotations alone (offline, any prompt set): the model's win rate predicted at zero length difference.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from harness.eval import benchmark_result
from harness.eval.generation import chat_prompt, fit_to_context, generate
from harness.eval.judges import make_judge
from harness.eval.sources import benchmark_rows, load_rows, select, write_jsonl

# For a judge that picks among options (the local HF judges): the two rankings `ranking_parser` reads. An API judge
# (GPT-4 for AlpacaEval 1) instead returns its reply text, which alpaca_eval's own parser reads as it is.
RANKINGS = {  # what `ranking_parser` reads: model_1 ranked first, or model_2 ranked first
    1: "[{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]",
    2: "[{'model': 'model_1', 'rank': 2}, {'model': 'model_2', 'rank': 1}]",
}
GLMS = ("length_controlled_v1", "length_controlled_minimal")
CAP_FILE = "max_new_tokens.json"
log = logging.getLogger(__name__)


def annotator_config(name: str, out_dir: Path) -> tuple[Path, dict]:
    """The package's annotator `name` without its own completion function (the harness's judge answers instead)."""
    import alpaca_eval

    configs = Path(alpaca_eval.__file__).parent / "evaluators_configs"
    path = configs / name / "configs.yaml"
    if not path.exists():
        raise ValueError(f"alpaca_eval has no annotator {name!r}; e.g. alpaca_eval_gpt4, weighted_alpaca_eval_gpt4_turbo")
    cfg = yaml.safe_load(path.read_text())[name]
    for key in ("fn_completions", "completions_kwargs"):
        cfg.pop(key, None)
    cfg["prompt_template"] = str(configs / cfg["prompt_template"])
    cfg["batch_size"] = 1
    if cfg.get("fn_completion_parser") not in ("ranking_parser", "logprob_parser"):
        raise ValueError(f"annotator {name!r} uses parser {cfg.get('fn_completion_parser')!r}; the harness's judges "
                         "answer ranking_parser and logprob_parser annotators")
    target = out_dir / "annotator" / "configs.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump({name: cfg}))
    return target, cfg


def completion_fn(judge, cfg: dict):
    """`fn_completions` for alpaca_eval: each prompt (ChatML text) goes to the judge as messages."""
    from alpaca_eval.utils import prompt_to_chatml

    logprobs = cfg["fn_completion_parser"] == "logprob_parser"
    options = list(cfg["completion_parser_kwargs"]["denominator_tokens"]) if logprobs else list(RANKINGS.values())

    def fn(prompts, **_):
        if not logprobs and judge.kind == "openai":
            # the reply text goes to alpaca_eval's ranking_parser untouched; it raises on "" (an empty reply), which
            # "[]" turns into the parser's NaN: unparseable, counted in run()
            return {"completions": [t if t.strip() else "[]" for t in judge.complete([prompt_to_chatml(p) for p in prompts])]}
        verdicts = judge.choose([prompt_to_chatml(p) for p in prompts], options)
        texts = [max(v, key=v.get) if v else "" for v in verdicts]
        if not logprobs:
            return {"completions": [t or "[]" for t in texts]}
        top = [[{"token": o, "logprob": math.log(p)} for o, p in v.items() if p > 0] for v in verdicts]
        return {"completions": texts,
                "completions_all": [{"logprobs": {"content": [{"token": t, "top_logprobs": tl}]}, "text": t} for t, tl in zip(texts, top)]}

    return fn


def length_controlled_minimal(annotations, cv_splits: int) -> float:
    """alpaca_eval's length-controlled GLM without instruction difficulty, fitted on these annotations only."""
    import numpy as np
    import pandas as pd
    from alpaca_eval.metrics.glm_winrate import GLM_INFO, fit_LogisticRegressionCV, make_dmatrix_for_model

    df = pd.DataFrame(annotations).dropna(subset=["preference"]).reset_index(drop=True)
    delta = df["output_1"].str.len() - df["output_2"].str.len()
    train = pd.DataFrame({"preference": df["preference"].astype(float).replace({0.0: 1.5}) - 1,
                          "std_delta_len": delta / (delta.std() or 1.0), "not_gamed_baseline": True})
    test = train[["not_gamed_baseline"]].assign(std_delta_len=0.0)
    xy, x_test = make_dmatrix_for_model(train, test, formula=GLM_INFO["length_controlled_minimal"]["formula"])
    model = fit_LogisticRegressionCV(xy, "preference", is_ytrue_proba=True, n_splits=cv_splits)
    return float(np.mean(model.predict_proba(x_test)[:, 1]) * 100)


def win_rates(annotations, glm: str, cv_splits: int) -> dict:
    from alpaca_eval.metrics import get_length_controlled_winrate, get_winrate

    metrics = get_winrate(annotations)
    if glm == "length_controlled_v1":
        metrics = get_length_controlled_winrate(annotations, save_weights_dir=None)
    elif glm == "length_controlled_minimal":
        metrics["length_controlled_winrate"] = length_controlled_minimal(annotations, cv_splits)
    elif glm:
        raise ValueError(f"options.lc_glm={glm!r}; valid: {list(GLMS)} or null")
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def run(bench, ctx) -> dict:
    from alpaca_eval.annotators import PairwiseAnnotator

    opts = bench.options
    rows = benchmark_rows(bench, ctx.mirror)
    if opts.get("reference"):  # e.g. AlpacaEval 2: GPT-4-Turbo's outputs, from another config of the same hub set
        ref = OmegaConf.merge(bench, {"subsets": None, **OmegaConf.to_container(opts["reference"])})
        by_instruction = {r["instruction"]: r for r in select(load_rows(ref, ctx.mirror), ref)}
        references = [by_instruction[r["instruction"]] for r in rows]
    else:
        references = rows
    prompts = [chat_prompt(ctx.lm, r["instruction"]) for r in rows]
    gen = (fit_to_context(ctx.lm, prompts, bench.generation, ctx.dir / CAP_FILE, ctx.generations)
           if opts.get("fit_context") else bench.generation)
    outputs = [o[0] for o in generate(ctx.lm, prompts, gen)]
    generator = opts.get("generator_name", "policy")
    model = [{"instruction": r["instruction"], "output": o, "generator": generator, "dataset": r.get("dataset", "")}
             for r, o in zip(rows, outputs)]
    baseline = [{"instruction": r["instruction"], "output": r["output"], "generator": r.get("generator", "reference"),
                 "dataset": r.get("dataset", "")} for r in references]
    config_path, cfg = annotator_config(opts["annotator"], ctx.dir)
    annotator = PairwiseAnnotator(annotators_config=str(config_path), caching_path=None,
                                  fn_completions=completion_fn(make_judge(bench, "annotator", ctx), cfg))
    annotations = annotator.annotate_head2head(outputs_1=baseline, outputs_2=model)
    write_jsonl([{"prompt": p, **a} for p, a in zip(prompts, annotations)], ctx.dir / "samples.jsonl")
    unparsed = count_unparsed(annotations, len(rows))
    if unparsed:  # alpaca_eval's metrics drop them; say how many, never silently
        log.warning("%s: %d of %d judge replies could not be parsed (preference NaN) and are left out of the win rate; "
                    "see %s", bench.name, unparsed, len(annotations), ctx.dir / "samples.jsonl")
    metrics = win_rates(annotations, opts.get("lc_glm"), int(opts.get("lc_cv_splits", 5)))
    metrics["unparsed_annotations"] = float(unparsed)
    return benchmark_result(bench, metrics, len(rows), unparsed=unparsed)


def count_unparsed(annotations: list[dict], expected: int) -> int:
    """Pairs whose judge reply alpaca_eval's parser could not read (preference None or NaN, or no annotation)."""
    parsed = [a for a in annotations if isinstance(a.get("preference"), (int, float)) and not math.isnan(a["preference"])]
    return expected - len(parsed)
