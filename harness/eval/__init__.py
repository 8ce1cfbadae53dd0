"""Evaluation: each benchmark of a suite is a stage of its own, scored on 0-100 (harness.eval.suite)."""
