"""docs/extending.md, done exactly as the page says: its files written (a code block whose info string names
`file=<path>`), its commands run (each line of a bash block, in a fresh directory, as a user types it), and what the
page says comes out checked. The tiny base model is copied in (building it again would only cost a minute); the
model example's hub is a local stand-in (tests/fake_hub.py) serving the tiny model under the page's hub id."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT
from fake_hub import FakeHub

PAGE = ROOT / "docs" / "extending.md"
BLOCK = re.compile(r"^```(\w+)(?: file=(\S+))?\n(.*?)^```", re.M | re.S)


def sections() -> dict[str, list[tuple[str, str | None, str]]]:
    """Section title -> its code blocks (language, file or None, text), in page order."""
    out = {}
    for part in re.split(r"^## ", PAGE.read_text(), flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        out[title.strip()] = [(m[1], m[2], m[3]) for m in BLOCK.finditer(body)]
    return out


@pytest.fixture
def project(tmp_path, tiny_base):
    """A fresh directory, the tiny base model's stage copied where runs started in it look for it."""
    stage = Path(tiny_base.path).parent
    shutil.copytree(stage, tmp_path / "results" / "stages" / "model" / stage.name)
    return tmp_path


def follow(title: str, project: Path, env: dict | None = None, between=None) -> list[subprocess.CompletedProcess]:
    """Write the section's files and run its commands; `between(i)` runs before the i-th command."""
    done = []
    for language, file, text in sections()[title]:
        if file:
            (project / file).parent.mkdir(parents=True, exist_ok=True)
            (project / file).write_text(text)
            continue
        assert language == "bash", (title, language)
        for line in [x for x in text.splitlines() if x.strip() and not x.startswith("#")]:
            if between:
                between(len(done))
            out = subprocess.run(["bash", "-c", line], cwd=project, capture_output=True, text=True, timeout=900,
                                 env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
            assert out.returncode == 0, f"{line}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            done.append(out)
    return done


def the_result(project: Path) -> dict:
    [path] = (project / "results" / "runs").glob("*/result.json")
    return json.loads(path.read_text())


def test_the_page_has_the_three_worked_examples():
    found = sections()
    assert list(found) == ["A benchmark", "A model", "An algorithm"]
    for blocks in found.values():
        assert [b for b in blocks if b[1]] and [b for b in blocks if b[0] == "bash"]


def test_a_benchmark_of_its_own_category_is_reported_apart(project):
    [run] = follow("A benchmark", project)
    result = the_result(project)
    arith, gsm8k = result["benchmarks"]["arith"], result["benchmarks"]["gsm8k"]
    assert arith["category"] == "arithmetic" and arith["name"] == "arith_8shot_cot_3" and arith["n"] == 3
    assert result["categories_beyond_paper"] == {"arithmetic": arith["score"]}
    assert result["categories"]["reasoning"] == gsm8k["score"]  # GSM8k alone: the new benchmark did not join
    assert f"beyond the paper (not in the Average): arithmetic {arith['score']:.1f}" in run.stdout


def test_a_model_from_the_hub_reaches_an_offline_run_through_the_mirror(project, tiny_base):
    (project / "hub").mkdir()
    shutil.copytree(tiny_base.path, project / "hub" / "my-org" / "my-sft-model")
    hub = FakeHub(project / "hub")
    connected = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_HOME": str(project / "hf")}
    try:  # the compute node's command runs after the hub is gone
        prefetch, run = follow("A model", project, connected, between=lambda i: i == 1 and hub.close())
    finally:
        hub.close()
    assert "fetched  model my-org/my-sft-model@main" in prefetch.stdout
    [entry] = json.loads((project / "mirror" / "manifest.json").read_text())
    assert entry["kind"] == "model" and len(entry["commit"]) == 40
    result = the_result(project)
    assert result["axes"]["model"] == "my_sft" and result["stages"]["model"]["path"] == "my-org/my-sft-model"
    assert "score" in result["benchmarks"]["gsm8k"]


def test_an_algorithm_of_one_module_and_one_config_trains_its_policy(project):
    follow("An algorithm", project)
    result = the_result(project)
    assert result["axes"]["algorithm"] == "hinge" and result["config"]["algorithm"]["loss_type"] == "hinge"
    assert not result["stages"]["policy"]["reused"] and result["training"]["global_step"] > 0
    assert "score" in result["benchmarks"]["gsm8k"]
