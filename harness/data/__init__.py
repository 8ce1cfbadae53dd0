"""Preference data and policy prompts (see harness.data.preferences)."""

from harness.data.preferences import identity, load_preferences, normalize_pair

__all__ = ["identity", "load_preferences", "normalize_pair"]
