"""Preference data and policy prompts, normalised to the one schema training uses, validated, cached, mirrored.

    python -m harness.data describe dataset=hh_rlhf        # rows, drops by reason, token lengths
    python -m harness.data prefetch dataset=hh_rlhf prompts=uf eval=paper paths.mirror=/data/mirror
"""

from harness.data.mixture import dataset_config
from harness.data.preferences import (drop_overlength, identity, load_preferences, normalize_pair,
                                      prepare_preferences)
from harness.data.prompts import load_prompts, prepare_prompts
from harness.data.validate import DataError, DataReport, Prepared

__all__ = ["DataError", "DataReport", "Prepared", "dataset_config", "drop_overlength", "identity", "load_preferences",
           "load_prompts", "normalize_pair", "prepare_preferences", "prepare_prompts"]
