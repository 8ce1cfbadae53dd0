"""Evaluation: each benchmark of a suite is a stage of its own, scored on 0-100 (harness.eval.suite)."""


def benchmark_result(bench, metrics: dict, n: int, **extra) -> dict:
    """A runner's result: the configured metric as the score, all metrics, the sample count, extras."""
    if bench.metric not in metrics:
        raise KeyError(f"benchmark {bench.name!r}: metric {bench.metric!r} is not computed; available: {sorted(metrics)}")
    return {"score": float(metrics[bench.metric]), "metric": bench.metric, "metrics": metrics, "n": n,
            "samples": "samples.jsonl", **extra}
