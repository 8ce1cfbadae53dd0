"""Every config field that can change a number is part of the key of the stage that computes it, and of the run's
identity (issue 27): a field left out of a key lets a run silently reuse a stage computed with another value, a
wrong result that looks cached and correct.

Fields are enumerated from the schema dataclasses themselves (harness/config/schema.py, recursively: generation,
judges, placement, mixture components, the tiny model's spec, free-form options leaf by leaf), so a field added
tomorrow is covered at once: it fails here until a stage key reads it, or its schema's one declaration names it as
changing no number (each with the reason next to it):

    algorithm entries      harness.algorithms.NON_DETERMINING
    reward_model           harness.train.reward_plan.NON_DETERMINING (EXISTING: read only for an existing model)
    dataset, prompts       harness.data.assets.NOT_IDENTITY
    model                  harness.models.NOT_IDENTITY (EVAL_ONLY: read by evaluation, not training)
    eval                   harness.planning.EVAL_NON_DETERMINING (EVAL_SAMPLING: keys the sampled benchmarks
                           only); a benchmark's config is keyed whole
    the run's own fields   harness.records.identity.NON_DETERMINING

Each field is changed in place on a composed config (one probe), the run's stages are planned with the same functions
the pipeline and the sweep planner use (harness.planning), and every stage that reads the field must get a new key (it
is not reused); any change of a stage key must also change the run's identity (records/identity.py), else two runs
computing different numbers would share one run id. Pure config: no model, no ML library.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from harness import algorithms, data, models, planning
from harness.config import schema
from harness.config.compose import compose
from harness.config.errors import ConfigError
from harness.config.groups import options
from harness.data import assets
from harness.records import identity as run_identity
from harness.train import reward_plan

PAPER = ("model=tulu2_13b", "dataset=ultrafeedback_fg", "prompts=uf", "eval=smoke")
# The contexts a field is probed in, and the parts of the config probed there: each is a real composition (what
# `python -m harness <overrides>` runs), chosen so that every schema is read by some stage: every algorithm entry, a
# trained and an existing reward model, every data source (released split, upstream, mixture, local files), the tiny
# model (its own stage), the paper's suite and RewardBench. The PPO run's reward model trains on the run's dataset.
ALL = ("algorithm", "model", "reward_model", "dataset", "prompts", "eval", "run")
CONTEXTS = {f"algorithm={a}": ((*PAPER, f"algorithm={a}", "reward_model=uf_13b"), ("algorithm",))
            for a in options("algorithm")} | {
    "algorithm=dpo": ((*PAPER, "algorithm=dpo"), ALL),
    "algorithm=ppo": ((*PAPER, "algorithm=ppo", "reward_model=uf_13b"), ALL),
    "algorithm=none": ((*PAPER, "algorithm=none"), ("algorithm", "model", "eval")),
    "algorithm=best_of_n": ((*PAPER, "algorithm=best_of_n", "reward_model=uf_13b"), ("algorithm", "model", "reward_model")),
    "ppo, existing reward model": ((*PAPER, "algorithm=ppo", "reward_model=path", "reward_model.path=/models/rm"),
                                   ("reward_model",)),
    "ppo, Table 2": ((*PAPER, "algorithm=ppo", "algorithm.table2=true"), ("reward_model", "dataset")),
    "ppo, prompts from the dataset": ((*PAPER, "algorithm=ppo", "reward_model=uf_13b", "prompts=from_dataset"),
                                      ("dataset", "prompts")),
    "dpo, upstream data": ((*PAPER, "algorithm=dpo", "dataset=shp2", "dataset.source=upstream"), ("dataset",)),
    "dpo, mixture": ((*PAPER, "algorithm=dpo", "dataset=mix", "dataset.source=mixture"), ("dataset",)),
    "tiny model, local files": (("algorithm=ppo", "reward_model=tiny", "eval=smoke"),
                                ("model", "reward_model", "dataset", "prompts")),
    "the paper's suite": (("model=tulu2_13b", "algorithm=none", "eval=paper"), ("eval",)),
    "rewardbench, trained": (("model=tulu2_13b", "algorithm=none", "reward_model=uf_13b", "eval=rewardbench"),
                             ("model", "reward_model", "eval")),
    "rewardbench, existing": (("model=tulu2_13b", "algorithm=none", "reward_model=path", "reward_model.path=/models/rm",
                               "eval=rewardbench"), ("reward_model",)),
}
# An algorithm entry's name and module select which Algorithm runs (harness.algorithms.get): another one is another
# entry, probed as its own context above; they are not values to perturb.
SELECTORS = ("name", "module")
# Values that must name something that exists (an entry, a bundled file) for the run to plan at all.
ENTRY_NAMES = {"reward_model.base_model": "tulu2_7b", "reward_model.dataset": "hh_rlhf", "dataset.mixture.0.dataset": "nectar",
               "dataset.mixture.*": {"dataset": "nectar"}, "scale": "tiny"}


@dataclass
class Probe:
    path: str                  # dotted path of the field in the composed config
    hint: Any                  # its annotation in the schema (Any for free-form values)
    readers: tuple[str, ...]   # the stages that read it (names in `keys_of`): none of them may be reused
    declared: bool             # named by its schema's declaration as changing no number


# --------------------------------------------------------------------------------------------- the stages
def keys_of(cfg) -> dict[str, str]:
    """Every stage key of the run by role (model, reward_model, policy, eval:<benchmark name>), and its identity."""
    out = {}
    for stage in planning.planned_stages(cfg):
        role = f"eval:{stage.spec['benchmark']['name']}" if stage.kind == "eval" else stage.kind
        assert role not in out, f"two {role} stages"
        out[role] = stage.key
    return out | {"run": run_identity.identity(cfg)[0]}


def policy_evals(cfg) -> tuple[str, ...]:
    return tuple(f"eval:{b.name}" for b in cfg.eval.benchmarks.values() if not planning.scores_reward_model(b))


def reward_evals(cfg) -> tuple[str, ...]:
    return tuple(f"eval:{b.name}" for b in cfg.eval.benchmarks.values() if planning.scores_reward_model(b))


# --------------------------------------------------------------------------------------------- the fields
def hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(schema))


def unwrap(hint):
    """X of Optional[X]."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint


