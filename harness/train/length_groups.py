"""Length-grouped training micro-batches (PPO and GRPO): rows sorted by response length before micro-batches are cut,
and each micro-batch cut to the columns its own rows fill. A rollout is padded to its longest response (up to 1024
tokens in the paper's recipe), so a micro-batch of short responses otherwise computes the whole padded width.

The loss normalisation is unchanged, and so is the loss: PPO's minibatch loss is one token mean over the whole
minibatch (harness.train.ppo.loss_normaliser: every micro-batch's token sum divided by the minibatch's token count),
so which rows share a micro-batch moves only rounding (tests/test_length_groups.py). GRPO (TRL 1.16, no hook for
it): harness.train.grpo.LengthGroupedGRPOTrainer regroups each generation batch after TRL has shuffled and split it,
for the loss types whose normaliser does not depend on which rows share a micro-batch (`GROUPABLE_LOSSES`).
"""

from __future__ import annotations

import torch

# TRL 1.16 GRPO loss types (trl/trainer/grpo_trainer.py, _compute_loss) whose micro-batch loss is divided by a count
# that is the same however the generation batch's rows are grouped: the generation batch's tokens (dapo, cispo), a
# constant (dr_grpo: rows x max_completion_length), or equal-sized micro-batches' row counts (grpo: mean of
# per-sequence means). bnpo divides by the micro-batch's own tokens: regrouping would change its loss.
GROUPABLE_LOSSES = ("dapo", "cispo", "dr_grpo", "grpo")


def longest_first(lengths: torch.Tensor) -> torch.Tensor:
    """The permutation ordering rows by `lengths`, longest first (stable): micro-batches cut from it in turn hold rows
    of similar length."""
    return torch.sort(lengths.cpu(), descending=True, stable=True).indices


def trim(batch: dict, mask: str, prompt: tuple[str, str] | None = None) -> dict:
    """One micro-batch's tensors without the columns that are padding in all its rows: the right-padded tensors as
    wide as `batch[mask]` after its longest row, and the left-padded `prompt` (ids key, mask key) before its longest
    prompt."""
    width = batch[mask].shape[1]
    keep = max(1, int(batch[mask].sum(1).max()))
    prompt_keys = prompt or ()
    drop = batch[prompt[1]].shape[1] - max(1, int(batch[prompt[1]].sum(1).max())) if prompt else 0
    out = {}
    for key, value in batch.items():
        if key in prompt_keys:
            value = value[:, drop:]
        elif torch.is_tensor(value) and value.dim() >= 2 and value.shape[1] == width:
            value = value[:, :keep]
        out[key] = value
    return out


def _rows(value, n: int) -> bool:
    return (torch.is_tensor(value) and value.dim() > 0 and len(value) == n) or (isinstance(value, list) and len(value) == n)


def regroup(chunks: list[dict], mask: str, prompt: tuple[str, str]) -> list[dict]:
    """Equal micro-batches of one batch (TRL's split of a generation batch) cut again after sorting all their rows by
    length (`batch[mask]` row sums), each trimmed; per-batch values (a scalar token count) are kept as they are."""
    size = len(chunks[0][mask])
    whole = {}
    for key, value in chunks[0].items():
        if _rows(value, size):
            parts = [c[key] for c in chunks]
            whole[key] = torch.cat(parts) if torch.is_tensor(value) else [x for part in parts for x in part]
        else:
            whole[key] = value
    n = len(whole[mask])
    order = longest_first(whole[mask].sum(1))
    take = lambda v, idx: (v[idx] if torch.is_tensor(v) else [v[i] for i in idx.tolist()]) if _rows(v, n) else v  # noqa: E731
    return [trim({k: take(v, order[s : s + size]) for k, v in whole.items()}, mask, prompt) for s in range(0, n, size)]
