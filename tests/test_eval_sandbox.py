"""The code sandbox contains hostile completions and scores them as failures."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from harness.eval.sandbox import PROJECT_ROOT, Limits, limits_from, run_python

LIMITS = Limits(timeout_s=3.0, memory_mb=512)


def own_descendants() -> set[int]:
    """Pids of the processes this test process started, at any depth (other runs on the machine are not counted).
    A sandboxed program's orphans are re-parented inside its pid namespace, so they stay under it."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":  # zombies hold no resources
            parent[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return found


def test_a_correct_program_passes_and_a_failing_one_fails():
    assert run_python("import numpy as np\nassert np.allclose([1.0], [1.0])", LIMITS).passed
    failed = run_python("assert 1 + 1 == 3", LIMITS)
    assert failed.status == "failed" and "AssertionError" in failed.stderr


def test_infinite_loop_is_stopped_at_the_time_limit():
    start = time.monotonic()
    outcome = run_python("while True:\n    pass", LIMITS)
    assert outcome.status == "timeout" and not outcome.passed
    assert time.monotonic() - start < LIMITS.timeout_s + 30  # stopped, not run to some later limit


def test_fork_bomb_is_contained_and_leaves_nothing_behind():
    before = own_descendants()
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    outcome = run_python(bomb, Limits(timeout_s=2.0, memory_mb=512, max_processes=4))
    assert not outcome.passed
    deadline = time.monotonic() + 10  # the kernel reaps the namespace's processes; give a busy machine time
    while own_descendants() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert own_descendants() - before == set()


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
    """A server on the host's loopback is out of reach from the sandbox's empty network namespace (its loopback is
    down), while the same program outside the namespace connects."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {server.getsockname()[1]}), timeout=2)"
        outcome = run_python(program, LIMITS)
        assert run_python(program, Limits(timeout_s=3.0, memory_mb=512, isolation="process")).passed
    assert outcome.status == "failed"
    assert "Network is unreachable" in outcome.stderr or "ConnectionRefusedError" in outcome.stderr, outcome.stderr


def test_process_isolation_still_enforces_time_and_memory():
    limits = Limits(timeout_s=2.0, memory_mb=512, isolation="process")
    assert run_python("while True:\n    pass", limits).status == "timeout"
    assert "MemoryError" in run_python("x = bytearray(2 * 1024**3)", limits).stderr


def test_bad_sandbox_options_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown sandbox option\(s\) \['timeout'\]; valid: .*timeout_s"):
        limits_from({"timeout": 3})
    with pytest.raises(ValueError, match="isolation 'chroot'; valid"):
        run_python("pass", Limits(isolation="chroot"))


# ------------------------------------------------------------------------------------------------- as root
# CI and many clusters' containers run the harness as root: the program must still be an unprivileged stranger.
def test_the_program_runs_as_an_unprivileged_user():
    outcome = run_python("import os, sys\nsys.stderr.write(f'uid={os.getuid()} euid={os.geteuid()}')\n"
                         "assert os.getuid() != 0 and os.geteuid() != 0", LIMITS)
    assert outcome.passed, outcome.stderr


def test_host_shared_memory_is_not_writable():
    name = f"harness_sandbox_escape_{os.getpid()}"
    try:
        run_python(f"open('/dev/shm/{name}', 'w').write('x')", LIMITS)
        assert not Path(f"/dev/shm/{name}").exists()
    finally:
        Path(f"/dev/shm/{name}").unlink(missing_ok=True)
    # a private /dev/shm still works for the program itself (multiprocessing needs one)
    assert run_python("import multiprocessing\nmultiprocessing.Lock()", LIMITS).passed


def test_host_private_files_are_unreadable():
    probe = Path.home() / f".harness_sandbox_probe_{os.getpid()}"  # e.g. a credentials file in the home directory
    probe.write_text("secret")
    probe.chmod(0o600)
    try:
        for path in ("/etc/shadow", str(probe)):
            if Path(path).exists():
                outcome = run_python(f"print(open({path!r}).read())", LIMITS)
                assert outcome.status == "failed", path
                assert "PermissionError" in outcome.stderr or "FileNotFoundError" in outcome.stderr, outcome.stderr
    finally:
        probe.unlink()


def test_other_results_directories_and_private_files_are_unreadable(tmp_path):
    results = tmp_path / "other_checkout" / "results"
    results.mkdir(parents=True)
    (results / "index.jsonl").write_text('{"run_id": "secret"}\n')
    (results / "index.jsonl").chmod(0o644)
    private = tmp_path / "private.txt"
    private.write_text("root only")
    private.chmod(0o600)
    for path in (tmp_path, tmp_path.parent):
        path.chmod(0o755)  # readable by anyone on the host: only the sandbox may hide them
    for target in (results / "index.jsonl", private):
        outcome = run_python(f"print(open({str(target)!r}).read())", LIMITS)
        assert outcome.status == "failed", target


def test_only_the_working_directory_is_writable():
    name = f"harness_sandbox_escape_{os.getpid()}"
    for target in (f"/tmp/{name}", f"/var/tmp/{name}", f"/dev/{name}", f"/etc/{name}"):
        try:
            assert not run_python(f"open({target!r}, 'w').write('x')", LIMITS).passed, target
            assert not Path(target).exists(), target
        finally:
            Path(target).unlink(missing_ok=True)
    assert run_python("import os, tempfile\nwith tempfile.NamedTemporaryFile() as f:\n    f.write(b'x')\n"
                      "open(os.path.expanduser('~/y'), 'w').write('y')", LIMITS).passed


def test_the_process_limit_is_enforced():
    program = ("import os, time\nforked = 0\nfor _ in range(60):\n    try:\n        pid = os.fork()\n    except OSError:\n"
               "        break\n    if pid == 0:\n        time.sleep(5)\n        os._exit(0)\n    forked += 1\n"
               "print(forked)\nassert forked < 60, forked")
    outcome = run_python(program, Limits(timeout_s=4.0, memory_mb=512, max_processes=16))
    assert outcome.passed, outcome.stderr


def test_killing_the_harness_kills_the_program_and_leaves_no_temp_dir(tmp_path):
    import signal
    import subprocess
    import sys
    import tempfile

    harness = subprocess.Popen([sys.executable, "-c", "from harness.eval.sandbox import run_python, Limits\n"
                                "run_python('import time; time.sleep(60)', Limits(timeout_s=50))"], cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 30
    def running_program() -> set[int]:
        """The harness's descendants (at any depth) that run the sandboxed program."""
        out = set()
        for pid in own_descendants() - {harness.pid}:
            try:
                out |= {pid} if b"program.py" in Path(f"/proc/{pid}/cmdline").read_bytes() else set()
            except OSError:
                pass
        return out

    while not (program := running_program()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert program, "the sandboxed program never started"
    os.kill(harness.pid, signal.SIGKILL)  # no cleanup code of the harness runs
    harness.wait()

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 10
    while any(map(alive, program)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(alive, program))  # the parent-death signal reached the program
    assert run_python("pass", LIMITS).passed  # the next sandbox use removes what the killed one left
    assert not list(Path(tempfile.gettempdir()).glob(f"harness-sandbox-{harness.pid}-*"))
