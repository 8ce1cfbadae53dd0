"""launch.sharding says what it does: the accelerate configs the TRL trainers get are read and checked (FSDP2 per
decoder layer, bf16 compute on fp32 parameters, a full state dict on save; ZeRO-3 likewise), and a combination that
cannot run where it starts fails at start with the reason instead of silently training unsharded."""

from __future__ import annotations

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils.launch import prepare_multi_gpu_env
from accelerate.utils import FullyShardedDataParallelPlugin
from transformers import LlamaForCausalLM, LlamaForSequenceClassification

from conftest import CONF, compose
from harness.config.checks import check
from harness.config.errors import ConfigError
from harness.train.common import trl_config
from harness.train.processes import command
from harness.train import sharding


def read(name: str) -> dict:
    return yaml.safe_load((CONF / "accelerate" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name, offload", [("fsdp", False), ("fsdp_offload", True)])
def test_fsdp_configs_are_fsdp2_per_decoder_layer_bf16_on_fp32_with_a_full_state_dict(name, offload, monkeypatch):
    cfg = read(name)
    assert str(load_config_from_file(str(CONF / "accelerate" / f"{name}.yaml")).distributed_type) == "DistributedType.FSDP"
    fsdp = cfg["fsdp_config"]
    assert fsdp["fsdp_version"] == 2
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    # the class accelerate wraps is the decoder layer of the paper's (Llama) policies and reward models
    assert [fsdp["fsdp_transformer_layer_cls_to_wrap"]] == LlamaForCausalLM._no_split_modules \
        == LlamaForSequenceClassification._no_split_modules
    # bf16 autocast over fp32 parameters: accelerate's mixed precision, not a bf16 model ("no" or "fp16" would not do)
    assert cfg["mixed_precision"] == "bf16"
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert fsdp["fsdp_offload_params"] is offload
    # what `accelerate launch --config_file` hands the processes, read back by accelerate's own FSDP plugin
    plugin = launched_plugin(name, monkeypatch)
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"]
    assert str(plugin.state_dict_type) == "StateDictType.FULL_STATE_DICT"
    assert type(plugin.cpu_offload).__name__ == ("CPUOffloadPolicy" if offload else "OffloadPolicy")
    plugin.set_mixed_precision("bf16")  # as the Accelerator does with the launch's mixed_precision
    assert plugin.mixed_precision_policy.param_dtype == torch.bfloat16


def launched_plugin(name: str, monkeypatch) -> FullyShardedDataParallelPlugin:
    args = launch_command_parser().parse_args(["--config_file", str(CONF / "accelerate" / f"{name}.yaml"),
                                               "--num_processes", "8", "train.py"])
    env = prepare_multi_gpu_env(_validate_launch_command(args)[0])
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    return FullyShardedDataParallelPlugin()


@pytest.mark.parametrize("name", ["fsdp", "fsdp_offload"])
@pytest.mark.parametrize("trainer", ["dpo", "grpo", "reward_model"])
def test_trl_trainers_under_accelerate_fsdp_reduce_gradients_in_fp32_every_micro_batch(trainer, name, monkeypatch, tmp_path):
    from trl import DPOConfig, GRPOConfig, RewardConfig

    cfg = compose("algorithm=grpo" if trainer == "grpo" else "algorithm=dpo", "model=tulu2_13b", "reward_model=uf_13b")
    recipe, cls = (cfg.reward_model, RewardConfig) if trainer == "reward_model" else \
        (cfg.algorithm, {"dpo": DPOConfig, "grpo": GRPOConfig}[trainer])
    bare = launched_plugin(name, monkeypatch)  # the environment `accelerate launch` gives the processes
    bare.set_mixed_precision("bf16")
    # accelerate alone reduces gradients in the compute dtype (shared/notes/conformance/scale-2.md, E)
    assert bare.mixed_precision_policy.reduce_dtype == torch.bfloat16
    args = trl_config(cls, recipe, tmp_path, "bfloat16", "none", "test", 0)
    # the plugin as the Trainer builds it from the arguments, then as the Accelerator sets the launch's mixed precision
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    plugin.set_mixed_precision("bf16")
    policy = plugin.mixed_precision_policy
    assert (policy.param_dtype, policy.reduce_dtype, policy.output_dtype) == (torch.bfloat16, torch.float32, torch.bfloat16)
    # everything else is the launch's config, as before
    assert plugin.fsdp_version == 2 and plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"]
    assert type(plugin.cpu_offload).__name__ == ("CPUOffloadPolicy" if name == "fsdp_offload" else "OffloadPolicy")
    # gradients reduce-scattered after every micro-batch (a rank holds its shard only), not deferred by no_sync
    assert args.accelerator_config.gradient_accumulation_kwargs == {"sync_each_batch": True}
    assert args.gradient_accumulation_steps > 1  # the recipe's accumulation, whose no_sync would hold whole gradients


def test_trl_trainers_without_accelerate_fsdp_keep_their_defaults(tmp_path, monkeypatch):
    from trl import RewardConfig

    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    args = trl_config(RewardConfig, compose("reward_model=uf_13b").reward_model, tmp_path, "bfloat16", "none", "t", 0)
    assert args.fsdp_plugin_args is None and args.accelerator_config.gradient_accumulation_kwargs is None


@pytest.mark.parametrize("name, offload", [("zero3", "none"), ("zero3_offload", "cpu")])
def test_zero3_configs_shard_everything_bf16_and_save_a_whole_model(name, offload):
    cfg = read(name)
    assert cfg["distributed_type"] == "DEEPSPEED" and cfg["mixed_precision"] == "bf16"
    ds = cfg["deepspeed_config"]
    assert ds["zero_stage"] == 3 and ds["zero3_init_flag"] is True
    assert ds["zero3_save_16bit_model"] is True  # one consolidated state dict on save, not per-rank partitions
    assert ds["offload_optimizer_device"] == ds["offload_param_device"] == offload


def test_each_sharding_picks_its_engine_and_reaches_the_launch_command(tmp_path):
    assert sharding.accelerate_config("dpo", "none") is None
    for name in ("fsdp", "fsdp_offload", "zero3", "zero3_offload"):
        assert sharding.accelerate_config("dpo", name) == CONF / "accelerate" / f"{name}.yaml"
        assert sharding.accelerate_config("grpo", name).is_file()
    assert sharding.accelerate_config("ppo", "fsdp") is None  # PPO shards itself (harness/train/fsdp.py)
    cmd = command(8, sharding.accelerate_config("dpo", "fsdp"), tmp_path)
    assert cmd[cmd.index("--config_file") + 1] == str(CONF / "accelerate" / "fsdp.yaml")
    assert cmd[cmd.index("--num_processes") + 1] == "8" and cmd[-2:] == ["harness.train.processes", str(tmp_path)]
    assert "--config_file" not in command(8, sharding.accelerate_config("ppo", "fsdp"), tmp_path)


def test_impossible_combinations_fail_when_the_run_is_composed():
    with pytest.raises(ConfigError, match="launch.sharding='zero9'; valid: \\['none', 'fsdp'"):
        check(compose("launch.sharding=zero9", "launch.processes=2"))
    with pytest.raises(ConfigError, match="launch.sharding=fsdp shards over several processes, but launch.processes=1"):
        check(compose("launch.sharding=fsdp"))
    with pytest.raises(ConfigError, match="PPO shards with torch FSDP2"):
        check(compose("algorithm=ppo", "reward_model=tiny", "launch.sharding=zero3", "launch.processes=8"))
    check(compose("algorithm=ppo", "reward_model=tiny", "launch.sharding=fsdp", "launch.processes=2"))
    check(compose("algorithm=dpo", "launch.sharding=zero3", "launch.processes=8"))


def test_accelerate_sharding_without_gpus_or_deepspeed_fails_at_start():
    # accelerate turns FSDP / DeepSpeed into plain data parallel on CPU: refused, not degraded
    with pytest.raises(ConfigError, match="launch.sharding=fsdp for algorithm=dpo runs through accelerate.*without GPUs"):
        sharding.check_runnable("dpo", "fsdp", cuda=False)
    sharding.check_runnable("ppo", "fsdp", cuda=False)  # PPO's own FSDP2 runs on CPU (gloo), tests/test_fsdp.py
    sharding.check_runnable("dpo", "none", cuda=False)
    sharding.check_runnable("dpo", "fsdp", cuda=True)
    deepspeed_here = __import__("importlib").util.find_spec("deepspeed") is not None
    if not deepspeed_here:  # this environment: no deepspeed
        with pytest.raises(ConfigError, match="launch.sharding=zero3 needs DeepSpeed, which is not installed"):
            sharding.check_runnable("grpo", "zero3", cuda=True)
