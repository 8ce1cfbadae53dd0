"""harness: reproduce and extend the ablations of "Unpacking DPO and PPO" (Ivison et al., NeurIPS 2024)."""

__version__ = "0.1.0"
