"""Every real config entry is bound to its typed schema; typos in a real entry's YAML and unknown options fail at
compose time; the recipes are the paper's.

Not tested here: that Hydra refuses `group.key=1` for a key the config lacks (it does so for any config, typed or not),
or that OmegaConf refuses unknown keys of a dataclass (it does so for any dataclass).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import typing

import pytest
import yaml
from hydra import compose as hydra_compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from conftest import CONF, compose
from harness.config import schema as s

# Hand-written: the schema class each real entry must be bound to (conf/<group>/<entry>.yaml).
GROUP_SCHEMA = {"model": s.ModelConfig, "dataset": s.DatasetConfig, "reward_model": s.RewardModelConfig,
                "prompts": s.PromptsConfig, "eval": s.EvalConfig, "tracking": s.TrackingConfig}
ALGORITHM_SCHEMA = {"none": s.NoTrainingConfig, "dpo": s.DPOConfig, "ipo": s.DPOConfig, "ppo": s.PPOConfig,
                    "grpo": s.GRPOConfig, "best_of_n": s.BestOfNConfig}


def entries(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def fast(group: str) -> list[str]:
    """The one-benchmark suite unless the eval group is under test: composing all 11 benchmarks takes seconds."""
    return [] if group in ("eval", "benchmark") else ["eval=smoke"]


def expected_schema(group: str, option: str) -> type:
    return ALGORITHM_SCHEMA[option] if group == "algorithm" else GROUP_SCHEMA[group]


def assert_bound(node, cls: type, where: str) -> None:
    """`node` is typed as `cls`, and so is every nested dataclass-typed field (tiny spec, generation, judges)."""
    assert OmegaConf.get_type(node) is cls, (where, OmegaConf.get_type(node), cls)
    for name, hint in typing.get_type_hints(cls).items():
        value = node[name] if name in node else None
        if value is None:
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if dataclasses.is_dataclass(hint):
            assert_bound(value, hint, f"{where}.{name}")
        elif typing.get_origin(hint) is typing.Union and len(args) == 1 and dataclasses.is_dataclass(args[0]):
            assert_bound(value, args[0], f"{where}.{name}")
        elif typing.get_origin(hint) is dict and dataclasses.is_dataclass(args[-1]):
            for key in value:
                assert_bound(value[key], args[-1], f"{where}.{name}.{key}")


def test_the_expected_schemas_cover_every_entry():
    assert set(entries("algorithm")) == set(ALGORITHM_SCHEMA)  # a new algorithm entry needs its expectation here
    for group in GROUP_SCHEMA:
        assert entries(group), group


def test_every_real_entry_is_bound_to_its_schema_class():
    benchmarks_seen = set()
    for group in (*GROUP_SCHEMA, "algorithm"):
        for option in entries(group):
            cfg = compose(f"{group}={option}", *fast(group))
            assert_bound(cfg[group], expected_schema(group, option), f"{group}={option}")
            if group == "eval":
                benchmarks_seen |= {b.name for b in cfg.eval.benchmarks.values()}
    # every benchmark entry is used by some suite, so the loop above bound each one to BenchmarkConfig
    assert {yaml.safe_load((CONF / "eval" / "benchmark" / f"{b}.yaml").read_text())["name"]
            for b in entries("eval/benchmark")} <= benchmarks_seen


# ------------------------------------------------------------------------------------------ a typo in a real YAML entry
def misspell(key: str) -> str:
    return key + key[-1]  # "beta" -> "betaa"


def suite_of(benchmark: str) -> str:
    """An eval suite whose defaults list includes conf/eval/benchmark/<benchmark>.yaml."""
    return next(e for e in entries("eval")
                if re.search(rf"benchmark@benchmarks\.\w+: {benchmark}\s*$", (CONF / "eval" / f"{e}.yaml").read_text(), re.M))


def specialisation_overrides(group: str, option: str) -> list[str]:
    """algorithm_model/<alg>_<model>, algorithm_rm/<alg>_<rm>: the overrides that select the entry."""
    alg = next(a for a in sorted(ALGORITHM_SCHEMA, key=len, reverse=True) if option.startswith(a + "_"))
    other = "model" if group == "algorithm_model" else "reward_model"
    return [f"algorithm={alg}", f"{other}={option[len(alg) + 1:]}"]


def cases() -> list[tuple[str, str, list[str]]]:
    """(file under conf/, package it is merged at, overrides that compose it) for every real entry."""
    out = [(f"{g}/{o}.yaml", g, [f"{g}={o}", *fast(g)]) for g in (*GROUP_SCHEMA, "algorithm") for o in entries(g)]
    out += [(f"eval/benchmark/{b}.yaml", "benchmark", [f"eval={suite_of(b)}"]) for b in entries("eval/benchmark")]
    out += [(f"{g}/{o}.yaml", "_global_", [*specialisation_overrides(g, o), "eval=smoke"])
            for g in ("algorithm_model", "algorithm_rm") for o in entries(g)]
    return out


def with_typo(text: str, package: str) -> tuple[str, str]:
    """The entry's YAML with one of its own keys misspelt (added beside it), and that misspelt key."""
    body = {k: v for k, v in (yaml.safe_load(text) or {}).items() if k != "defaults"}
    if package == "_global_":  # `algorithm: {key: value}` merged at the root: misspell a key under `algorithm`
        if "algorithm" not in body:  # only includes another specialisation (ipo_tiny: dpo_tiny's sizes)
            return text.rstrip("\n") + "\nalgorithm:\n  betaa: 1\n", "betaa"
        typo = misspell(next(iter(body["algorithm"])))
        return re.sub(r"^algorithm:\s*$", f"algorithm:\n  {typo}: 1", text, count=1, flags=re.M), typo
    key = next(iter(body), None) or "name"
    return text.rstrip("\n") + f"\n{misspell(key)}: 1\n", misspell(key)


def test_a_misspelt_key_in_any_real_entry_fails_to_compose(tmp_path):
    conf = shutil.copytree(CONF, tmp_path / "conf", symlinks=True)
    accepted = []
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for rel, package, overrides in cases():
            original = (conf / rel).read_text()
            text, typo = with_typo(original, package)
            (conf / rel).write_text(text)
            try:
                hydra_compose("config", overrides=overrides)
                accepted.append((rel, typo))
            except ConfigCompositionException as err:
                assert typo in str(err.__cause__ or err) or typo in str(err), (rel, typo, err)
            finally:
                (conf / rel).write_text(original)
    assert accepted == []
    assert len(cases()) > 60  # every group, benchmark and specialisation entry was tried


# ------------------------------------------------------------------------------------------ values and options
def test_dpo_defaults_are_the_papers_recipe():
    alg = compose("model=tulu2_13b").algorithm  # no tiny specialisation
    assert (alg.beta, alg.learning_rate, alg.epochs, alg.effective_batch_size, alg.max_length) == (0.1, 5e-7, 3, 32, 4096)
    assert (alg.warmup_ratio, alg.lr_scheduler, alg.adam_beta2, alg.weight_decay) == (0.1, "linear", 0.95, 0.0)


def test_tiny_model_specialisation_only_applies_to_tiny():
    assert compose().algorithm.max_length == 256
    assert compose("model=tulu2_7b").algorithm.max_length == 4096


def test_paths_are_absolute_and_mlflow_store_is_under_results(tmp_path):
    cfg = compose(f"paths.home={tmp_path}")
    assert cfg.paths.results == f"{tmp_path}/results"
    assert cfg.tracking.uri == f"sqlite:///{tmp_path}/results/mlflow.db"
