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


# ------------------------------------------------------------------------------------------------- integrity
def _weights_stage(tmp_path):
    stage = Stage("policy", {"x": "integrity"}, tmp_path)
    calls = []

    def work(d):
        calls.append(d)
        (d / "model").mkdir(exist_ok=True)
        (d / "model" / "model.safetensors").write_bytes(bytes(range(256)) * 64)
        return {"value": len(calls)}

    return stage, work, calls


def test_complete_records_each_output_file_with_size_and_hash(tmp_path):
    import hashlib
    import json

    stage, work, _ = _weights_stage(tmp_path)
    stage.run(work)
    files = json.loads((stage.dir / MARKER).read_text())["files"]
    weights = (stage.dir / "model" / "model.safetensors").read_bytes()
    path = stage.dir / "model" / "model.safetensors"
    assert files["model/model.safetensors"] == {"size": len(weights), "sha256": hashlib.sha256(weights).hexdigest(),
                                                 "mtime_ns": path.stat().st_mtime_ns}
    assert "files" not in stage.result()  # the manifest is the stage's, not part of its result


def test_a_truncated_output_is_found_and_the_stage_rebuilt(tmp_path, capsys):
    stage, work, calls = _weights_stage(tmp_path)
    stage.run(work)
    path = stage.dir / "model" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    result, reused = stage.run(work)
    assert not reused and len(calls) == 2 and result["value"] == 2
    out = capsys.readouterr().out
    assert "corrupt" in out and str(stage.dir) in out and "model/model.safetensors" in out
    assert len(path.read_bytes()) == 256 * 64


def test_a_grown_output_is_found_and_the_stage_rebuilt(tmp_path):
    stage, work, calls = _weights_stage(tmp_path)
    stage.run(work)
    path = stage.dir / "model" / "model.safetensors"
    with open(path, "ab") as f:  # e.g. a second writer appended to it
        f.write(b"\0" * 16)
    result, reused = stage.run(work)
    assert not reused and len(calls) == 2 and len(path.read_bytes()) == 256 * 64


def test_an_output_rewritten_at_the_same_size_is_found_by_its_hash(tmp_path):
    stage, work, calls = _weights_stage(tmp_path)
    stage.run(work)
    path = stage.dir / "model" / "model.safetensors"
    path.write_bytes(b"\xff" * len(path.read_bytes()))  # e.g. NaN-filled weights written over it: size kept
    result, reused = stage.run(work)  # the default check hashes a file written since the stage completed
    assert not reused and len(calls) == 2 and path.read_bytes() == bytes(range(256)) * 64


def test_same_size_corruption_in_place_is_found_by_the_full_check_only(tmp_path, monkeypatch):
    import os

    from harness.records import stages

    stage, work, calls = _weights_stage(tmp_path)
    stage.run(work)
    path = stage.dir / "model" / "model.safetensors"
    written = path.stat()
    path.write_bytes(b"\xff" * written.st_size)  # size and modification time kept: bits flipped on the disk
    os.utime(path, ns=(written.st_atime_ns, written.st_mtime_ns))
    assert stage.run(work)[1] is True  # the default check reads no unchanged file (fast at 13B)
    monkeypatch.setattr(stages, "VERIFY", {"mode": "full"})
    result, reused = stage.run(work)
    assert not reused and len(calls) == 2


def test_a_missing_output_is_found(tmp_path):
    stage, work, calls = _weights_stage(tmp_path)
    stage.run(work)
    (stage.dir / "model" / "model.safetensors").unlink()
    assert stage.run(work)[1] is False and len(calls) == 2


def test_a_run_waiting_on_another_processes_lock_says_so(tmp_path, capsys):
    import threading
    import time

    from filelock import FileLock

    stage = Stage("policy", {"x": "locked"}, tmp_path)
    stage.dir.parent.mkdir(parents=True)
    other = FileLock(str(stage.dir) + ".lock")
    other.acquire()  # another process is computing this stage
    done = []
    waiter = threading.Thread(target=lambda: done.append(stage.run(lambda d: {"v": 1})))
    waiter.start()
    deadline = time.monotonic() + 10
    while "waiting" not in capsys.readouterr().out and time.monotonic() < deadline:
        time.sleep(0.05)
    assert time.monotonic() < deadline, "no message while waiting on the lock"
    assert not done
    other.release()
    waiter.join(10)
    assert done and done[0][0]["v"] == 1
