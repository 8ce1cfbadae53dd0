"""Memory per GPU of a stage, per phase, under a resource profile and its sharding: printed by `python -m harness.sweep
plan`, and the Slurm launcher refuses a job that cannot fit (naming the smallest profile that would).

Per process (`components`: elements and bytes each, on the GPU or in host memory, in which phases):
    weights      trained models' fp32 master weights, 4 B per parameter   \\  whole on every GPU (none), divided over
    gradients    fp32, 4 B per parameter (training phase only: freed      |  the job's GPUs (fsdp, zero3: FSDP2 and
                 by zero_grad before the next rollout)                    |  ZeRO-3 shard all three; gradients are
    optimizer    AdamW's two fp32 moments, 8 B per parameter              /  reduce-scattered every micro-batch);
                                                                             *_offload: in host memory instead
    frozen       models only run forward (reference, reward model), model-dtype weights, sharded likewise; a model
                 every process holds whole whatever the sharding (GRPO's reward model, loaded by the harness) is not
    gathered_layers  sharded only: the root unit of each trained model (embeddings, head, final norm: FSDP2 keeps a
                 root's parameters gathered from its forward to the end of its backward) and two more units (the
                 one computing and the one prefetched, or in forward the previous unit's all-gather buffer, which
                 may be a root: a decoder layer plus the larger of a layer and a root), in the compute dtype;
                 counted in rollouts too (the scoring forwards after generation), a small overestimate there
    activations  per micro-batch of sequences of s tokens, hidden h, L layers, per trained model (Korthikanti et al.
                 2022, "Reducing Activation Recomputation in Large Transformer Models", with flash attention: no s^2
                 term):  without checkpointing 34 s h L bytes; with checkpointing 2 s h L (each layer's input) + 34 s h
                 (one layer recomputed); plus 8 s V bytes of fp32 logits and log-softmax for a language-model head
    autocast_weights  unsharded mixed precision: torch.autocast caches the compute-dtype copy of every fp32 trained
                 weight it casts until its region ends, and backward keeps them: one copy of the trained models
                 (training; and rollouts, which run under autocast); sharded, FSDP2 gathers compute-dtype weights instead
    gathered_policy  rollouts of a sharded policy: gathered whole, once per generation round, in the compute dtype
    kv_cache     rollouts and evaluation: 2 (K, V) x L x kv-width per token, in the compute dtype, for the sequences
                 generated at once x (prompt + new tokens)
Phases: `training` (weights, gradients, optimizer, frozen, gathered layers or autocast copies, activations) and, for
stages that generate, `rollout` (weights, optimizer, frozen, gathered layers or autocast copies, the gathered policy,
KV cache); the peak is the larger. Host memory per node: the offloaded components of its processes, one model read whole while loading (the
largest: sharded, rank 0 reads it, 4 B per parameter when trained; unsharded, every process reads its own), and
HOST_GB_PER_PROCESS per process (assumed).

The element counts per process are checked against FSDP2 on 2 CPU processes (tests/test_memory_measured.py:
parameters, gradients, optimiser states, gathered weights, KV cache of tiny models under none, fsdp, fsdp_offload)
within 10%. The bytes per GPU are what `python -m harness.acceptance` checks on one GPU (peak allocated memory per
stage within MARGIN; it has not run on a GPU yet). Allocator fragmentation and the CUDA context (~1-2 GB) come on top,
hence HEADROOM.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

GB = 1e9
# Share of a GPU's memory a plan may fill (fragmentation, CUDA context, NCCL buffers): assumed.
HEADROOM = 0.9
# Host memory per training process besides the model states (CUDA context, Python, data, pinned buffers): assumed.
HOST_GB_PER_PROCESS = 10.0
# GPU memory when a profile does not say (A100 / H100 80GB).
DEFAULT_GPU_MEM_GB = 80.0
# How far a measured peak may lie from the plan's (a share of the plan, either way) and still agree with it: the
# acceptance command (harness.acceptance) fails a stage beyond it. Assumed until a GPU run calibrates it: the
# activation formula is an estimate, the rest is counted exactly.
MARGIN = 0.25
PHASES = ("training", "rollout")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class Shape:
    """One model's architecture, what the plan needs of it."""

    params: float  # parameters (tied embeddings counted once)
    hidden: int
    layers: int
    vocab: int
    kv_width: int  # key (= value) width per layer: kv heads x head dim
    tied: bool = False  # the language-model head shares the input embeddings
    scalar_head: bool = False  # a sequence classifier (reward, value model): a 1-wide score head, no LM head

    @property
    def root(self) -> float:
        """Parameters outside the decoder layers: embeddings, final norm, and the head (LM head when not tied, or the
        score head)."""
        head = self.hidden if self.scalar_head else (0 if self.tied else self.vocab * self.hidden)
        return self.vocab * self.hidden + self.hidden + head

    @property
    def layer(self) -> float:
        return max(self.params - self.root, 0.0) / self.layers

    def classifier(self) -> Shape:
        """The same model with a scalar score head instead of its LM head (how reward and value models are built)."""
        if self.scalar_head:
            return self
        lm_head = 0 if self.tied else self.vocab * self.hidden
        return replace(self, params=self.params - lm_head + self.hidden, scalar_head=True)

    @classmethod
    def of(cls, model) -> Shape:
        """A built model's shape (a transformers model, possibly on the meta device): its parameters counted."""
        c = model.config
        heads = c.num_attention_heads
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
        return cls(float(sum(p.numel() for p in model.parameters())), c.hidden_size, c.num_hidden_layers, c.vocab_size,
                   (getattr(c, "num_key_value_heads", None) or heads) * head_dim, bool(c.tie_word_embeddings),
                   not hasattr(model, "lm_head"))