def leaves(node, cls, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, annotation) of every field of `cls` under `node`, recursively: nested schemas, maps and lists of
    schemas, and each value of a free-form map (options) too."""
    for f in dataclasses.fields(cls):
        hint, path = unwrap(hints(cls)[f.name]), f"{prefix}{f.name}"
        value = node[f.name]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if dataclasses.is_dataclass(hint) and value is not None:
            yield from leaves(value, hint, path + ".")
        elif origin is dict and dataclasses.is_dataclass(args[1]):
            for key in value:
                yield from leaves(value[key], args[1], f"{path}.{key}.")
        elif origin is list and args and dataclasses.is_dataclass(args[0]):
            yield path, hint
            for i, item in enumerate(value):
                yield from leaves(item, args[0], f"{path}.{i}.")
        else:
            yield path, hint
            if isinstance(value, DictConfig) and origin is dict and args[1] is Any:
                yield from free_form(value, path + ".")


def free_form(node, prefix: str) -> Iterator[tuple[str, Any]]:
    for key in node:
        value = node._get_node(key)
        if isinstance(value, DictConfig):
            yield from free_form(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", Any


# --------------------------------------------------------------------------------------------- which stages read what
def probes(cfg, parts=ALL) -> Iterator[Probe]:
    """Every field of the run's config in `parts`, with the stages that read it (an axis the run does not read has
    none)."""
    plan = keys_of(cfg)
    alg = algorithms.get(cfg.algorithm)
    used = run_identity.axes_used(cfg)
    evals = policy_evals(cfg)
    policy = ("policy",) if alg.trains else ()

    def walk(node, cls, prefix, readers, declared=(), only=None):
        if prefix.split(".")[0] not in parts:
            return
        for path, hint in leaves(node, cls, prefix + "."):
            field = path[len(prefix) + 1:].split(".")[0]
            if only is None or field in only:
                yield Probe(path, hint, readers(field, path) if field not in declared else (), field in declared)

    # the algorithm: its policy stage, or (no training: best-of-N) the evaluations of the policy it wraps
    readers = policy or evals
    yield from walk(cfg.algorithm, OmegaConf.get_type(cfg.algorithm), "algorithm", lambda f, p: readers,
                    algorithms.NON_DETERMINING, only=[f.name for f in dataclasses.fields(OmegaConf.get_type(cfg.algorithm))
                                                     if f.name not in SELECTORS])
    # the model: training (policy) and evaluation; its tiny spec builds the model stage (then path and revision,
    # which load a model instead, are not read); reward-model benchmarks score in its dtype (rewardbench.evaluate)
    def model_readers(f, p):
        if f in ("path", "revision") and cfg.model.tiny is not None:
            return ()
        return ((() if f in models.EVAL_ONLY else policy) + evals + (("model",) if f == "tiny" and "model" in plan else ())
                + (reward_evals(cfg) if f == "dtype" else ()))

    yield from walk(cfg.model, schema.ModelConfig, "model", model_readers, models.NOT_IDENTITY)
    table2 = cfg.algorithm.get("table2", False)
    rm_plan = reward_plan.plan(cfg, table2, load=False) if "reward_model" in used else None
    if rm_plan is not None and rm_plan.trained_here:
        # a trained reward model: its stage (and through its key, every stage that reads the reward model); Table 2
        # trains it on the run's dataset instead of its own
        yield from walk(cfg.reward_model, schema.RewardModelConfig, "reward_model",
                        lambda f, p: () if f == "dataset" and table2 else ("reward_model",),
                        reward_plan.NON_DETERMINING + reward_plan.EXISTING)
    elif rm_plan is not None:
        # an existing one: what names it, read by the policy it trains, the policy it picks for, its own evaluations
        rm_readers = policy + (evals if not alg.trains else ()) + reward_evals(cfg)
        yield from walk(cfg.reward_model, schema.RewardModelConfig, "reward_model", lambda f, p: rm_readers,
                        only=reward_plan.EXISTING)
    # the data: the policy stage when the run's axis reads it; the reward model trained on the run's dataset
    rm_on_dataset = rm_plan is not None and rm_plan.trained_here and rm_plan.dataset is cfg.dataset
    # the policy reads the run's dataset when its algorithm trains on it, or takes its prompts from it
    policy_reads = set(alg.axes_read(cfg.algorithm)) | (
        {"dataset"} if "prompts" in alg.axes_read(cfg.algorithm) and cfg.prompts.source == "from_dataset" else set())
    for axis, cls in (("dataset", schema.DatasetConfig), ("prompts", schema.PromptsConfig)):
        readers_of = lambda f, p, axis=axis: (policy if axis in policy_reads else ()) + (
            # renaming the run's dataset points the reward model at the entry of that name instead (plan)
            ("reward_model",) if axis == "dataset" and rm_on_dataset and f != "name" else ())
        yield from walk(cfg[axis], cls, axis, readers_of, assets.NOT_IDENTITY)
    # the evaluation: its regime (every policy evaluation), each benchmark (its own stage)
    regime = [f.name for f in dataclasses.fields(schema.EvalConfig) if f.name != "benchmarks"]
    sampled = tuple(f"eval:{b.name}" for b in cfg.eval.benchmarks.values() if planning.sampled(b))
    yield from walk(cfg.eval, schema.EvalConfig, "eval", lambda f, p: sampled if f in planning.EVAL_SAMPLING else evals,
                    planning.EVAL_NON_DETERMINING, only=regime)
    for key, bench in cfg.eval.benchmarks.items():
        # a model evaluated in the plain format reads the benchmark's `options.plain` instead of what it overrides
        plain = planning.eval_model(cfg.model)[1] and bench.options.get("plain")
        masked = {f"eval.benchmarks.{key}.{p}" for p, _ in free_form(bench.options.plain, "")} if plain else set()
        yield from walk(bench, schema.BenchmarkConfig, f"eval.benchmarks.{key}",
                        lambda f, p, b=bench: () if p in masked else (f"eval:{b.name}",))
    # the run's own fields (seed): its policy stage
    for f in dataclasses.fields(schema.Config) if "run" in parts else ():
        if not dataclasses.is_dataclass(unwrap(hints(schema.Config)[f.name])) and f.name != "algorithm":
            declared = f.name in run_identity.NON_DETERMINING
            yield Probe(f.name, hints(schema.Config)[f.name], () if declared else policy, declared)


# --------------------------------------------------------------------------------------------- probing
def changed(value, hint, path: str, node) -> Any:
    """Another valid value for a field: the next number, the other boolean, a suffixed string, one more item."""
    if path in ENTRY_NAMES:
        return ENTRY_NAMES[path]
    hint = unwrap(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(value, bool) or hint is bool:
        return not value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value + (1 if isinstance(value, int) and hint is not float else 0.5)
    if isinstance(value, str):
        return f"{value}_probe"
    if value is None:
        if dataclasses.is_dataclass(hint):
            return hint()
        return {int: 1, float: 0.5, str: "probe", bool: True}.get(hint) or ({"probe": "probe"} if origin is dict else ["probe"])
    if isinstance(value, (list, ListConfig)):
        if len(value):
            return [*value, copy.deepcopy(value[0])]
        return [args[0](**ENTRY_NAMES.get(path + ".*", {})) if args and dataclasses.is_dataclass(args[0]) else "probe"]
    if isinstance(value, (dict, DictConfig)):
        # a map of local files must name files that exist: repeat one of its own
        existing = next(iter(OmegaConf.to_container(value).values()), "probe")
        return {**OmegaConf.to_container(value), "probe": existing if args and args[1] is str else 1}
    raise AssertionError(f"no probe value for {path} = {value!r} ({hint})")


def probe(cfg, p: Probe) -> dict[str, str]:
    """The run's keys with one field changed (restored afterwards)."""
    parent, _, key = p.path.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    key = int(key) if isinstance(node, ListConfig) else key
    saved = copy.deepcopy(node._get_node(key))  # as it is: typed, an interpolation (${...}) unresolved
    node[key] = changed(node[key], p.hint, p.path, node)
    try:
        return keys_of(cfg)
    except ConfigError:  # a value the run refuses (e.g. PPO's Table 2 switch off without a reward model) reuses nothing
        return {}
    finally:
        node[key] = saved


