"""Content-addressed stages: keys follow exactly their spec, COMPLETE is written last, incomplete stages rerun."""

import pytest

from harness.records.stages import MARKER, Stage


def test_key_depends_on_spec_only(tmp_path):
    a, b = Stage("policy", {"x": 1, "y": [1, 2]}, tmp_path), Stage("policy", {"y": [1, 2], "x": 1}, tmp_path)
    assert a.key == b.key
    assert Stage("policy", {"x": 2, "y": [1, 2]}, tmp_path).key != a.key
    assert Stage("eval", {"x": 1, "y": [1, 2]}, tmp_path).key != a.key


def test_complete_stage_is_reused_and_not_rerun(tmp_path):
    calls = []

    def work(d):
        calls.append(d)
        (d / "out.txt").write_text("done")
        return {"value": 3}

    stage = Stage("policy", {"x": 1}, tmp_path)
    first, reused_first = stage.run(work)
    second, reused_second = stage.run(work)
    assert (reused_first, reused_second) == (False, True)
    assert len(calls) == 1 and first["value"] == second["value"] == 3


def test_a_stage_that_dies_is_not_complete_and_runs_again(tmp_path):
    stage = Stage("policy", {"x": 1}, tmp_path)

    def dies(d):
        (d / "partial.bin").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        stage.run(dies)
    assert not (stage.dir / MARKER).exists() and (stage.dir / "partial.bin").exists()
    result, reused = stage.run(lambda d: {"resumed_with": (d / "partial.bin").read_text()})
    assert not reused and result["resumed_with"] == "half"
