"""A fake of vLLM 0.30.0 for CPU tests: the modules, names and signatures the harness, TRL 1.16 and lm-eval 0.4.13 use
(read from the 0.30.0 wheel), with transformers' `generate` doing the sampling. A test puts `tests/fake_vllm` on
sys.path (or PYTHONPATH); `vllm-0.30.0.dist-info` beside this package answers `importlib.metadata.version("vllm")`,
which TRL's availability check and lm-eval read.

What it fakes faithfully: `LLM(...)`'s keyword arguments (unknown ones are a TypeError, as vLLM's EngineArgs makes
them), `SamplingParams`' fields, defaults and checks, `generate` on token-id prompts with one output per prompt (`n`),
token ids through the stop token, the stop rule (the tokenizer's EOS and generation_config.json's unless `ignore_eos`,
plus `stop_token_ids`), `max_tokens`, log-probs of the sampled token (raw or processed, per `logprobs_mode`),
`sleep(level)` / `wake_up(tags)` (level 2 discards the weights: they must be loaded again before sampling, and nothing
runs while asleep) and the model runner's `load_weights` (whole tensors under HF names, shapes checked).
What it does not: speed, batching, CUDA, per-request seeds (it samples from the process's torch RNG, so a run through
it equals transformers' own sampling bit for bit; each request's `seed` is recorded, not used), penalties other than
the repetition penalty, prompt log-probs, server mode.
"""

__version__ = "0.30.0"
__version_tuple__ = (0, 30, 0)

from vllm.entrypoints.llm import LLM  # noqa: E402
from vllm.inputs import TokensPrompt  # noqa: E402
from vllm.outputs import CompletionOutput, RequestOutput  # noqa: E402
from vllm.sampling_params import SamplingParams  # noqa: E402

__all__ = ["__version__", "__version_tuple__", "LLM", "TokensPrompt", "SamplingParams", "RequestOutput",
           "CompletionOutput"]
