"""A finished run answers at once: recognised from its record before the ML stack is imported.

`python -m harness <overrides>` of a run already recorded would reuse every stage and train nothing, yet importing
torch, transformers, TRL, lm-eval, MLflow and datasets alone takes seconds. `finished(cfg)` decides from the config's
identity (harness.records.identity), the results index, the run's result.json and the stages it lists (each whole as
its COMPLETE says, checked as `verify_stages` asks: sizes, or sha256 too with `full`); when all agree,
`python -m harness` prints the summary and exits. Whatever does not agree (another config, a failed
benchmark, a stage removed, other library versions, `eval.recompute=true`, a dry run) takes the full path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.records.results import read_index
from harness.records.stages import MARKER, content_digest, library_versions, problem


def _stage_dirs(result: dict) -> list[Path]:
    """Directories of the content-addressed stages a result was computed from (a hub model has none)."""
    dirs = [Path(s["dir"]) for s in result.get("stages", {}).values() if s.get("dir")]
    model = result.get("stages", {}).get("model", {})
    if model.get("key") and model.get("path"):  # a built base model: <stages>/model/<key>/model
        dirs.append(Path(model["path"]).parent)
    return dirs + [Path(b["dir"]) for b in result.get("benchmarks", {}).values()]


def complete_result(results_dir: Path, run_id: str, config_hash: str, full: bool = False) -> dict | None:
    """The recorded result of (run_id, config_hash) if it is whole and every stage behind it is still complete and
    whole: its outputs as its COMPLETE lists them, by size (`full`: by sha256 too, as `verify_stages=full` asks)."""
    if not any(r.get("run_id") == run_id and r.get("config_hash") == config_hash for r in read_index(results_dir)):
        return None
    try:
        result = json.loads((Path(results_dir) / "runs" / run_id / "result.json").read_text())
    except (OSError, ValueError):
        return None
    if result.get("config_hash") != config_hash or any("error" in b for b in result.get("benchmarks", {}).values()):
        return None
    recorded = result.get("provenance", {}).get("versions", {})
    if any(recorded.get(name) != version for name, version in library_versions().items()):
        return None  # stage keys include these versions: the full path would compute new stages
    if any(problem(d, full) for d in _stage_dirs(result)):
        return None  # the full path names the stage and rebuilds it
    content = _policy_content(result)
    if any("policy_content" in b and b["policy_content"] != content for b in result.get("benchmarks", {}).values()):
        return None  # scored from other weights of the policy (rebuilt since): the full path scores them again
    return result


def _policy_content(result: dict) -> str | None:
    """The content digest of the stage that made the run's policy (harness.models.stage_content), if one did."""
    policy = result.get("stages", {}).get("policy", {})
    path = Path(policy["dir"]) / "model" if policy.get("dir") else Path(policy.get("path") or "hub-id")
    made_by = path.parent  # <stages>/<kind>/<key>/model; a hub id is a relative path that has none
    return content_digest(made_by) if path.is_absolute() and (made_by / MARKER).exists() else None


def finished(cfg) -> dict | None:
    """The run's complete record, or None when the run has work to do (or is not a plain run)."""
    if cfg.get("dry_run") or cfg.eval.get("recompute") or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    from harness.checks import check
    from harness.config.errors import ConfigError
    from harness.records.identity import identity

    try:
        check(cfg)
        config_hash, run_id = identity(cfg)
    except ConfigError:
        return None  # the full path reports it
    return complete_result(Path(cfg.paths.results), run_id, config_hash, cfg.get("verify_stages") == "full")


def report_finished(result: dict) -> None:
    """The summary of a finished run answered again: this time every stage was reused (the record says what the
    first invocation did)."""
    from harness.records.results import summary_table

    print(f"[harness] run {result['run_id']} is complete (recorded {result.get('recorded_at')}): nothing to compute; "
          "eval.recompute=true rescores its benchmarks")
    print(summary_table(result | {"stages": {k: v | {"reused": True} for k, v in result.get("stages", {}).items()}}))
