"""The memory plan's element counts against what PPO really holds per process (tests/memory_worker.py: 2 CPU processes
on gloo, one iteration under each of none, fsdp and fsdp_offload with pinning off, two micro-batches per process):
parameters, gradients, optimiser states, gathered weights and the KV cache, each within 10% of
harness.sweep.memory.components, on the side (device or host memory) the plan puts it. Bytes follow from the element
counts by dtype; the bytes on a GPU are checked by `python -m harness.acceptance`.

The models: a 6-layer Llama of the tiny model's tokenizer (hidden 64, 2 KV heads of 16: grouped-query attention; tied
embeddings), so that the gathered layers (the roots and two decoder layers) are a fraction of a model, not all of it."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from conftest import torchrun_two
from harness.sweep import memory

pytestmark = pytest.mark.slow

SHARDINGS = ("none", "fsdp", "fsdp_offload")
# as tests/memory_worker.py composes PPO: 4 sequences generated at once
GENERATED_AT_ONCE = 4


@pytest.fixture(scope="module")
def models(tiny_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("memory-models")
    tok = AutoTokenizer.from_pretrained(tiny_base.path)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=6,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         tie_word_embeddings=True)
    classifier = LlamaConfig.from_dict(config.to_dict())
    classifier.num_labels = 1
    shapes = {}
    for name, model in (("base", LlamaForCausalLM(config)), ("reward_model", LlamaForSequenceClassification(classifier))):
        model.save_pretrained(out / name)
        tok.save_pretrained(out / name)
        shapes[name] = memory.Shape.of(model)
    return out, shapes


@pytest.fixture(scope="module")
def measured(models):
    out, _ = models
    torchrun_two("memory_worker.py", str(out / "base"), str(out / "reward_model"), str(out / "run"))
    return [json.loads((out / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_the_shapes_are_what_the_plan_assumes_of_a_model(models):
    _, shapes = models
    policy, rm = shapes["base"], shapes["reward_model"]
    # counted by hand: embeddings V x 64 (the head tied to them), per layer q, o 64 x 64, k, v 64 x 32, MLP 3 x 64 x 128,
    # 2 norms; a final norm; the classifier adds a 64-wide score head
    v, layer = policy.vocab, 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64
    assert v > 500 and policy.kv_width == 32 and policy.tied and not policy.scalar_head
    assert policy.params == v * 64 + 6 * layer + 64 and policy.root == v * 64 + 64 and policy.layer == layer
    assert rm == policy.classifier() and rm.params == policy.params + 64 and rm.root == v * 64 + 64 + 64


@pytest.mark.parametrize("sharding", SHARDINGS)
def test_what_each_process_holds_is_the_plans_count(models, measured, sharding):
    _, shapes = models
    policy, rm = shapes["base"], shapes["reward_model"]
    # PPO: policy and value (from the reward model) trained, reference and reward model frozen
    work = memory.Workload((policy, rm), (policy, rm), generation=(policy, GENERATED_AT_ONCE, 100))
    plan = {c.name: c for c in memory.components(work, 2, sharding)}
    for rank in measured:
        got = rank[sharding]
        assert got["micro_batches"] == 2  # gradients accumulated over two micro-batches before each step
        for name in ("weights", "gradients", "optimizer", "frozen"):
            side, other = ("host", "device") if plan[name].host else ("device", "host")
            assert got[name][side] == pytest.approx(plan[name].elements, rel=0.10), (name, got[name])
            assert got[name][other] == 0, (name, got[name])
        if sharding == "none":
            assert "gathered_layers" not in plan and got["gathered_layers"] == got["gathered_policy"] == 0
            continue
        assert got["gathered_layers"] == pytest.approx(plan["gathered_layers"].elements, rel=0.10)
        assert got["gathered_policy"] == pytest.approx(plan["gathered_policy"].elements, rel=0.10)
    # sharding divides what a process holds by the processes; offloading moves it to host memory
    if sharding != "none":
        whole = measured[0]["none"]
        assert sum(measured[0][sharding]["weights"].values()) == pytest.approx(whole["weights"]["device"] / 2, rel=0.02)


def test_the_kv_cache_is_the_plans_count(models, measured):
    _, shapes = models
    kv = measured[0]["kv_cache"]
    assert kv["cached_tokens"] == 5 + 6 - 1  # every token but the last generated one
    assert kv["elements"] == memory.kv_elements(shapes["base"], kv["sequences"], kv["cached_tokens"])


def test_a_reward_model_sharded_as_accelerate_does_scores_as_unsharded(measured):
    for rank in measured:
        whole, sharded, still_gathered = rank["accelerate_style_scores"]
        for row_whole, row_sharded in zip(whole, sharded):
            assert row_sharded == pytest.approx(row_whole, rel=1e-5, abs=1e-6)
        assert still_gathered == 0  # the root's parameters are freed again after scoring
