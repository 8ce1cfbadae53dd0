"""Memory per GPU of a stage under a resource profile and its sharding: printed by `python -m harness.sweep plan`, and
the Slurm launcher refuses a job that cannot fit (naming the smallest profile that would).

    trained models   fp32 weights 4 B + fp32 gradients 4 B + AdamW's two fp32 moments 8 B = 16 B per parameter,
                     divided over the job's GPUs when sharded (fsdp, zero3: parameters, gradients and optimiser states
                     all sharded); unsharded (none) the harness trains in the model dtype: 2 + 2 + 4 = 8 B, whole on
                     every GPU. *_offload: all of it in host memory instead.
    frozen models    bf16 weights 2 B per parameter (DPO's and PPO's reference, the reward model), sharded likewise
    gathered layers  sharded: two decoder layers gathered at a time in bf16 (the one computing, the one prefetched)
    activations      per micro-batch sequence of s tokens, hidden h, L layers (Korthikanti et al. 2022, "Reducing
                     Activation Recomputation in Large Transformer Models", with flash attention: no s^2 term):
                       without checkpointing  34 s h L bytes
                       with checkpointing     2 s h L (each layer's input) + 34 s h (one layer recomputed)
                     plus the fp32 logits and log-softmax, 8 s V bytes (V: vocabulary)
    rollouts         PPO/GRPO generation: the policy gathered whole in bf16 (2 B per parameter) and the KV cache,
                     2 (K, V) x L x kv-width x 2 B per token, for generation_batch_size x (max prompt + max new tokens)
    peak             persistent (trained, frozen, gathered layers) + the larger of training (activations) and rollouts
    host             the offloaded states per node (*_offload), plus one model read whole while loading (the largest:
                     sharded, rank 0 reads it, 4 B per parameter when trained; unsharded, every process reads its own),
                     plus HOST_GB_PER_PROCESS for each process (assumed)

These are estimates from the stated arithmetic, not measurements (nothing here ran on a GPU); allocator fragmentation
and CUDA context (~1-2 GB) come on top, hence HEADROOM.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9
# Share of a GPU's memory a plan may fill (fragmentation, CUDA context, NCCL buffers): assumed.
HEADROOM = 0.9
# Host memory per training process besides the model states (CUDA context, Python, data, pinned buffers): assumed.
HOST_GB_PER_PROCESS = 10.0
# GPU memory when a profile does not say (A100 / H100 80GB).
DEFAULT_GPU_MEM_GB = 80.0


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    vocab: int
    kv_width: int  # key (= value) width per layer: kv heads x head dim


# Architectures by size (the models' config.json on the hub): Llama-2 7B/13B (no GQA), Llama-2 70B (8 KV heads of 128),
# Qwen2.5-0.5B (2 KV heads of 64). Another size takes the nearest one's shape (an estimate).
SHAPES = {0.5: Shape(896, 24, 151_936, 128), 7.0: Shape(4096, 32, 32_000, 4096), 13.0: Shape(5120, 40, 32_000, 5120),
          70.0: Shape(8192, 80, 32_000, 1024)}


def shape(params_b: float) -> Shape:
    return SHAPES[min(SHAPES, key=lambda b: abs(b - params_b) / b)]


@dataclass(frozen=True)
class Workload:
    """What one stage holds and runs on each GPU."""

    trained: tuple[float, ...]  # billions of parameters of each trained model
    frozen: tuple[float, ...]
    sequence: int  # tokens of one training sequence
    micro_batch: int  # sequences per forward on one GPU
    checkpointing: bool
    generation: tuple[float, int, int] | None = None  # (policy params_b, sequences at once, tokens each)


def workload(kind: str, cfg, spec: dict | None = None) -> Workload | None:
    """The models and sizes of one stage of run `cfg` (`spec`: the stage's spec); None for a stage with nothing to
    estimate (the tiny model)."""
    alg, model_b = cfg.algorithm, cfg.model.params_b or 0.0
    rm_b = cfg.reward_model.params_b or model_b
    if kind == "reward_model":
        rm = cfg.reward_model
        return Workload((rm_b,), (), rm.max_length, rm.per_device_batch_size, rm.activation_checkpointing)
    if kind == "policy" and alg.name == "dpo":  # policy trained, reference frozen; chosen and rejected in one batch
        return Workload((model_b,), (model_b,), alg.max_length, 2 * alg.per_device_batch_size, alg.activation_checkpointing)
    if kind == "policy" and alg.name == "ppo":
        value_b = rm_b if alg.value_from_reward_model else model_b
        return Workload((model_b, value_b), (model_b, rm_b), alg.max_length, alg.per_device_batch_size,
                        alg.activation_checkpointing, (model_b, alg.generation_batch_size, alg.max_length))
    if kind == "policy" and alg.name == "grpo":
        frozen = (model_b,) * (alg.beta > 0) + (rm_b,) * (alg.reward in ("reward_model", "both"))
        return Workload((model_b,), frozen, alg.max_length, alg.per_device_batch_size, alg.activation_checkpointing,
                        (model_b, alg.per_device_batch_size, alg.max_length))
    if kind == "eval":  # inference only, batches of 2k tokens: the policy (+ the reward model for best-of-N), or the
        # reward model alone (a reward-model benchmark's stage is keyed by it)
        if "reward_model" in (spec or {}):
            return Workload((), (rm_b,), 0, 0, True, (rm_b, cfg.eval.batch_size, 2048))
        frozen = (model_b,) + ((rm_b,) if alg.name == "best_of_n" else ())
        return Workload((), frozen, 0, 0, True, (model_b, cfg.eval.batch_size, 2048))
    return None


def activations(params_b: float, tokens: int, checkpointing: bool) -> float:
    s = shape(params_b)
    per_layer = 34 * tokens * s.hidden
    kept = 2 * tokens * s.hidden * s.layers + per_layer if checkpointing else per_layer * s.layers
    return kept + 8 * tokens * s.vocab


def kv_cache(params_b: float, sequences: int, tokens: int) -> float:
    s = shape(params_b)
    return 2 * s.layers * s.kv_width * 2 * sequences * tokens


def gathered_layers(params_b: float) -> float:
    s = shape(params_b)
    return 2 * 2 * params_b * 1e9 / s.layers  # two layers' parameters in bf16


def estimate(w: Workload, gpus: int, sharding: str, processes_per_node: int, nodes: int = 1) -> dict:
    """Bytes per GPU by component (GB), the peak, and host memory per node when offloading."""
    sharded, offload = sharding != "none", sharding.endswith("_offload")
    split = gpus if sharded else 1
    trained = sum(w.trained) * 1e9
    per_param = (4, 4, 8) if sharded else (2, 2, 4)  # weights, gradients, AdamW moments
    states = [trained * b / split for b in per_param]
    frozen = sum(w.frozen) * 2e9 / split
    gathered = max((gathered_layers(b) for b in (*w.trained, *w.frozen)), default=0.0) if sharded else 0.0
    on_host = (sum(states) + frozen) * split / nodes if offload else 0.0
    if offload:
        states, frozen = [0.0, 0.0, 0.0], 0.0
    tokens = w.sequence * w.micro_batch
    acts = {ck: sum(activations(b, tokens, ck) for b in w.trained) for ck in (True, False)}
    rollout = 0.0
    if w.generation:
        policy_b, sequences, length = w.generation
        gather = policy_b * 2e9 if (sharded and w.trained) else 0.0  # a trained, sharded policy is gathered whole
        rollout = kv_cache(policy_b, sequences, length) + gather
    persistent = sum(states) + frozen + gathered
    peak = persistent + max(acts[w.checkpointing], rollout)
    read = max([4e9 * b for b in w.trained] + [2e9 * b for b in w.frozen], default=0.0)
    loading = read if sharded else read * processes_per_node
    out = {"weights": states[0], "gradients": states[1], "optimizer": states[2], "frozen": frozen,
           "gathered_layers": gathered, "activations_checkpointed": acts[True], "activations_full": acts[False],
           "rollout": rollout, "peak": peak,
           "host_per_node": on_host + loading + HOST_GB_PER_PROCESS * GB * processes_per_node}
    return {k: v / GB for k, v in out.items()}


def profile_gpus(profile: dict) -> int:
    return (profile.get("nodes") or 1) * (profile.get("gpus_per_node") or 0)


def fits(kind: str, cfg, profile: dict, spec: dict | None = None) -> tuple[bool, dict | None]:
    """Whether one stage fits one GPU (and, offloading, the node's host memory) of a profile, and the estimate.
    A CPU profile (no GPUs) is not estimated."""
    w = workload(kind, cfg, spec)
    gpus = profile_gpus(profile)
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
    return (f"{est['peak']:.0f} GB/GPU = weights {est['weights']:.1f} + gradients {est['gradients']:.1f} + optimizer "
            f"{est['optimizer']:.1f} + frozen models {est['frozen']:.1f} + gathered layers {est['gathered_layers']:.1f} "
            f"+ max(activations {est['activations_checkpointed']:.1f} checkpointed / {est['activations_full']:.1f} not, "
            f"rollout {est['rollout']:.1f}); host {est['host_per_node']:.0f} GB/node")
