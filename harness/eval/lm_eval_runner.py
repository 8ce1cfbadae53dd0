"""Benchmarks scored by lm-eval's own tasks, pointed at local data through a generated task file.

The generated YAML `include:`s lm-eval's task file (so prompts, few-shot examples, filters and metrics are lm-eval's),
and replaces only the data source (`dataset_path: json` over the subset written into the stage directory) and the
generation length/temperature from the benchmark config.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from pathlib import Path

import yaml

from harness.eval.sources import load_rows, subset, write_jsonl

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def _task_index() -> dict:
    from lm_eval.tasks import TaskManager

    return TaskManager().task_index  # ~12 s: built at most once per process


@functools.lru_cache(maxsize=None)
def builtin_task_yaml(task: str) -> tuple[Path, dict]:
    """lm-eval's own YAML for `task`: found by its `task:` line (fast), else through lm-eval's task index."""
    import lm_eval.tasks

    pattern = re.compile(rf"^task:\s*['\"]?{re.escape(task)}['\"]?\s*$", re.M)
    for path in sorted(Path(lm_eval.tasks.__file__).parent.rglob("*.yaml")):
        text = path.read_text(errors="ignore")
        if pattern.search(text):
            cfg = yaml.load(text, Loader=_IgnoreTagsLoader)
            if "include" in cfg:  # resolve one level of include for generation_kwargs and splits
                base = yaml.load((path.parent / cfg["include"]).read_text(), Loader=_IgnoreTagsLoader)
                cfg = {**base, **cfg}
            return path, cfg
    index = _task_index()
    if task not in index:
        raise ValueError(f"lm-eval has no task {task!r}")
    return Path(index[task].yaml_path), index[task].cfg


class _IgnoreTagsLoader(yaml.SafeLoader):
    """Reads lm-eval task YAML without resolving its `!function` tags."""


_IgnoreTagsLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def write_task(bench, data_file: Path, tasks_dir: Path) -> str:
    yaml_path, base = builtin_task_yaml(bench.task)
    name = f"harness_{bench.task}"
    gen = dict(base.get("generation_kwargs") or {})
    gen["max_gen_toks"] = bench.generation.max_new_tokens
    if bench.generation.temperature > 0:
        gen.update(do_sample=True, temperature=bench.generation.temperature, top_p=bench.generation.top_p)
    else:
        gen.update(do_sample=False)
    task = {
        "include": str(yaml_path),
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "generation_kwargs": gen,
    }
    for key in ("validation_split", "training_split"):
        if key in base:
            task[key] = None
    if bench.num_fewshot is not None:
        task["num_fewshot"] = bench.num_fewshot
    tasks_dir.mkdir(parents=True, exist_ok=True)
    (tasks_dir / f"{name}.yaml").write_text(yaml.safe_dump(task, sort_keys=False))
    return name


def _sample_record(s: dict) -> dict:
    return {
        "doc_id": s.get("doc_id"),
        "doc": s.get("doc"),
        "prompt": s["arguments"][0][0] if s.get("arguments") else None,
        "output": s["resps"][0][0] if s.get("resps") else None,
        "filtered": s.get("filtered_resps"),
        "target": s.get("target"),
        "metrics": {m: s[m] for m in s.get("metrics", []) if m in s},
    }


def run(bench, lm, out_dir: Path, batch_size: int) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    rows = subset(load_rows(bench), bench.limit, bench.subset_seed)
    data_file = write_jsonl(rows, out_dir / "data" / "test.jsonl")
    name = write_task(bench, data_file, out_dir / "tasks")
    results = simple_evaluate(
        model=lm,
        tasks=[name],
        task_manager=TaskManager(include_path=str(out_dir / "tasks"), include_defaults=False),
        apply_chat_template=bench.apply_chat_template,
        fewshot_as_multiturn=bench.fewshot_as_multiturn and bench.apply_chat_template,
        log_samples=True,
        bootstrap_iters=0,
        random_seed=bench.subset_seed,
    )
    metrics = results["results"][name]
    if bench.metric not in metrics:
        raise KeyError(f"benchmark {bench.name!r}: lm-eval reported {sorted(metrics)}, not the configured metric {bench.metric!r}")
    samples = [_sample_record(s) for s in results["samples"][name]]
    write_jsonl(samples, out_dir / "samples.jsonl")
    (out_dir / "lm_eval_results.json").write_text(json.dumps({k: results[k] for k in ("results", "configs", "versions", "n-shot") if k in results}, indent=1, default=str))
    return {
        "score": float(metrics[bench.metric]) * bench.scale,
        "metric": bench.metric,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        "n": len(samples),
        "samples": "samples.jsonl",
    }
