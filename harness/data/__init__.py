"""Preference data and policy prompts, normalised to the one schema training uses."""

from harness.data.preferences import identity, load_preferences, normalize_pair
from harness.data.prompts import load_prompts

__all__ = ["identity", "load_preferences", "load_prompts", "normalize_pair"]
