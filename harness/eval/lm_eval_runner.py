"""Benchmarks scored by lm-eval's own tasks, pointed at local data through generated task files.

Each generated YAML `include:`s lm-eval's task file (so prompts, few-shot examples, filters and metrics are lm-eval's)
and replaces only the data source (`dataset_path: json` over the rows selected into the stage directory), the
generation length/temperature, and what `options.task_overrides` sets (e.g. BBH's answer regex). A benchmark with
`subsets` (MMLU subjects, BBH tasks) becomes one task per subset under a generated group whose aggregate is the
configured metric: micro-average (`options.weight_by_size: true`, MMLU) or macro-average over subsets (BBH).
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from harness.eval import openinstruct
from harness.eval.sources import load_rows, select_parts, write_jsonl

NLTK_DATA = Path(__file__).resolve().parent.parent / "assets" / "nltk_data"


def use_bundled_nltk_data() -> None:
    """Point nltk at the bundled punkt_tab (lm-eval's ifeval downloads it at import otherwise; offline that fails)."""
    os.environ["NLTK_DATA"] = os.pathsep.join(p for p in (str(NLTK_DATA), os.environ.get("NLTK_DATA")) if p)
    import nltk

    if str(NLTK_DATA) not in nltk.data.path:
        nltk.data.path.insert(0, str(NLTK_DATA))


def tasks_root() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


@functools.lru_cache(maxsize=None)
def builtin_task_file(task: str, task_file: str | None) -> Path:
    """lm-eval's YAML defining `task`: the configured file, else the file with a matching `task:` line."""
    if task_file:
        path = tasks_root() / task_file
        if not path.exists():
            raise FileNotFoundError(f"lm-eval has no task file {task_file!r} (looked in {tasks_root()})")
        return path
    pattern = re.compile(rf"^task:\s*['\"]?{re.escape(task)}['\"]?\s*$", re.M)
    for path in sorted(tasks_root().rglob("*.yaml")):
        if pattern.search(path.read_text(errors="ignore")):
            return path
    raise ValueError(f"lm-eval has no task {task!r}")


def builtin_config(path: Path) -> dict:
    """The task's configuration with its includes merged and `!function` tags left unresolved."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=False)


def _fill(value, part):
    return value.replace("{subset}", part) if part and isinstance(value, str) else value


def fewshot_split(bench, part: str | None = None) -> str | None:
    """The split lm-eval draws few-shot examples from (MMLU's dev), when the regime uses shots; else None."""
    base = builtin_config(builtin_task_file(_fill(bench.task, part), _fill(bench.task_file, part)))
    shots = bench.num_fewshot if bench.num_fewshot is not None else base.get("num_fewshot", 0)
    return base.get("fewshot_split") if shots else None


def write_task(bench, ctx, tasks_dir: Path, part: str | None, rows: list[dict]) -> str:
    """Write the data and task YAML of one (sub)task over its selected `rows`; returns its name."""
    yaml_path = builtin_task_file(_fill(bench.task, part), _fill(bench.task_file, part))
    base = builtin_config(yaml_path)
    name = f"harness_{_fill(bench.task, part)}"
    data_dir = ctx.dir / "data"
    if bench.options.get("prompt"):  # open-instruct's own prompt text, one user turn (harness.eval.openinstruct)
        rows = openinstruct.add_prompts(rows, bench.options.prompt, part)
    data_files = {"test": str(write_jsonl(rows, data_dir / f"{name}.test.jsonl"))}
    shots = bench.num_fewshot if bench.num_fewshot is not None else base.get("num_fewshot", 0)
    gen = dict(base.get("generation_kwargs") or {})
    gen["max_gen_toks"] = bench.generation.max_new_tokens
    if bench.generation.temperature > 0:
        gen.update(do_sample=True, temperature=bench.generation.temperature, top_p=bench.generation.top_p)
    else:
        gen.update(do_sample=False, temperature=0.0)
    if bench.options.get("replace_stops"):  # the configured stops only, not lm-eval's task's (BBH's "Q")
        gen["until"] = list(bench.generation.stop)
    elif bench.generation.stop:
        gen["until"] = list(gen.get("until") or []) + list(bench.generation.stop)
    task = {"include": str(yaml_path), "task": name, "dataset_path": "json", "dataset_name": None,
            "test_split": "test", "num_fewshot": shots}
    if bench.options.get("prompt"):
        if shots:
            raise ValueError(f"benchmark {bench.name!r}: options.prompt={bench.options.prompt!r} writes the shots into "
                             f"the user turn itself; set num_fewshot: 0 (not {shots}) so lm-eval adds none of its own")
        task |= {"doc_to_text": openinstruct.PROMPT_FIELD, "description": "", "gen_prefix": bench.options.get("gen_prefix")}
    if base.get("output_type") == "generate_until":
        task["generation_kwargs"] = gen
    for key in ("validation_split", "training_split"):
        if base.get(key):
            task[key] = None
    fewshot_split = base.get("fewshot_split")
    if fewshot_split and shots:  # few-shot examples drawn from a split (MMLU's dev), not written in the task file
        data_files[fewshot_split] = str(write_jsonl(load_rows(bench, ctx.mirror, part, split=fewshot_split),
                                                    data_dir / f"{name}.{fewshot_split}.jsonl"))
    elif fewshot_split:
        task["fewshot_split"] = None
    task["dataset_kwargs"] = {"data_files": data_files}
    task |= OmegaConf.to_container(bench.options.get("task_overrides") or OmegaConf.create({}))
    tasks_dir.mkdir(parents=True, exist_ok=True)
    (tasks_dir / f"{name}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return name


def write_group(bench, names: list[str], tasks_dir: Path) -> str:
    metric, _, filter_name = bench.metric.partition(",")
    group = f"harness_{bench.name}"
    spec = {"group": group, "task": names, "aggregate_metric_list": [
        {"metric": metric, "aggregation": "mean", "weight_by_size": bool(bench.options.get("weight_by_size", False)),
         "filter_list": [filter_name or "none"]}]}
    (tasks_dir / f"{group}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return group


def _sample_record(s: dict, task: str) -> dict:
    return {
        "task": task,
        "filter": s.get("filter"),
        "doc_id": s.get("doc_id"),
        "doc": s.get("doc"),
        "prompt": s["arguments"][0][0] if s.get("arguments") else None,
        "output": [r[0] for r in s["resps"]] if s.get("resps") else None,
        "filtered": s.get("filtered_resps"),
        "target": s.get("target"),
        "metrics": {m: s[m] for m in s.get("metrics", []) if m in s},
    }


def evaluate(bench, ctx) -> dict:
    """Run the benchmark's lm-eval task(s) through `ctx.lm`; returns lm-eval's results for the top task or group."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    use_bundled_nltk_data()
    tasks_dir = ctx.dir / "tasks"
    names = [write_task(bench, ctx, tasks_dir, part, rows) for part, rows in select_parts(bench, ctx.mirror).items()]
    top = write_group(bench, names, tasks_dir) if bench.subsets else names[0]
    results = simple_evaluate(
        model=ctx.lm,
        tasks=[top],
        task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
        apply_chat_template=bench.apply_chat_template,
        fewshot_as_multiturn=bench.fewshot_as_multiturn and bench.apply_chat_template,
        log_samples=True,
        bootstrap_iters=0,
        random_seed=bench.subset_seed,
        # a sampled task under eval.seed samples with it; otherwise lm-eval's default torch seed, as before
        **({"torch_random_seed": ctx.seed} if getattr(ctx, "seed", None) is not None else {}),
    )
    samples = [_sample_record(s, name) for name in names for s in results["samples"][name]]
    write_jsonl(samples, ctx.dir / "samples.jsonl")
    keep = ("results", "groups", "configs", "versions", "n-shot", "n-samples")
    (ctx.dir / "lm_eval_results.json").write_text(json.dumps({k: results[k] for k in keep if k in results}, indent=1, default=str))
    metrics = (results.get("groups") or {}).get(top) or results["results"][top]
    return {"metrics": metrics, "per_task": {n: results["results"][n] for n in names}, "n": len(samples)}


def run(bench, ctx) -> dict:
    out = evaluate(bench, ctx)
    metrics = out["metrics"]
    if bench.metric not in metrics:
        raise KeyError(f"benchmark {bench.name!r}: lm-eval reported {sorted(metrics)}, not the configured metric {bench.metric!r}")
    result = {
        "score": float(metrics[bench.metric]) * bench.scale,
        "metric": bench.metric,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
        "n": out["n"],
        "samples": "samples.jsonl",
    }
    if bench.subsets:
        result["subsets"] = {n.removeprefix("harness_"): float(m[bench.metric]) * bench.scale
                             for n, m in out["per_task"].items() if bench.metric in m}
    return result
