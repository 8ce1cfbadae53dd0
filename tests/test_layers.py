"""The layers of the code point one way: a module imports (at module level or inside a function) only modules of its
own layer or of a lower one. The order is defined here, once; docs/development.md shows it."""

from __future__ import annotations

from import_graph import module_imports

# Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # typed configs and their errors, the console, chat formats, content-addressed stage directories, JSONL files;
    # harness.sweep.config: the sweeper's and launchers' schemas (under sweep/ so that submitit's pickles of requeued
    # jobs name them as before)
    ("base", ("harness", "harness.config", "harness.console", "harness.cli", "harness.chat", "harness.records.stages",
              "harness.records.jsonl", "harness.sweep.config")),
    # what a run reads: preference data and prompts, the base models (and the tiny world they are built from), the
    # sources of a benchmark's data (harness.eval.variants: data revisions only)
    ("data and models", ("harness.data", "harness.tiny", "harness.models", "harness.eval.variants")),
    ("trainers", ("harness.train",)),
    # one module per algorithm: each calls its trainer
    ("algorithms", ("harness.algorithms",)),
    # the checks a run makes before its first stage: they ask the algorithm registry
    ("checks", ("harness.checks",)),
    # a run's identity, its result.json and the index, MLflow tracking
    ("records", ("harness.records",)),
    # the stages a run needs and their keys, from its config alone
    ("planning", ("harness.planning",)),
    ("evaluation", ("harness.eval",)),
    ("reports and sweeps", ("harness.report", "harness.sweep", "hydra_plugins")),
    # what runs a whole run or many: the pipeline, the training processes it starts (each asks the algorithm), the
    # commands (prefetch and verify read what whole runs and sweeps read)
    ("runs and commands", ("harness.pipeline", "harness.train.processes", "harness.__main__", "harness.data.__main__",
                           "harness.data.prefetch", "harness.data.verify", "harness.sweep.__main__",
                           "harness.report.__main__", "harness.compare", "harness.acceptance")),
]


def layer_of(module: str) -> int:
    best, found = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), i
    assert found is not None, f"{module} is in no layer: add it to LAYERS"
    return found


def climbing(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a module to one of a higher layer, as `a (layer) -> b (layer)`."""
    return sorted(f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})"
                  for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))


def test_the_layer_walk_sees_an_import_that_climbs():
    assert climbing({"harness.config.schema": {"harness.algorithms.dpo"}, "harness.algorithms.dpo": {"harness.train.dpo"}}) \
        == ["harness.config.schema (base) -> harness.algorithms.dpo (algorithms)"]
    assert layer_of("harness.data.prefetch") > layer_of("harness.sweep.plan") > layer_of("harness.data.mirror")


def test_no_import_climbs_to_a_higher_layer():
    graph = module_imports()
    assert "harness.records.tracking" in graph and "harness.train.dpo" in graph["harness.algorithms.dpo"]  # reads inside functions
    assert climbing(graph) == []


def test_the_config_layer_and_the_records_know_nothing_above_them():
    graph = module_imports()
    config = {b for a, targets in graph.items() if a.startswith("harness.config") for b in targets}
    assert not {b for b in config if b.startswith(("harness.algorithms", "harness.train", "harness.eval"))}
    records = {b for a, targets in graph.items() if a.startswith("harness.records") for b in targets}
    assert not {b for b in records if b.startswith("harness.report")}
