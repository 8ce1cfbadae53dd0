"""Hydra plugins of the harness sweeps (Hydra loads plugins only from the hydra_plugins package)."""
