"""Every config entry composes against its typed schema; typos and unknown options fail at compose time."""

from __future__ import annotations

import dataclasses

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

from conftest import CONF, compose
from harness.config import schema

GROUPS = ["model", "dataset", "algorithm", "reward_model", "prompts", "eval", "tracking"]


def entries(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in entries(g)])
def test_every_option_composes_and_rejects_unknown_keys(group, option):
    cfg = compose(f"{group}={option}")
    assert cfg[group] is not None
    # the composed node is typed: a misspelt key fails instead of being silently ignored
    with pytest.raises(ConfigCompositionException, match="not_a_field"):
        compose(f"{group}={option}", f"{group}.not_a_field=1")


def test_a_yaml_entry_with_a_misspelt_key_fails_to_compose(tmp_path):
    import shutil

    from hydra import compose as hydra_compose, initialize_config_dir

    conf = shutil.copytree(CONF, tmp_path / "conf", symlinks=True)
    (conf / "algorithm" / "dpo_typo.yaml").write_text("defaults:\n  - /schema/algorithm/dpo@_here_\n  - _self_\nbetta: 0.2\n")
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        with pytest.raises(ConfigCompositionException) as err:
            hydra_compose("config", overrides=["algorithm=dpo_typo"])
    assert "betta" in str(err.value.__cause__ or err.value)


@pytest.mark.parametrize("node", [n for n in vars(schema).values()
                                  if dataclasses.is_dataclass(n) and isinstance(n, type)])
def test_every_schema_rejects_unknown_key(node):
    with pytest.raises(ConfigKeyError, match="not_a_field"):
        OmegaConf.merge(OmegaConf.structured(node), {"not_a_field": 1})


def test_mistyped_value_fails_at_compose_time():
    with pytest.raises(ConfigCompositionException, match="effective_batch_size"):
        compose("algorithm.effective_batch_size=thirty-two")


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(MissingConfigException) as err:
        compose("dataset=no_such_dataset")
    assert "no_such_dataset" in str(err.value) and "tiny" in str(err.value)


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


def test_hydra_job_name_is_harness():
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", return_hydra_config=True)
    assert cfg.hydra.job.name == "harness"