# Architectures by size (the models' config.json on the hub): Qwen2.5-0.5B (2 KV heads of 64, tied embeddings),
# Llama-2 7B/13B (no GQA), Llama-2 70B (8 KV heads of 128). A model of another size takes the nearest one's
# architecture with its own parameter count (an estimate).
SHAPES = {0.5: Shape(0.494e9, 896, 24, 151_936, 128, tied=True), 7.0: Shape(6.74e9, 4096, 32, 32_000, 4096),
          13.0: Shape(13.0e9, 5120, 40, 32_000, 5120), 70.0: Shape(69.0e9, 8192, 80, 32_000, 1024)}


def shape(params_b: float) -> Shape:
    """A model of `params_b` billion parameters: the nearest architecture of SHAPES, with that many parameters."""
    nearest = SHAPES[min(SHAPES, key=lambda b: abs(b - params_b) / b)]
    return replace(nearest, params=params_b * 1e9)


def _shape(model: Shape | float) -> Shape:
    return model if isinstance(model, Shape) else shape(model)


@dataclass(frozen=True)
class Workload:
    """What one stage holds and runs on each GPU: models as Shapes (or sizes in billions of parameters)."""

    trained: tuple = ()
    frozen: tuple = ()
    sequence: int = 0  # tokens of one training sequence
    micro_batch: int = 0  # sequences per forward on one GPU
    checkpointing: bool = True
    generation: tuple | None = None  # (policy, sequences at once, tokens each)
    replicated: tuple = ()  # frozen models every process holds whole, whatever the sharding
    compute_bytes: int = 2  # bytes of the compute dtype (gathered weights, frozen weights, KV cache)

    def __post_init__(self):
        for name in ("trained", "frozen", "replicated"):
            object.__setattr__(self, name, tuple(_shape(m) for m in getattr(self, name)))
        if self.generation:
            policy, sequences, tokens = self.generation
            object.__setattr__(self, "generation", (_shape(policy), sequences, tokens))


