"""The algorithm registry's own answers (harness/algorithms/__init__.py), without training: what an algorithm entry's
recipe (its part of the policy stage's key) is, which module `get` picks and the error it gives for each way a
module can be missing, and the base Algorithm's "no training" hooks."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from harness import algorithms
from harness.algorithms import Algorithm, TrainingData
from harness.config.errors import ConfigError


def test_recipe_keeps_every_determining_value_resolved_and_drops_the_declared_ones():
    alg = OmegaConf.create({"name": "dpo", "beta": 0.1, "learning_rate": 5e-7, "final": "${learning_rate}",
                            "logging_steps": 1, "save_steps": 50, "per_device_batch_size": 2,
                            "activation_checkpointing": True, "score_batch_size": 8, "precompute_ref_log_probs": True,
                            "eval_every": 10, "curve_suite": "tiny", "vllm_gpu_memory_utilization": 0.4,
                            "vllm_sleep": True})
    assert algorithms.recipe(alg) == {"name": "dpo", "beta": 0.1, "learning_rate": 5e-7, "final": 5e-7}


def write_module(tmp_path, monkeypatch, name: str, source: str) -> str:
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_get_finds_the_module_by_name_or_by_module_and_names_each_missing_piece(tmp_path, monkeypatch):
    from harness.algorithms.dpo import ALGORITHM as DPO
    from harness.algorithms.ipo import ALGORITHM as IPO

    assert algorithms.get(OmegaConf.create({"name": "dpo"})) is DPO
    assert algorithms.get(OmegaConf.create({"name": "dpo", "module": None})) is DPO
    # `module` wins over the name
    assert algorithms.get(OmegaConf.create({"name": "dpo", "module": "harness.algorithms.ipo"})) is IPO
    with pytest.raises(ConfigError, match=re.escape(
            "algorithm.name='slic' has no module 'harness.algorithms.slic': add harness/algorithms/slic.py defining "
            "ALGORITHM, or set algorithm.module=<importable module>")):
        algorithms.get(OmegaConf.create({"name": "slic"}))
    with pytest.raises(ConfigError, match=re.escape("algorithm.name='slic' has no module 'my_slic_module': ")):
        algorithms.get(OmegaConf.create({"name": "slic", "module": "my_slic_module"}))
    # a module that exists but fails on an import of its own: that error, not "no module"
    broken = write_module(tmp_path, monkeypatch, "broken_algorithm", "import no_such_package_for_a_test\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_package_for_a_test") as raised:
        algorithms.get(OmegaConf.create({"name": "broken", "module": broken}))
    assert not isinstance(raised.value, ConfigError)
    # a module without ALGORITHM, or with one that is not an Algorithm
    for name, source in (("bare_algorithm", "X = 1\n"), ("odd_algorithm", "ALGORITHM = object()\n")):
        module = write_module(tmp_path, monkeypatch, name, source)
        with pytest.raises(ConfigError, match=re.escape(
                f"module {module!r} (algorithm=odd) defines no ALGORITHM = <Algorithm instance>")):
            algorithms.get(OmegaConf.create({"name": "odd", "module": module}))
    plugin = write_module(tmp_path, monkeypatch, "good_algorithm",
                          "from harness.algorithms import Algorithm\n\nclass Good(Algorithm):\n    name = 'good'\n\n"
                          "ALGORITHM = Good()\n")
    assert algorithms.get(OmegaConf.create({"name": "good", "module": plugin})).name == "good"


def test_the_base_algorithm_trains_nothing_and_changes_nothing():
    class Plain(Algorithm):
        name = "plain"

    plain, cfg, rm = Plain(), OmegaConf.create({"x": 1}), object()
    assert Plain.trains is False and plain.axes_read(cfg) == ("model", "algorithm")
    assert plain.uses_reward_model(cfg) is False and plain.check(cfg) is None
    inputs = plain.load_inputs(cfg, rm)
    assert inputs.reward_model is rm and inputs.train is None and inputs.heldout is None and inputs.extra == {}
    assert plain.fit_inputs(cfg, inputs, object()) is inputs
    with pytest.raises(ConfigError, match="^algorithm=plain trains no policy$"):
        plain.train(cfg, None, inputs, None, rm, "none", "run", lambda m, s: None)
    assert plain.wrap_policy(cfg, rm) is None and plain.policy_identity(cfg, rm) == {}
    # each TrainingData has its own `extra`
    assert TrainingData().extra is not TrainingData().extra