def unkeyed(cfg, parts=ALL) -> list[str]:
    """Fields of `cfg` (in `parts`) some reader of which would be reused with another value, or that change a stage's
    key but not the run's identity."""
    before = keys_of(cfg)
    wrong = []
    for p in probes(cfg, parts):
        after = probe(cfg, p)
        if not after:
            continue
        reused = [r for r in p.readers if after.get(r) == before[r]]
        if reused:
            wrong.append(f"{p.path} (reused: {', '.join(reused)})")
        stages_moved = {k: v for k, v in after.items() if k != "run"} != {k: v for k, v in before.items() if k != "run"}
        if stages_moved and after["run"] == before["run"]:
            wrong.append(f"{p.path} (changes a stage, not the run identity)")
    assert keys_of(cfg) == before, "a probe was not undone"
    return wrong


def composed(context: str) -> list[DictConfig]:
    """The context's config, resolved (so a probe costs no interpolation); a suite is split into one config per
    benchmark (each probed on its own: the same keys, a fraction of the time)."""
    cfg = compose(list(CONTEXTS[context][0]))
    OmegaConf.resolve(cfg)
    if len(cfg.eval.benchmarks) == 1:
        return [cfg]
    out = []
    for key in cfg.eval.benchmarks:
        one = copy.deepcopy(cfg)
        one.eval.benchmarks = {key: cfg.eval.benchmarks[key]}
        out.append(one)
    return out


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_field_that_can_change_a_number_is_in_its_stage_key(context):
    assert [f for cfg in composed(context) for f in unkeyed(cfg, CONTEXTS[context][1])] == []