def workload(kind: str, cfg, spec: dict | None = None, processes: int = 1, known: Shape | None = None) -> Workload | None:
    """The models and sizes of one stage of run `cfg` (`spec`: the stage's spec) on `processes` training processes;
    None for a stage with nothing to estimate (the tiny model's build). `known`: the exact shape of the run's model
    (read from its files) instead of the nearest architecture of its size."""
    alg, model_b = cfg.algorithm, cfg.model.params_b or 0.0
    rm_b = cfg.reward_model.params_b or model_b
    policy = known if known is not None else shape(model_b) if model_b else None
    if known is not None and rm_b == model_b:  # a reward model built from the run's model: its head swapped
        rm = known.classifier()
    else:  # reward_model.params_b is the reward model's own size
        rm = replace(shape(rm_b), scalar_head=True) if rm_b else None
    width = DTYPE_BYTES.get(cfg.model.dtype, 2)
    if policy is None:
        return None
    if kind == "reward_model":  # chosen and rejected in one forward (TRL's RewardTrainer concatenates them)
        r = cfg.reward_model
        return Workload((rm,), (), r.max_length, 2 * r.per_device_batch_size, r.activation_checkpointing, compute_bytes=width)
    if kind == "policy" and alg.name == "dpo":  # chosen and rejected in one batch; the reference frozen, unless its
        # log-probs are precomputed (one process only: harness.train.dpo.precompute_reference)
        reference = () if alg.get("precompute_ref_log_probs", False) and processes == 1 else (policy,)
        return Workload((policy,), reference, alg.max_length, 2 * alg.per_device_batch_size, alg.activation_checkpointing,
                        compute_bytes=width)
    if kind == "policy" and alg.name == "ppo":
        value = rm if alg.value_from_reward_model else policy.classifier()
        return Workload((policy, value), (policy, rm), alg.max_length, alg.per_device_batch_size, alg.activation_checkpointing,
                        (policy, alg.generation_batch_size, alg.max_length), compute_bytes=width)
    if kind == "policy" and alg.name == "grpo":  # the reference sharded by TRL; the reward model loaded whole by the harness
        reference = (policy,) * (alg.beta > 0)
        scorer = (rm,) * (alg.reward in ("reward_model", "both"))
        local = alg.effective_batch_size // processes  # TRL generates a whole generation batch at once per process
        return Workload((policy,), reference, alg.max_length, alg.per_device_batch_size, alg.activation_checkpointing,
                        (policy, local, alg.max_length), scorer, compute_bytes=width)
    if kind == "eval":  # inference only, batches of 2k tokens: the policy (+ the reward model for best-of-N), or the
        # reward model alone (a reward-model benchmark's stage is keyed by it)
        if "reward_model" in (spec or {}):
            return Workload((), (rm,), 0, 0, True, (rm, cfg.eval.batch_size, 2048), compute_bytes=width)
        frozen = (policy,) + ((rm,) if alg.name == "best_of_n" else ())
        return Workload((), frozen, 0, 0, True, (policy, cfg.eval.batch_size, 2048), compute_bytes=width)
    return None


def activations(model: Shape | float, tokens: int, checkpointing: bool) -> float:
    """Bytes of activations kept for backward for `tokens` tokens of one micro-batch."""
    s = _shape(model)
    per_layer = 34 * tokens * s.hidden
    kept = 2 * tokens * s.hidden * s.layers + per_layer if checkpointing else per_layer * s.layers
    return kept + (0 if s.scalar_head else 8 * tokens * s.vocab)


def kv_elements(model: Shape | float, sequences: int, tokens: int) -> float:
    s = _shape(model)
    return 2 * s.layers * s.kv_width * sequences * tokens


def kv_cache(model: Shape | float, sequences: int, tokens: int, width: int = 2) -> float:
    """Bytes of the KV cache of `sequences` of `tokens` tokens."""
    return kv_elements(model, sequences, tokens) * width


def gathered_elements(trained: tuple, frozen: tuple) -> float:
    """Parameters gathered at once in a sharded forward/backward: the trained models' roots (kept from forward to
    backward) and two more units, a decoder layer and the larger of a layer and a root: FSDP2 prefetches the next
    layer in backward, and in forward keeps a unit's all-gather buffer until the next unit's copy-out (torch
    _fsdp_param_group.py wait_for_unshard), so a model's first layer arrives while its root's buffer is held."""
    models = (*trained, *frozen)
    layer = max((s.layer for s in models), default=0.0)
    return sum(s.root for s in trained) + layer + max([layer] + [s.root for s in models]) if models else 0.0


def gathered_layers(model: Shape | float) -> float:
    """Bytes (bf16) gathered at once for one sharded trained model."""
    s = _shape(model)
    return 2 * gathered_elements((s,), ())


@dataclass(frozen=True)
class Component:
    """One thing a process holds: `elements` of `width` bytes (activations: bytes, width 1), on its GPU or, offloaded,
    in host memory, during `phases`."""

    name: str
    elements: float
    width: int
    host: bool = False
    phases: tuple[str, ...] = PHASES

    @property
    def bytes(self) -> float:
        return self.elements * self.width


def components(w: Workload, processes: int, sharding: str) -> list[Component]:
    """What each of a job's `processes` holds (elements per process), under `sharding`."""
    sharded, offload = sharding != "none", sharding.endswith("_offload")
    split = processes if sharded else 1
    trained = sum(s.params for s in w.trained) / split
    frozen = sum(s.params for s in w.frozen) / split
    out = [Component("weights", trained, 4, offload), Component("gradients", trained, 4, offload, ("training",)),
           Component("optimizer", 2 * trained, 4, offload), Component("frozen", frozen, w.compute_bytes, offload),
           Component("replicated", sum(s.params for s in w.replicated), w.compute_bytes)]
    if sharded:
        out.append(Component("gathered_layers", gathered_elements(w.trained, w.frozen), w.compute_bytes))
    elif w.compute_bytes < 4 and w.trained:  # unsharded mixed precision: autocast's cached copies of the fp32 weights
        out.append(Component("autocast_weights", sum(s.params for s in w.trained), w.compute_bytes))
    tokens = w.sequence * w.micro_batch
    out.append(Component("activations", sum(activations(s, tokens, w.checkpointing) for s in w.trained), 1,
                         phases=("training",)))
    if w.generation:
        policy, sequences, length = w.generation
        if sharded and w.trained:  # a trained, sharded policy is gathered whole for generation
            out.append(Component("gathered_policy", policy.params, w.compute_bytes, phases=("rollout",)))
        out.append(Component("kv_cache", kv_elements(policy, sequences, length), w.compute_bytes, phases=("rollout",)))
    return out


