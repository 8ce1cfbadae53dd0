"""One rank of the memory measurement (tests/test_memory_measured.py), launched through torchrun with 2 CPU processes
(gloo): one PPO iteration under each sharding (none, fsdp, fsdp_offload with pinning off), counting what this process
holds, in elements, by what FSDP2 and the optimiser really allocated:

    weights, frozen     local elements of the trained (policy, value) and frozen (reference, reward model) parameters
    gradients           the most gradient elements held at once, after each micro-batch's backward (shards, and
                        the whole gradients FSDP2 keeps while a reduce-scatter is deferred)
    optimizer           AdamW state elements after the optimiser step
    gathered_layers     the most parameter elements FSDP2 holds gathered at once (unsharded copies, and all-gather
                        buffers of a prefetched layer) during the minibatch's forward and backward passes, sampled
                        around every gather and free of its parameter groups
    gathered_policy     the same while the policy generates
    host / device       each of the above split by FSDP2's offload policy of the parameter it belongs to (on a GPU
                        `fsdp_offload` keeps those in host memory; on CPU every tensor is on "cpu", so the split is read
                        from the FSDPParam, not the device)

and, once, the KV cache of a generation (elements of its past_key_values) and a reward model sharded as accelerate's
FSDP2 shards it (decoder layers, then the whole model as root), scored by harness.train.reward.token_scores.

    torchrun --nproc_per_node 2 tests/memory_worker.py <base dir> <reward-model dir> <out dir>
"""

import json
import sys
from pathlib import Path

import torch
from conftest import compose
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.fsdp._fully_shard._fsdp_param_group import FSDPParamGroup
from torch.distributed.tensor import DTensor

from harness import data
from harness.models import ModelRef, load_causal_lm
from harness.train import fsdp, ppo
from harness.train.reward import RewardModel, load_reward_model, token_scores

base, rm, out = ModelRef(sys.argv[1]), RewardModel(ModelRef(sys.argv[2]), "tulu", {}), Path(sys.argv[3])
# 8 prompts per iteration, 4 per process; a minibatch of 4 per process in 2 micro-batches of 2; 4 generated at once
cfg = compose("algorithm=ppo", "reward_model=tiny", "algorithm.max_steps=1", "algorithm.rollout_batch_size=8",
              "algorithm.effective_batch_size=8", "algorithm.per_device_batch_size=2", "algorithm.generation_batch_size=4",
              "algorithm.max_new_tokens=8", "algorithm.save_steps=100")
prompts = data.load_prompts(cfg.prompts)


def local(t: torch.Tensor) -> int:
    return t.to_local().numel() if isinstance(t, DTensor) else t.numel()


def offloaded(*models) -> set[int]:
    """ids of the sharded parameters FSDP2 offloads to host memory."""
    return {id(fp.sharded_param) for m in models for unit in m.modules() if isinstance(unit, FSDPModule)
            for group in unit._get_fsdp_state()._fsdp_param_groups for fp in group.fsdp_params if fp.offload_to_cpu}


def split(pairs, host: set[int]) -> dict:
    """{"device": n, "host": n} of (parameter, tensor) pairs, by where the parameter's states live."""
    out = {"device": 0, "host": 0}
    for param, tensor in pairs:
        out["host" if id(param) in host else "device"] += local(tensor)
    return out


def param_groups(*models) -> list:
    return list({id(g): g for m in models for unit in m.modules() if isinstance(unit, FSDPModule)
                 for g in unit._get_fsdp_state()._fsdp_param_groups}.values())


def allocated(t) -> bool:
    return t is not None and t.untyped_storage().size() > 0


def gathered_now(*models) -> int:
    """Parameter elements FSDP2 holds gathered right now: each parameter's unsharded copy, and the flat buffers of
    all-gathers not yet copied out (a layer prefetched in backward) or kept for the next copy-out (forward)."""
    groups = param_groups(*models)
    copies = sum(t.numel() for g in groups for fp in g.fsdp_params for t in getattr(fp, "all_gather_outputs", None) or []
                 if allocated(t))
    kept = [getattr(getattr(g.comm_ctx, "all_gather_state", None), "all_gather_result", None) for g in groups]
    results = [g._all_gather_result for g in groups] + kept
    flat = {r.all_gather_output.untyped_storage().data_ptr(): r.all_gather_output.numel() for r in results
            if r is not None and allocated(r.all_gather_output)}
    return copies + sum(flat.values())


