"""Policy and reward-model training stages."""
