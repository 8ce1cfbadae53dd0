"""What a GPU holds for one training sequence with activation checkpointing, counted by hand from the model's shape,
against the memory plan (harness/sweep/memory.py). The hand count is the physics, written once here; the one call
into the plan (`planned`) is all that changes if the plan's functions are reorganised.

Llama-2 13B (config.json: hidden 5120, 40 layers, vocabulary 32,000), one sequence of 4,096 tokens, bf16 compute:
  - every decoder layer's input, kept for its recomputation:      2 B x 4096 x 5120 x 40  = 1.678 GB
  - the one layer being recomputed in backward, all its activations (Korthikanti et al. 2022 with flash attention:
    34 bytes per token per hidden unit):                          34 B x 4096 x 5120      = 0.713 GB
  - the fp32 logits and their log-softmax:                         8 B x 4096 x 32000     = 1.049 GB
  = 3.440 GB; without checkpointing every layer keeps all of its activations: 34 B x 4096 x 5120 x 40 + logits.
"""

from __future__ import annotations

import pytest

from harness.sweep import memory

HIDDEN, LAYERS, VOCAB = 5120, 40, 32_000


def by_hand(tokens: int, checkpointing: bool) -> float:
    one_layer = 34 * tokens * HIDDEN
    layers = 2 * tokens * HIDDEN * LAYERS + one_layer if checkpointing else one_layer * LAYERS
    return layers + 8 * tokens * VOCAB


def planned(tokens: int, checkpointing: bool) -> float:
    """The plan's bytes of activations for `tokens` tokens of a 13B model."""
    return memory.activations(13.0, tokens, checkpointing)


def test_one_sequences_checkpointed_activations_by_hand():
    assert by_hand(4096, True) == pytest.approx(1.678e9 + 0.713e9 + 1.049e9, rel=1e-3)
    assert planned(4096, True) == pytest.approx(by_hand(4096, True), rel=1e-9)
    assert planned(4096, False) == pytest.approx(by_hand(4096, False), rel=1e-9)
    # a micro-batch of 2 sequences (DPO's chosen and rejected) holds twice as much
    assert planned(2 * 4096, True) == pytest.approx(2 * by_hand(4096, True), rel=1e-9)
