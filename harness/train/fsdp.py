"""Sharding the project's own PPO with torch FSDP2 (`torch.distributed.fsdp.fully_shard`), `launch.sharding=fsdp`.

Every model PPO holds is sharded over the job's processes, one FSDP unit per decoder layer plus one for the rest:

- policy and value (trained): fp32 parameters (the optimiser's master weights, sharded with its states); on GPUs with
  `model.dtype=bfloat16` they compute in bf16 and reduce gradients in fp32 (FSDP2's MixedPrecisionPolicy).
- reference and reward model (frozen): sharded in the run's dtype, gathered layer by layer in each forward.

Rules found by running it (shared/notes/conformance/scale.md, Q2):
- Policy and value are separate FSDP roots: `policy.generate` makes the policy a root of its own, and an outer root
  over both then fails ("FSDP state has already been lazily initialized").
- A sequence-classification model (value, reward model) is called as backbone, then score head
  (harness.train.reward.token_scores); both are their own FSDP roots, so each call gathers its own parameters.
- Rollouts: `gathered(policy)` all-gathers the policy once and keeps it whole while `generate` runs its many small
  forwards (each rank may generate a different number of tokens, no collectives inside), then frees it. GRPO's
  generation under accelerate's FSDP2 uses it too (harness.train.grpo.GatherOnceGRPOTrainer).
- Gradient accumulation: every micro-batch's backward reduce-scatters (PPOTrainer.backward_minibatch); FSDP2 adds the
  shards into the sharded gradient. Skipping the sync (set_requires_gradient_sync(False)) would keep every rank's
  whole unsharded gradient, upcast to fp32, until the last micro-batch (tests/test_fsdp_scale.py measures it).
- Offload (`launch.sharding=fsdp_offload`): parameters, gradients and optimiser states live in CPU memory, pinned on
  GPUs only (pinning needs an accelerator); their collectives (clipping's norm) need the gloo half of PPO's
  `cuda:nccl,cpu:gloo` process group (harness.train.ppo.process_group).
- Loading: rank 0 reads each checkpoint into CPU memory; the other ranks build the model empty on the meta device
  and receive their shards (one whole copy per job while loading, not one per process).
- Checkpoints are sharded (torch.distributed.checkpoint, one file per rank) and resume exactly; the final model is a
  full HF state dict written by rank 0.

Tested on CPU with 2 processes on gloo (tests/test_fsdp.py, tests/test_fsdp_scale.py). On GPUs the same code runs on
NCCL with a CUDA mesh; a gloo group on a machine with GPUs is known to crash in fully_shard (pytorch/pytorch#132471).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                     set_model_state_dict, set_state_dict)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, OffloadPolicy, fully_shard

from harness.config.errors import ConfigError


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of an HF model (the classes it names as never split across devices: LlamaDecoderLayer)."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"{type(model).__name__} names no decoder-layer class (_no_split_modules); cannot shard it per layer")
    return layers


def mesh():
    """All processes of the job along one axis (the process group accelerate / torchrun started)."""
    return init_device_mesh("cuda" if torch.cuda.is_available() else "cpu", (dist.get_world_size(),))


def shard(model: torch.nn.Module, param_dtype: torch.dtype | None = None, offload: bool = False,
          frozen: bool = False) -> torch.nn.Module:
    """fully_shard per decoder layer, then the rest as its root(s), in place. `param_dtype`: compute dtype of fp32
    parameters (bf16 on GPUs), gradients reduced in fp32. `offload`: parameters and optimiser states in CPU memory.
    `frozen`: a model only run forward, whose roots free their gathered parameters after each forward too (FSDP2 keeps
    a root's until backward)."""
    # pinned host memory needs an accelerator; on CPU (the tests) offloaded shards are plain CPU tensors
    offload_policy = CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if offload else OffloadPolicy()
    kwargs = {"mesh": mesh(), "offload_policy": offload_policy,
              "mp_policy": MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)}
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    # sequence classification: backbone and head are called one after the other, each a root
    roots = [getattr(model, model.base_model_prefix), model.score] if hasattr(model, "score") else [model]
    for root in roots:
        fully_shard(root, **kwargs)
        if frozen:
            root.register_forward_hook(lambda module, args, output: module.reshard())
    return model


def load_sharded(read, prepare, param_dtype: torch.dtype | None = None, offload: bool = False,
                 frozen: bool = False) -> torch.nn.Module:
    """A model read once, by rank 0 (into CPU memory), and sharded over every process: the others build it empty on
    the meta device and receive their shards from rank 0, so a node holds one whole copy while loading, not one per
    process. `read()` reads the checkpoint; `prepare(model)` runs on every rank before sharding (dropout off,
    activation checkpointing, frozen)."""
    rank0 = dist.get_rank() == 0
    model = read() if rank0 else None
    spec = [(type(model), model.config, next(model.parameters()).dtype) if rank0 else None]
    dist.broadcast_object_list(spec, src=0)
    if not rank0:
        cls, config, dtype = spec[0]
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # as from_pretrained builds it: parameters in dtype, fp32 buffers stay fp32
        try:
            with torch.device("meta"):
                model = cls(config)
        finally:
            torch.set_default_dtype(default)
    prepare(model)
    full = model.state_dict() if rank0 else {}
    buffers = [{name: b.detach().cpu() for name, b in model.named_buffers()} if rank0 else None]
    shard(model, param_dtype, offload, frozen)
    if not rank0:
        model.to_empty(device="cpu" if offload or not torch.cuda.is_available() else torch.cuda.current_device())
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    dist.broadcast_object_list(buffers, src=0)  # buffers (rotary frequencies) are not in the state dict
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(buffers[0][name])
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    return any(isinstance(m, FSDPModule) for m in model.modules())


