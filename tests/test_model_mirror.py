"""Models reach an offline compute node: `python -m harness.data prefetch --models` downloads them with the hub
client's snapshot_download (from a local server standing in for the hub, tests/fake_hub.py) into the offline mirror,
and a run with that mirror reads the model from it; a model it lacks is one error naming the prefetch command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, compose
from fake_hub import FakeHub
from harness.data.mirror import read_manifest
from harness.models import MissingModel, check_models
from harness.pipeline import run
from harness.planning import hub_models

REPO = "test-org/tiny-sft"
# the tiny model, served by the hub as a repo of its own (what model=qwen25_05b is to a real run)
AS_HUB_MODEL = ["model=tiny", "model.tiny=null", f"model.path={REPO}"]


@pytest.fixture
def hub(tmp_path, tiny_base):
    repo = tmp_path / "hub" / REPO
    shutil.copytree(tiny_base.path, repo)
    (repo / "README.md").write_text("a model card: not needed to run the model\n")
    (repo / "flax_model.msgpack").write_bytes(b"weights in another framework: not mirrored")
    server = FakeHub(tmp_path / "hub")
    yield server
    server.close()


def prefetch(hub: FakeHub, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
           "HF_HOME": str(hub.root.parent / "hf_home"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness.data", "prefetch", "--models", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_run_needs_its_policy_reward_model_base_and_local_judges():
    models = hub_models(compose("model=tulu2_13b", "algorithm=ppo", "reward_model=uf_70b", "eval=paper"))
    assert [(m.path, m.wanted_by) for m in models] == [
        ("allenai/tulu-2-13b", "model=tulu2_13b"), ("allenai/tulu-2-70b", "reward_model=uf_70b"),
        ("allenai/truthfulqa-truth-judge-llama2-7B", "eval=paper"), ("allenai/truthfulqa-info-judge-llama2-7B", "eval=paper"),
        ("tomh/toxigen_roberta", "eval=paper")]
    assert hub_models(compose()) == []  # the tiny model is built here, its judges too


def test_a_benchmark_already_scored_needs_no_judge(tmp_path):
    """A run checks it can read the judges of the benchmarks it still has to score only (a complete one keeps its
    verdicts), as it checks API keys."""
    from harness.planning import planned_stages
    from harness.records.stages import MARKER

    cfg = compose("model=tulu2_13b", "algorithm=none", "eval=paper", f"paths.stages={tmp_path}")
    stages = planned_stages(cfg)
    judged = {m.path for m in hub_models(cfg, stages)}
    assert judged == {"allenai/tulu-2-13b", "allenai/truthfulqa-truth-judge-llama2-7B",
                      "allenai/truthfulqa-info-judge-llama2-7B", "tomh/toxigen_roberta"}
    [toxigen] = [s for s in stages if s.kind == "eval" and s.spec["benchmark"]["name"].startswith("toxigen")]
    toxigen.dir.mkdir(parents=True)
    (toxigen.dir / MARKER).write_text("{}")
    assert {m.path for m in hub_models(cfg, stages)} == judged - {"tomh/toxigen_roberta"}


def test_prefetch_models_fills_the_mirror_and_a_run_reads_the_model_from_it(hub, tmp_path, run_config):
    mirror = tmp_path / "mirror"
    done = prefetch(hub, *AS_HUB_MODEL, f"paths.mirror={mirror}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"fetched  model {REPO}@main = " in done.stdout and "(model=tiny)" in done.stdout
    [entry] = read_manifest(mirror)
    _, files, commit = hub.repo(REPO)
    assert entry["kind"] == "model" and entry["hub_id"] == REPO and entry["commit"] == commit  # one commit, recorded
    copy = mirror / entry["file"]
    assert sorted(entry["files"]) == sorted(p.name for p in copy.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(entry["files"])
    assert not {"README.md", "flax_model.msgpack"} & set(entry["files"])  # config, tokenizer and weights only
    assert (copy / "model.safetensors").read_bytes() == (hub.root / REPO / "model.safetensors").read_bytes()

    downloads = len(hub.requests)
    again = prefetch(hub, *AS_HUB_MODEL, f"paths.mirror={mirror}")
    assert again.returncode == 0 and f"present  model {REPO}@main" in again.stdout
    assert len(hub.requests) == downloads  # nothing asked of the hub twice

    hub.close()  # the compute node: offline (HF_HUB_OFFLINE=1 in every test), the hub gone; only the mirror
    result = run(run_config(*AS_HUB_MODEL, "algorithm=none", "eval=smoke", "tracking=none", f"paths.mirror={mirror}"))
    assert result["stages"]["model"]["path"] == REPO and "score" in result["benchmarks"]["gsm8k"]

    shutil.rmtree(copy)
    with pytest.raises(MissingModel, match=rf"{REPO} .*not in the offline mirror {mirror}.*python -m harness.data "
                                           rf"prefetch --models model=tiny paths.mirror={mirror}"):
        run(run_config(*AS_HUB_MODEL, "algorithm=none", "eval=smoke", "tracking=none", f"paths.mirror={mirror}"))


def test_offline_without_a_mirror_a_model_not_in_the_hub_cache_is_refused(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # the hub client reads its cache directory at call time: an empty one here
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingModel, match=r"Qwen/Qwen2.5-0.5B-Instruct .*not on this machine.*HF_HUB_OFFLINE is set.*"
                                           r"prefetch --models model=qwen25_05b paths.mirror=<dir>"):
        check_models(hub_models(compose("model=qwen25_05b")), None)
    cached = tmp_path / "empty-cache" / "models--Qwen--Qwen2.5-0.5B-Instruct"
    (cached / "refs").mkdir(parents=True)
    (cached / "refs" / "main").write_text("a" * 40)
    (cached / "snapshots" / ("a" * 40)).mkdir(parents=True)
    (cached / "snapshots" / ("a" * 40) / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    check_models(hub_models(compose("model=qwen25_05b")), None)  # in the hub cache: transformers reads it offline


def test_prefetch_models_of_a_sweep_lists_what_the_mirror_holds(tmp_path, capsys):
    """`prefetch --models --sweep table1`: the data and the models of every run; a mirror that holds them all (as a
    connected machine's prefetch left it) downloads nothing."""
    from datasets import Dataset

    from harness.data import __main__ as data_cli
    from harness.data.mirror import add_model
    from harness.data.prefetch import prefetch as prefetch_data, run_sources, sweep_points
    from test_data_support import tulu_pair

    mirror = tmp_path / "mirror"
    configs = [compose(*p) for p in sweep_points(["table1"])]
    prefetch_data(list(dict.fromkeys(s for c in configs for s in run_sources(c))), str(mirror),
                  lambda s: Dataset.from_list([tulu_pair("q", "a", "b")]))
    models = {(m.path, m.revision) for c in configs for m in hub_models(c)}
    assert {p for p, _ in models} >= {"allenai/tulu-2-13b", "meta-llama/Llama-2-13b-hf", "tomh/toxigen_roberta"}
    for path, revision in models:
        add_model(mirror, path, revision, lambda hub_id, rev, into: (into / "config.json").write_text("{}") and "c" * 40)
    assert data_cli.main(["prefetch", "--models", "--sweep", "table1", f"paths.mirror={mirror}"]) == 0
    out = capsys.readouterr().out
    assert f"read {len(set(s for c in configs for s in run_sources(c)))} hub split(s) and {len(models)} model(s)" in out
    assert out.count("present  model ") == len(models) and "fetched" not in out