# Three fields the mutation pass of tests-2.md dropped from their keys with every test passing: dropping each again
# (by patching the key function the pipeline and the planner call) makes the property above fail on exactly it.
def without_loss_type(recipe):
    return lambda alg: {k: v for k, v in recipe(alg).items() if k != "loss_type"}


def without_rm_max_length(stage_spec):
    return lambda p, base: (s := stage_spec(p, base)) | {"recipe": {k: v for k, v in s["recipe"].items() if k != "max_length"}}


def without_seed(identity):
    return lambda cfg: {k: v for k, v in identity(cfg).items() if k != "seed"}


@pytest.mark.parametrize("module, name, drop, context, expected", [
    (algorithms, "recipe", without_loss_type, "algorithm=dpo", ["algorithm.loss_type (reused: policy)"]),
    (reward_plan, "stage_spec", without_rm_max_length, "algorithm=ppo", ["reward_model.max_length (reused: reward_model)"]),
    (data, "identity", without_seed, "algorithm=dpo", ["dataset.seed (reused: policy)"]),
])
def test_a_determining_field_dropped_from_its_key_is_found(monkeypatch, module, name, drop, context, expected):
    cfg, = composed(context)
    part = expected[0].split(".")[0]
    assert unkeyed(cfg, (part,)) == []
    monkeypatch.setattr(module, name, drop(getattr(module, name)))
    assert unkeyed(cfg, (part,)) == expected


