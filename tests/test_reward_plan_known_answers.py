"""Which reward model a run uses and what its stage key is made of (harness/train/reward_plan.py), answered from
configs alone: an existing reward model or one to train, its base model and data by entry, Table 2's switch, the
recipe keyed, and how a policy stage names it. No model is built."""

from __future__ import annotations

import re

import pytest

from conftest import compose
from harness import data, models
from harness.config.errors import ConfigError
from harness.config.groups import entry
from harness.models import ModelRef
from harness.train import reward_plan
from harness.train.reward_plan import RewardModel, RewardModelPlan

PAPER = ("model=tulu2_13b", "dataset=ultrafeedback_fg", "algorithm=ppo", "prompts=uf", "eval=smoke")


def test_an_existing_reward_model_is_not_trained_here():
    cfg = compose(*PAPER, "reward_model=path", "reward_model.path=/models/rm")
    p = reward_plan.plan(cfg, load=False)
    assert p.cfg.path == "/models/rm" and not p.trained_here
    assert (p.model, p.dataset, p.train, p.heldout) == (None, None, None, None)


def test_a_trained_reward_models_base_model_and_data_by_entry():
    # uf_13b on a 7B run: its own base model (tulu2_13b) and data (ultrafeedback_fg, the run's: the run's entry)
    cfg = compose(*PAPER[1:], "model=tulu2_7b", "reward_model=uf_13b")
    p = reward_plan.plan(cfg, load=False)
    assert p.trained_here and (p.train, p.heldout) == (None, None)
    assert p.model == entry("model", "tulu2_13b") and p.model.name == "tulu2_13b"
    assert p.dataset is cfg.dataset or p.dataset == cfg.dataset
    # on the 13B run the base model is the run's own model entry
    same = compose(*PAPER, "reward_model=uf_13b")
    assert reward_plan.plan(same, load=False).model == same.model
    # another dataset than the run's: its entry at the run's scale
    other = compose(*PAPER, "reward_model=uf_13b", "reward_model.dataset=helpsteer")
    assert reward_plan.plan(other, load=False).dataset == entry("dataset", "helpsteer")
    # no base model named: the run's model
    bare = compose(*PAPER, "reward_model=uf_13b", "reward_model.base_model=null", "model=tulu2_7b")
    assert reward_plan.plan(bare, load=False).model == bare.model
    # Table 2: trained on the run's dataset whatever the entry names; without Table 2 an entry needs data or a path
    table2 = compose(*PAPER, "reward_model=none", "dataset=helpsteer")
    assert reward_plan.plan(table2, table2=True, load=False).dataset == table2.dataset
    with pytest.raises(ConfigError, match=re.escape(
            "reward_model=none sets neither `path` (an existing reward model) nor `dataset` (its training data); set "
            "one, e.g. reward_model.dataset=ultrafeedback_fg")):
        reward_plan.plan(table2, load=False)


def test_loading_reads_the_train_and_heldout_splits():
    cfg = compose("model=tiny", "dataset=tiny", "algorithm=ppo", "reward_model=tiny", "prompts=uf", "eval=smoke")
    p = reward_plan.plan(cfg)
    assert p.dataset.name == "tiny" and p.model.name == "tiny" and p.cfg == cfg.reward_model and p.trained_here
    train = data.load_preferences(cfg.dataset)
    heldout = data.load_preferences(cfg.dataset, split="test")
    assert len(p.train) == len(train) > 0 and len(p.heldout) == len(heldout) > 0 and len(train) != len(heldout)
    assert p.train[0] == train[0] and p.heldout[0] == heldout[0]
    # a dataset without a held-out split: none read
    none = compose("model=tiny", "dataset=tiny", "dataset.eval_split=null", "algorithm=ppo", "reward_model=tiny",
                   "prompts=uf", "eval=smoke")
    assert reward_plan.plan(none).heldout is None


def test_the_recipe_keyed_is_every_field_but_the_declared_ones_resolved():
    rm = compose(*PAPER, "reward_model=uf_13b", "reward_model.label=${reward_model.name}").reward_model
    assert reward_plan.recipe(rm) == {
        "learning_rate": 1e-05, "final_learning_rate": 1e-06, "lr_scheduler": "polynomial", "warmup_ratio": 0.03,
        "epochs": 1.0, "max_steps": -1, "effective_batch_size": 512, "max_length": 4096, "adam_beta1": 0.9,
        "adam_beta2": 0.95, "weight_decay": 0.0, "max_grad_norm": 1.0, "seed": 42}
    rm.learning_rate = "${reward_model.final_learning_rate}"  # resolved, not the interpolation's text
    assert reward_plan.recipe(rm)["learning_rate"] == 1e-06


def test_the_stage_spec_and_how_a_policy_names_its_reward_model():
    cfg = compose(*PAPER, "reward_model=uf_13b")
    p = reward_plan.plan(cfg, load=False)
    spec = reward_plan.stage_spec(p, ModelRef("/base", "rev1"))
    assert spec == {"base": {"path": "/base", "revision": "rev1"}, "model": models.identity(p.model),
                    "data": data.identity(p.dataset), "recipe": reward_plan.recipe(p.cfg), "sequences_end": "eos",
                    "encoding": "easylm-strip"}
    assert reward_plan.stage_spec(p, ModelRef("/base", "rev1", key="abc"))["base"] == "abc"
    assert RewardModel(ModelRef("/rm", "r2", key="k1"), "tulu", {}).identity == {"stage": "k1"}
    assert RewardModel(ModelRef("/rm", "r2"), "tulu", {}).identity == {"path": "/rm", "revision": "r2",
                                                                       "chat_template": "tulu"}
    assert RewardModelPlan(cfg.reward_model).trained_here


def test_its_data_is_read_from_the_runs_mirror_and_its_entry_at_the_runs_scale(tmp_path):
    from test_data_support import FIXTURES, mirror_rows

    from harness.data.preferences import hub_sources

    cfg = compose(*PAPER, "dataset=hh_rlhf", "dataset.max_bad_fraction=0.5", "reward_model=uf_13b",
                  "reward_model.dataset=hh_rlhf", f"paths.mirror={tmp_path}")
    mirror_rows(tmp_path, hub_sources(cfg.dataset)[0], FIXTURES / "tulu25" / "hh_rlhf.jsonl")
    assert len(reward_plan.plan(cfg).train) == 6  # tests/test_data_loading.py's hand count of the fixture
    # its held-out split read from the mirror too (here the same split, as held-out)
    assert len(reward_plan.plan(compose(*PAPER, "dataset=hh_rlhf", "dataset.max_bad_fraction=0.5",
                                        "dataset.eval_split=train", "reward_model=uf_13b", "reward_model.dataset=hh_rlhf",
                                        f"paths.mirror={tmp_path}")).heldout) == 6
    # at the tiny scale another dataset than the run's is that entry's tiny stand-in
    tiny = compose("scale=tiny", "dataset=helpsteer", "algorithm=ppo", "reward_model=uf_13b", "prompts=uf",
                   "eval=smoke")
    p = reward_plan.plan(tiny, load=False)
    assert p.dataset == entry("dataset", "ultrafeedback_fg", "tiny") != entry("dataset", "ultrafeedback_fg")