def gradients_held(params, host: set[int], *models) -> dict:
    """Gradient elements: each parameter's .grad (its shard when sharded) and FSDP2's unsharded gradients kept between
    micro-batches while the reduce-scatter is deferred (no_sync), which live on the device."""
    held = split(((p, p.grad) for p in params if p.grad is not None), host)
    for g in param_groups(*models):
        for fp in g.fsdp_params:
            unsharded = getattr(fp, "_unsharded_param", None)
            for grad in (unsharded.grad if unsharded is not None else None, fp.unsharded_accumulated_grad):
                if grad is not None:
                    held["device"] += grad.numel()
    return held


# FSDP2 holds the most gathered just before it frees something and just after it gathers: sampled there (in the phases
# being measured).
SAMPLE = {"now": lambda: None}


def sampled(method):
    def wrapped(self, *args, **kwargs):
        SAMPLE["now"]()
        out = method(self, *args, **kwargs)
        SAMPLE["now"]()
        return out
    return wrapped


for _name in ("unshard", "wait_for_unshard", "reshard", "pre_backward", "post_backward"):
    setattr(FSDPParamGroup, _name, sampled(getattr(FSDPParamGroup, _name)))


def measure(sharding: str) -> dict:
    trainer = ppo.PPOTrainer(cfg.algorithm, base, cfg.model, prompts, rm, out / sharding, lambda m, s: None, cfg.seed,
                             sharding=sharding)
    pv = trainer.accelerator.unwrap_model(trainer.model)
    trained, frozen = [pv.policy, pv.value], [trainer.ref, trainer.scorer.model]
    host = offloaded(*trained, *frozen)
    params = [p for m in trained for p in m.parameters()]
    peak = {"gathered_layers": 0, "gathered_policy": 0, "gradients": {"device": 0, "host": 0}}
    phase = {"now": None}

    def sample(*_):
        key = phase["now"]
        if key:
            peak[key] = max(peak[key], gathered_now(*trained, *frozen))

    SAMPLE["now"] = sample

    def during(key, fn):
        def wrapped(*args, **kwargs):
            phase["now"] = key
            sample()
            try:
                return fn(*args, **kwargs)
            finally:
                phase["now"] = None
        return wrapped

    generate = pv.policy.generate
    pv.policy.generate = during("gathered_policy", generate)
    trainer.backward_minibatch = during("gathered_layers", trainer.backward_minibatch)
    backward = trainer.accelerator.backward

    def backward_and_count(loss, **kwargs):
        backward(loss, **kwargs)
        held = gradients_held(params, host, *trained)
        peak["gradients"] = {k: max(v, held[k]) for k, v in peak["gradients"].items()}

    trainer.accelerator.backward = backward_and_count
    trainer.train()
    optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    states = [(p, t) for p, st in optimizer.state.items() for k, t in st.items() if k != "step"]
    return {"weights": split(((p, p) for p in params), host), "optimizer": split(states, host),
            "frozen": split(((p, p) for m in frozen for p in m.parameters()), host), **peak,
            "micro_batches": trainer.batch.accumulation}


def kv_cache() -> dict:
    """The KV cache of 3 prompts' generation (the tiny policy, unsharded): its elements and sequence length."""
    policy = load_causal_lm(base).eval()
    ids = torch.randint(10, 100, (3, 5))
    out = policy.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, min_new_tokens=6,
                          do_sample=False, return_dict_in_generate=True)
    cache = out.past_key_values
    tensors = [t for layer in cache.layers for t in (layer.keys, layer.values)]
    return {"sequences": 3, "cached_tokens": tensors[0].shape[-2], "elements": sum(t.numel() for t in tensors)}


def accelerate_style_scores() -> list:
    """A reward model sharded as accelerate's FSDP2 does (each decoder layer, then the whole model as the root) scores
    like the unsharded one: token_scores gathers the root's own parameters (harness.train.fsdp.root_gathered)."""
    model = load_reward_model(rm.ref).eval()
    ids = torch.randint(10, 100, (2, 7))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        whole = token_scores(model, ids, mask)
        for layer in fsdp.decoder_layers(model):
            fully_shard(layer, mesh=fsdp.mesh())
        fully_shard(model, mesh=fsdp.mesh())
        sharded = token_scores(model, ids, mask)
    return [whole.tolist(), sharded.tolist(), gathered_now(model)]


report = {sharding: measure(sharding) for sharding in ("none", "fsdp", "fsdp_offload")}
report["kv_cache"] = kv_cache()
report["accelerate_style_scores"] = accelerate_style_scores()
rank = torch.distributed.get_rank()
(out / f"rank{rank}.json").write_text(json.dumps(report))
torch.distributed.destroy_process_group()