def test_an_untuned_model_s_benchmarks_are_keyed_as_the_suite_runs_them():
    """An untuned model is evaluated in open-instruct's plain format: its benchmarks run with `options.plain` merged
    in (GSM8k: "Answer:" and a stop at the newline), so their stages are planned with it too (planning.as_evaluated,
    which the suite calls): the sweep planner then names the stages a run makes, and a chat model never shares them."""
    def gsm8k(model):
        cfg = compose([f"model={model}", "algorithm=none", "eval=paper"])
        return next(s.spec["benchmark"] for s in planning.planned_stages(cfg) if s.kind == "eval"
                    and s.spec["benchmark"]["name"] == cfg.eval.benchmarks.gsm8k.name)

    plain, chat = gsm8k("llama2_13b"), gsm8k("tulu2_13b")
    assert (plain["options"]["gen_prefix"], plain["generation"]["stop"]) == ("\nAnswer:", ["\n"])
    assert (chat["options"]["gen_prefix"], chat["generation"]["stop"]) != ("\nAnswer:", ["\n"])


def test_every_declared_field_exists():
    """A declaration naming a field no schema has (a typo, a renamed field) declares nothing."""
    algorithm_fields = {f.name for cls in (schema.DPOConfig, schema.PPOConfig, schema.GRPOConfig, schema.BestOfNConfig)
                        for f in dataclasses.fields(cls)}
    for declared, cls_fields in [
        (algorithms.NON_DETERMINING, algorithm_fields),
        (reward_plan.NON_DETERMINING + reward_plan.EXISTING, {f.name for f in dataclasses.fields(schema.RewardModelConfig)}),
        (assets.NOT_IDENTITY, {f.name for c in (schema.DatasetConfig, schema.PromptsConfig) for f in dataclasses.fields(c)}),
        (models.NOT_IDENTITY + models.EVAL_ONLY, {f.name for f in dataclasses.fields(schema.ModelConfig)}),
        (planning.EVAL_NON_DETERMINING + planning.EVAL_SAMPLING, {f.name for f in dataclasses.fields(schema.EvalConfig)}),
        (run_identity.NON_DETERMINING, {f.name for f in dataclasses.fields(schema.Config)}),
    ]:
        assert set(declared) <= cls_fields, set(declared) - cls_fields
