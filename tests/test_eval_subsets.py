"""The paper's example subsets, drawn as open-instruct drew them (allenai/open-instruct@ea3467dbb): BBH's 40 per task
(eval/bbh/run_eval.py main: random.seed(42) once, then random.sample per task file) and ToxiGen's 500 per group
(eval/toxigen/run_eval.py main: random.seed(42) once, then per group file random.shuffle and the first 500), one
generator over the parts in order. The reference's draw is re-implemented here on fixtures and compared row for row;
tests/golden/subsets_tiny.idx holds the indices drawn from the bundled mini mirrors."""

from __future__ import annotations

import json
import random
from pathlib import Path

from omegaconf import OmegaConf

from conftest import compose
from harness.eval.sources import benchmark_rows, load_rows, select_parts

GOLDEN = Path(__file__).resolve().parent / "golden" / "subsets_tiny.idx"


def reference_draws(files: dict[str, list], limit: int, draw: str) -> dict[str, list[int]]:
    """open-instruct's draw over its files in order (seeded once); the indices of the rows it kept, sorted."""
    rng = random.Random(42)  # random.seed(42): the module's functions are one Random instance's methods
    out = {}
    for part, rows in files.items():
        indexed = list(range(len(rows)))
        if draw == "sample":  # BBH: all_tasks[task_name] = random.sample(examples, max_num_examples_per_task)
            kept = rng.sample(indexed, limit)
        else:  # ToxiGen: random.shuffle(group_prompts); group_prompts[:max_prompts_per_group]
            rng.shuffle(indexed)
            kept = indexed[:limit]
        out[part] = sorted(kept)
    return out


def bench_over(tmp_path: Path, key: str, parts: dict[str, list[dict]]):
    """Benchmark `key` with the paper's draw (limit, seed, draw) over `parts`, one file per part."""
    for part, rows in parts.items():
        (tmp_path / f"{part}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    paper, tiny = compose("eval=paper").eval.benchmarks[key], compose("eval=tiny").eval.benchmarks[key]
    return OmegaConf.merge(tiny, {"files": {tiny.split: str(tmp_path / "{subset}.jsonl")}, "subsets": list(parts),
                                  **{k: paper[k] for k in ("limit", "subset_seed", "subset_draw")}})


def kept_indices(bench, field: str) -> dict[str, list[int]]:
    return {part: [int(r[field].rsplit("-", 1)[1]) for r in rows] for part, rows in select_parts(bench).items()}


def test_bbh_draws_40_per_task_from_one_generator(tmp_path):
    tasks = ["date_understanding", "boolean_expressions", "navigate", "word_sorting"]  # any order: the listed one
    parts = {t: [{"input": f"{t}-{i}", "target": "x"} for i in range(250 - 20 * k)] for k, t in enumerate(tasks)}
    bench = bench_over(tmp_path, "bbh", parts)
    assert (bench.limit, bench.subset_seed, bench.subset_draw) == (40, 42, "sample")
    got = kept_indices(bench, "input")
    assert got == reference_draws(parts, 40, "sample")
    # each task seeded on its own would keep other examples after the first task
    assert got["navigate"] != sorted(random.Random(42).sample(range(len(parts["navigate"])), 40))


def test_toxigen_keeps_the_head_of_each_groups_shuffle(tmp_path):
    groups = ["asian", "black", "women"]
    parts = {g: [{"text": f"{g}-{i}"} for i in range(1000)] for g in groups}
    bench = bench_over(tmp_path, "toxigen", parts)
    assert (bench.limit, bench.subset_seed, bench.subset_draw) == (500, 42, "shuffle")
    got = kept_indices(bench, "text")
    assert got == reference_draws(parts, 500, "shuffle")
    # random.sample from the same state keeps exactly the other 500 of the first group
    assert not set(got["asian"]) & set(random.Random(42).sample(range(1000), 500))
    assert [r["_subset"] for r in benchmark_rows(bench)] == [g for g in groups for _ in range(500)]


def test_bundled_mirrors_draw_the_golden_rows():
    """The tiny suite's BBH and ToxiGen rows are the reference's draw from the bundled files (tests/golden/subsets_tiny.idx,
    derived with reference_draws)."""
    head, _, body = GOLDEN.read_text().partition("\n=====\n")
    assert {"repo", "commit", "file", "function"} <= {line[2:].split(": ")[0] for line in head.splitlines()}
    golden = json.loads(body)
    benches = compose("eval=tiny").eval.benchmarks
    for key, draw in (("bbh", "sample"), ("toxigen", "shuffle")):
        bench = benches[key]
        files = {part: load_rows(bench, None, part) for part in bench.subsets}
        assert golden[key] == reference_draws(files, bench.limit, draw), key
        chosen = select_parts(bench)
        assert {p: [files[p].index(r) for r in rows] for p, rows in chosen.items()} == golden[key], key


def test_an_unknown_draw_is_a_config_error():
    import pytest

    from harness.config.checks import check
    from harness.config.errors import ConfigError

    with pytest.raises(ConfigError, match=r"eval.benchmarks.toxigen.subset_draw='random'; valid: \['sample', 'shuffle'\]"):
        check(compose("eval=tiny", "eval.benchmarks.toxigen.subset_draw=random"))
