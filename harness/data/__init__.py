"""Preference data and policy prompts, normalised to the one schema training uses, validated, cached, mirrored.

    python -m harness.data describe dataset=hh_rlhf        # rows, drops by reason, token lengths
    python -m harness.data prefetch dataset=hh_rlhf prompts=uf eval=paper paths.mirror=/data/mirror

The names below load on first use (`datasets` is heavy), so the package's light modules (e.g. harness.data.revisions)
import without it.
"""

import importlib

_EXPORTS = {
    "dataset_config": "mixture",
    "drop_overlength": "preferences", "identity": "assets", "benchmark_files_sha256": "assets", "load_preferences": "preferences",
    "normalize_pair": "preferences", "prepare_preferences": "preferences",
    "load_prompts": "prompts", "prepare_prompts": "prompts",
    "DataError": "validate", "DataReport": "validate", "Prepared": "validate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