def reshards_after_forward(unit: FSDPModule) -> bool:
    """Whether the unit frees its gathered parameters after each forward (FSDP2's reshard_after_forward, as it is set
    now; a root left at fully_shard's default resolves to False at its lazy init). FSDP2 has no getter: this reads
    its parameter groups (torch 2.13 _fsdp_param_group.py, post_forward_mesh_info)."""
    return any(group.post_forward_mesh_info is not None for group in unit._get_fsdp_state()._fsdp_param_groups)


@contextlib.contextmanager
def gathered(model: torch.nn.Module):
    """The model's parameters all-gathered once and kept whole until the block ends (generation: each of its many
    small forwards would otherwise all-gather every unit that reshards after forward, i.e. every layer per token),
    then freed; each unit's reshard_after_forward is restored as it was (PPO's own sharding: layers True, root False;
    accelerate's FSDP2: layers and embedding True, final norm and head False). `model` is an FSDP root (a causal LM
    sharded by `shard` or by accelerate); a no-op for a model that is not sharded. Every process must enter it."""
    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if isinstance(model, FSDPModule):
        model._get_fsdp_state()._lazy_init()  # settles the root's default (what its first forward would do)
    before = [reshards_after_forward(unit) for unit in units]
    for unit in units:
        unit.unshard()
        unit.set_reshard_after_forward(False, recurse=False)
    try:
        yield model
    finally:
        for unit, reshards in zip(units, before):
            unit.set_reshard_after_forward(reshards, recurse=False)
            unit.reshard()


@contextlib.contextmanager
def root_gathered(model: torch.nn.Module):
    """A model sharded whole as one FSDP2 root (accelerate's FSDP2: one unit per decoder layer, the model the root)
    with the root's own parameters (embeddings, final norm, score head) gathered, so that its submodules can be
    called one by one (harness.train.reward.token_scores calls backbone, then head); the decoder layers gather
    themselves. A no-op for any other model (PPO's value and reward model shard backbone and head as roots of their
    own, `shard`)."""
    if not isinstance(model, FSDPModule):
        yield model
        return
    # the root's lazy init, which its own forward would do: without it the first layer called becomes a root of its
    # own and, as roots do, keeps its parameters gathered after forward
    model._get_fsdp_state()._lazy_init()
    model.unshard()
    try:
        yield model
    finally:
        model.reshard()


def full_state_dict(model: torch.nn.Module, dtype: torch.dtype | None = None) -> dict:
    """The whole model's state dict on rank 0's CPU (empty on other ranks); every rank must call it."""
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    # a tied parameter (lm_head = embed_tokens) comes back as two tensors: keep the first name, as save_pretrained does
    tied = {n for n, _ in model.named_parameters(remove_duplicate=False)} - {n for n, _ in model.named_parameters()}
    return {k: v.to(dtype) if dtype and v.is_floating_point() else v for k, v in state.items() if k not in tied}


def save_pretrained(model, out_dir: Path, dtype: torch.dtype | None = None) -> None:
    """The sharded HF model saved whole (safetensors, as `save_pretrained` writes it) by rank 0."""
    state = full_state_dict(model, dtype)
    if dist.get_rank() == 0:
        model.save_pretrained(out_dir, state_dict=state)
        if dtype is not None:
            (config := model.config).dtype = dtype
            config.save_pretrained(out_dir)
    dist.barrier()


# ------------------------------------------------------------------------------------------------- checkpoints
def save_state(path: Path, model: torch.nn.Module, optimizer, scheduler) -> None:
    """Sharded model and optimiser (one file per rank), scheduler, and each rank's RNG state."""
    path = Path(path)
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(path / "sharded"))
    rank = dist.get_rank()
    rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    torch.save(rng, path / f"rng_state_{rank}.pt")
    if rank == 0:
        torch.save(scheduler.state_dict(), path / "scheduler.pt")
    dist.barrier()


def load_state(path: Path, model: torch.nn.Module, optimizer, scheduler) -> None:
    path = Path(path)
    if not (path / "sharded").is_dir():
        raise ConfigError(f"{path} is not a sharded (launch.sharding=fsdp) checkpoint; resume it with the sharding "
                          "it was written with, or delete the stage's checkpoints/ to start over")
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    dcp.load(state, checkpoint_id=str(path / "sharded"))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rng = torch.load(path / f"rng_state_{dist.get_rank()}.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    if rng["cuda"]:
        torch.cuda.set_rng_state_all(rng["cuda"])
