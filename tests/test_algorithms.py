"""The algorithm registry (harness.algorithms): the pipeline knows algorithms only through it, a new algorithm is one
module plus one config, and the package's import graph has no cycles."""

from __future__ import annotations

import ast
import textwrap

import pytest

from conftest import ROOT, compose
from import_graph import cycles, module_imports
from harness import algorithms
from harness.config.errors import ConfigError
from harness.pipeline import axes_of, run

def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_import_graph_has_no_cycles():
    graph = module_imports()
    assert "harness.pipeline" in graph and "harness.algorithms.dpo" in graph["harness.algorithms.ipo"]
    assert cycles(graph) == []


def compared_names(source: str, names: set[str]) -> list[str]:
    """Algorithm names that `source` compares with (==, in, match) or keys a mapping by."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
        elif isinstance(node, ast.Dict):
            sides = [k for k in node.keys if k is not None]
        elif isinstance(node, ast.match_case):
            sides = [node.pattern]
        else:
            continue
        out += [n.value for side in sides for n in ast.walk(side)
                if isinstance(n, (ast.Constant, ast.MatchValue)) and getattr(n, "value", None) in names]
    return out


def test_the_pipeline_never_branches_on_an_algorithm_name():
    # "none" is every axis's empty entry (reward_model=none ...), not a branch on an algorithm
    names = {p.stem for p in (ROOT / "conf" / "algorithm").glob("*.yaml")} - {"none"}
    assert compared_names('if cfg.algorithm.name in ("dpo", "x"): pass', names) == ["dpo"]  # the check can see one
    for module in ("pipeline.py", "checks.py", "train/processes.py"):
        assert compared_names((ROOT / "harness" / module).read_text(), names) == [], module


def test_every_algorithm_entry_has_its_module():
    for path in sorted((ROOT / "conf" / "algorithm").glob("*.yaml")):
        alg = compose(f"algorithm={path.stem}").algorithm
        assert algorithms.get(alg).name == alg.name == path.stem


def test_an_unknown_algorithm_names_the_module_to_add():
    alg = compose("algorithm=dpo", "algorithm.name=slic").algorithm
    with pytest.raises(ConfigError, match="algorithm.name='slic' has no module 'harness.algorithms.slic'"):
        algorithms.get(alg)


# One module and one config, both outside the package: a pairwise hinge loss (SLiC, Zhao et al. 2023) through TRL's
# DPO loss types, registered by nothing but `module:` in its config.
PLUGIN = '''
from harness.algorithms.dpo import DPO


class Hinge(DPO):
    name = "hinge"
    axes = ("model", "dataset", "algorithm")


ALGORITHM = Hinge()
'''
PLUGIN_CONFIG = '''
defaults:
  - /schema/algorithm/dpo@_here_
  - _self_
name: hinge
module: hinge_plugin
loss_type: hinge
beta: 0.1
learning_rate: 5.0e-3
epochs: 1
effective_batch_size: 16
per_device_batch_size: 8
max_length: 256
activation_checkpointing: false
'''


@pytest.mark.slow
def test_a_new_algorithm_is_one_module_and_one_config(tmp_path, monkeypatch, home, shared_stages):
    (tmp_path / "hinge_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "conf" / "algorithm").mkdir(parents=True)
    (tmp_path / "conf" / "algorithm" / "hinge.yaml").write_text(PLUGIN_CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = compose(f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "algorithm=hinge", "eval=smoke", "tracking=none",
                  f"paths.home={home}", f"paths.stages={shared_stages}")
    result = run(cfg)
    assert axes_of(cfg)["algorithm"] == "hinge"
    training = result["training"]
    assert training["global_step"] > 0 and not result["stages"]["policy"]["reused"]
    assert training["heldout_after_rewards/margins"] > training["heldout_before_rewards/margins"]
    assert "score" in result["benchmarks"]["gsm8k"]  # evaluated: the trained policy went through the suite


@pytest.mark.slow
def test_ipo_trains_with_its_own_loss_and_moves_the_margin(run_config):
    result = run(run_config("algorithm=ipo", "eval=smoke", "tracking=none"))
    assert result["axes"]["algorithm"] == "ipo" and result["config"]["algorithm"]["loss_type"] == "ipo"
    training = result["training"]
    assert training["heldout_after_rewards/margins"] > training["heldout_before_rewards/margins"]
    # (that another loss is another policy stage: tests/test_key_completeness.py, every recipe field in its key)


def test_ipo_loss_is_the_squared_distance_of_the_margin_from_its_target(random_tiny, tmp_path):
    """The trainer algorithm=ipo builds computes, on one batch, mean((m - 1/(2 beta))^2), where m is the per-token mean
    log-ratio (policy over reference) of the chosen side's last message minus the rejected side's (TRL's IPO, length
    normalised; Azar et al. 2023 Eq. 17), the log-probs taken here from plain forward passes of both models. DPO's
    sigmoid loss would give -log sigmoid(beta x summed margin) instead."""
    import torch

    from harness import data
    from harness.train import dpo

    base, _ = random_tiny
    cfg = compose("algorithm=ipo", "algorithm.precompute_ref_log_probs=false")
    pairs = data.load_preferences(cfg.dataset).select(range(3))
    trainer, _ = dpo.build(cfg.algorithm, base, cfg.model, pairs, None, tmp_path, "none", "ipo-loss", cfg.seed)
    with torch.no_grad():  # move the policy off the reference, so that the margins are not 0
        torch.manual_seed(0)
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    loss = trainer.compute_loss(trainer.model, batch)

    def mean_logprob(model) -> torch.Tensor:  # per sequence: mean log-prob of its completion tokens
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
        mask = batch["completion_mask"][:, 1:].float()
        return (logp * mask).sum(1) / mask.sum(1)

    ratio = mean_logprob(trainer.model) - mean_logprob(trainer.ref_model)
    chosen, rejected = ratio.chunk(2)
    margin = chosen - rejected
    beta = cfg.algorithm.beta
    assert margin.abs().min() > 1e-3
    assert float(loss.detach()) == pytest.approx(float(((margin - 1 / (2 * beta)) ** 2).mean()), rel=1e-4)


def test_ipo_refuses_another_loss_type(run_config):
    with pytest.raises(ConfigError, match="algorithm=ipo trains with TRL's loss_type 'ipo'"):
        run(run_config("algorithm=ipo", "algorithm.loss_type=sigmoid", "tracking=none"))