def phases_of(w: Workload) -> tuple[str, ...]:
    return (("training",) if w.trained else ()) + (("rollout",) if w.generation else ())


def estimate(w: Workload, gpus: int, sharding: str, processes_per_node: int, nodes: int = 1) -> dict:
    """GB per GPU by component and by phase, the peak, and host memory per node."""
    parts = components(w, gpus, sharding)
    gb = {c.name: c.bytes / GB for c in parts}
    device = {p: sum(c.bytes for c in parts if not c.host and p in c.phases) / GB for p in phases_of(w)}
    tokens = w.sequence * w.micro_batch
    checkpointed = sum(activations(s, tokens, True) for s in w.trained) / GB
    activations_full = sum(activations(s, tokens, False) for s in w.trained) / GB
    read = max([4 * s.params for s in w.trained] + [w.compute_bytes * s.params for s in (*w.frozen, *w.replicated)],
               default=0.0)
    loading = read if sharding != "none" else read * processes_per_node
    host = sum(c.bytes for c in parts if c.host) * processes_per_node + loading
    return {"weights": gb["weights"], "gradients": gb["gradients"], "optimizer": gb["optimizer"],
            "frozen": gb["frozen"] + gb["replicated"], "gathered_layers": gb.get("gathered_layers", 0.0),
            "autocast_weights": gb.get("autocast_weights", 0.0),
            "activations_checkpointed": checkpointed, "activations_full": activations_full,
            "gathered_policy": gb.get("gathered_policy", 0.0), "kv_cache": gb.get("kv_cache", 0.0),
            "phases": device, "peak": max(device.values(), default=0.0), "offloaded": sharding.endswith("_offload"),
            "host_per_node": host / GB + HOST_GB_PER_PROCESS * processes_per_node}


def profile_gpus(profile: dict) -> int:
    return (profile.get("nodes") or 1) * (profile.get("gpus_per_node") or 0)


def fits(kind: str, cfg, profile: dict, spec: dict | None = None) -> tuple[bool, dict | None]:
    """Whether one stage fits one GPU (and, offloading, the node's host memory) of a profile, and the estimate.
    A CPU profile (no GPUs) is not estimated."""
    gpus = profile_gpus(profile)
    w = workload(kind, cfg, spec, processes=max(gpus, 1))
    if w is None or gpus == 0:
        return True, None
    sharding = profile.get("sharding") or "none"
    if kind == "eval":  # evaluation spreads the model over the job's GPUs (tensor parallel), never trains
        sharding = "fsdp" if gpus > 1 else "none"
    est = estimate(w, gpus, sharding, profile.get("gpus_per_node") or 1, profile.get("nodes") or 1)
    gpu_ok = est["peak"] <= HEADROOM * (profile.get("gpu_mem_gb") or DEFAULT_GPU_MEM_GB)
    host_ok = profile.get("mem_gb") is None or est["host_per_node"] <= profile["mem_gb"]
    return gpu_ok and host_ok, est


def describe(est: dict) -> str:
    phases = " / ".join(f"{p} {gb:.1f}" for p, gb in est["phases"].items())
    states = (f"weights {est['weights']:.1f} + gradients {est['gradients']:.1f} (training) + optimizer "
              f"{est['optimizer']:.1f} + frozen models {est['frozen']:.1f}")
    states = f"{states} in host memory;" if est["offloaded"] else f"{states} +"
    copies = f"autocast copies {est['autocast_weights']:.1f} + " if est["autocast_weights"] else ""
    return (f"{est['peak']:.0f} GB/GPU ({phases}) = {states} {copies}gathered layers {est['gathered_layers']:.1f} + activations "
            f"{est['activations_checkpointed']:.1f} checkpointed / {est['activations_full']:.1f} not (training) + "
            f"gathered policy {est['gathered_policy']:.1f} + KV cache {est['kv_cache']:.1f} (rollout); host "
            f"{est['host_per_node']:.0f} GB/node")
