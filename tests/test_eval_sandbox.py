"""The code sandbox contains hostile completions and scores them as failures."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from harness.eval.sandbox import PROJECT_ROOT, Limits, limits_from, run_python

LIMITS = Limits(timeout_s=3.0, memory_mb=512)


def sandbox_processes() -> int:
    """Processes still running a sandboxed program."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            count += b"program.py" in cmdline.read_bytes()
        except OSError:
            pass
    return count


def test_a_correct_program_passes_and_a_failing_one_fails():
    assert run_python("import numpy as np\nassert np.allclose([1.0], [1.0])", LIMITS).passed
    failed = run_python("assert 1 + 1 == 3", LIMITS)
    assert failed.status == "failed" and "AssertionError" in failed.stderr


def test_infinite_loop_is_stopped_at_the_time_limit():
    start = time.monotonic()
    outcome = run_python("while True:\n    pass", LIMITS)
    assert outcome.status == "timeout" and not outcome.passed
    assert time.monotonic() - start < LIMITS.timeout_s + 5


def test_fork_bomb_is_contained_and_leaves_nothing_behind():
    before = sandbox_processes()
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    outcome = run_python(bomb, Limits(timeout_s=2.0, memory_mb=512, max_processes=4))
    assert not outcome.passed
    deadline = time.monotonic() + 10  # the kernel reaps the namespace's processes; give a busy machine time
    while sandbox_processes() > before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sandbox_processes() <= before


def test_unbounded_allocation_hits_the_memory_limit():
    outcome = run_python("chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))", LIMITS)
    assert outcome.status == "failed" and "MemoryError" in outcome.stderr


def test_file_deletion_outside_its_directory_is_contained(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    outcome = run_python(f"import shutil\nshutil.rmtree({str(victim)!r})", LIMITS)
    assert not outcome.passed
    assert (victim / "keep.txt").read_text() == "precious"
    # its own working directory is writable
    assert run_python("open('scratch.txt', 'w').write('x')\nassert open('scratch.txt').read() == 'x'", LIMITS).passed


def test_project_files_are_invisible_and_untouchable():
    schema = PROJECT_ROOT / "harness" / "config" / "schema.py"
    before = schema.read_text()
    read = run_python(f"print(open({str(schema)!r}).read())", LIMITS)
    assert read.status == "failed" and "FileNotFoundError" in read.stderr
    assert not run_python(f"import os\nos.remove({str(schema)!r})", LIMITS).passed
    assert schema.read_text() == before


def test_no_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        outcome = run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)", LIMITS)
    finally:
        server.close()
    assert outcome.status == "failed"


def test_process_isolation_still_enforces_time_and_memory():
    limits = Limits(timeout_s=2.0, memory_mb=512, isolation="process")
    assert run_python("while True:\n    pass", limits).status == "timeout"
    assert "MemoryError" in run_python("x = bytearray(2 * 1024**3)", limits).stderr


def test_bad_sandbox_options_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown sandbox option\(s\) \['timeout'\]; valid: .*timeout_s"):
        limits_from({"timeout": 3})
    with pytest.raises(ValueError, match="isolation 'chroot'; valid"):
        run_python("pass", Limits(isolation="chroot"))
