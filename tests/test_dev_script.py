"""`./dev run` and `./dev test` on a fresh clone: each sets up what it needs (the venv, the pinned install, for the tests
the Debian packages), again only what changed, then runs; `.ci/run` is `./dev test`. The real script runs in a copy of
the checkout's `dev`, `.ci/run` and pyproject.toml, with python3, dpkg-query, apt-get and id stood in for by scripts
that log what they are asked (creating a venv, installing packages or touching the system is not a test's to do)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

# python3 -m venv .venv: a venv whose python logs its arguments (and CI / offline settings) instead of running them.
PYTHON3 = """#!/bin/sh
[ "$1 $2" = "-m venv" ] || { echo "unexpected python3 $*" >&2; exit 1; }
mkdir -p "$3/bin"
cat > "$3/bin/python" <<'EOS'
#!/bin/sh
echo "python $* [CI=${CI:-} HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-} VIRTUAL_ENV=${VIRTUAL_ENV:-}]" >> "$LOG"
EOS
chmod +x "$3/bin/python"
printf 'VIRTUAL_ENV=%s; export VIRTUAL_ENV; PATH="%s/bin:$PATH"\\n' "$PWD/$3" "$PWD/$3" > "$3/bin/activate"
echo "venv $3" >> "$LOG"
"""
# the packages apt-get "installed" are what dpkg-query then reports
DPKG_QUERY = """#!/bin/sh
for p; do :; done
grep -qx "$p" "$INSTALLED" 2>/dev/null && echo "install ok installed" || echo "unknown ok not-installed"
"""
APT_GET = """#!/bin/sh
echo "apt-get $*" >> "$LOG"
[ "$1" = install ] && for p; do case "$p" in -*|install) ;; *) echo "$p" >> "$INSTALLED";; esac; done
exit 0
"""
ID = """#!/bin/sh
echo "$UID_FOR_TEST"
"""


@pytest.fixture
def clone(tmp_path):
    repo = tmp_path / "clone"
    (repo / ".ci").mkdir(parents=True)
    for name in ("dev", ".ci/run", "pyproject.toml"):
        shutil.copy2(ROOT / name, repo / name)
    shims = tmp_path / "shims"
    shims.mkdir()
    for name, text in (("python3", PYTHON3), ("dpkg-query", DPKG_QUERY), ("apt-get", APT_GET), ("id", ID)):
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    return repo


def dev(repo: Path, *args: str, uid: str = "0", script: str = "./dev") -> tuple[subprocess.CompletedProcess, list[str]]:
    log = repo.parent / "log"
    log.unlink(missing_ok=True)
    env = {"PATH": f"{repo.parent / 'shims'}:/usr/bin:/bin", "LOG": str(log), "INSTALLED": str(repo.parent / "installed"),
           "UID_FOR_TEST": uid, "HOME": str(repo.parent)}
    out = subprocess.run([script, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out, log.read_text().splitlines() if log.exists() else []


PIP_UPGRADE = "python -m pip install --quiet --upgrade pip"
PIP_INSTALL = "python -m pip install -e .[dev]"


def calls(log: list[str]) -> list[str]:
    return [line.split(" [")[0] for line in log]


def test_a_fresh_clone_sets_up_once_then_only_what_changed(clone):
    _, log = dev(clone, "test", "-x", "tests/test_run.py")
    assert calls(log) == [
        "venv .venv", PIP_UPGRADE, PIP_INSTALL, "apt-get update -qq", "apt-get install -y -qq chromium",
        "apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge",
        "python -m pytest -n 0 --dist loadfile -x tests/test_run.py"]
    assert log[-1].endswith(f"VIRTUAL_ENV={clone / '.venv'}]")  # pytest runs inside the venv

    out, log = dev(clone, "test")  # nothing changed: straight to pytest
    assert calls(log) == ["python -m pytest -n 0 --dist loadfile"] and out.stderr == ""
    _, log = dev(clone, "run", "seed=3", "algorithm=none")
    assert calls(log) == ["python -m harness seed=3 algorithm=none"]  # a run needs no test packages

    with open(clone / "pyproject.toml", "a") as f:
        f.write("\n# a pin changed\n")
    _, log = dev(clone, "run")
    assert calls(log) == [PIP_INSTALL, "python -m harness"]  # the install again, the venv kept
    _, log = dev(clone, "run")
    assert calls(log) == ["python -m harness"]


def test_without_root_the_missing_packages_are_one_line_and_the_tests_still_run(clone):
    out, log = dev(clone, "test", uid="1000")
    assert not [c for c in calls(log) if c.startswith("apt-get")]
    assert out.stderr.splitlines()[-1] == ("dev: the browser and Slurm tests need Debian packages missing here; as "
                                           "root: apt-get install -y chromium slurmctld slurmd slurm-client munge")
    assert calls(log)[-1] == "python -m pytest -n 0 --dist loadfile"


def test_ci_runs_the_test_command_offline(clone):
    _, log = dev(clone, script=".ci/run")
    assert calls(log)[0] == "venv .venv" and calls(log)[-1] == "python -m pytest -n 0 --dist loadfile"
    assert "[CI=true HF_HUB_OFFLINE=1 " in log[-1]
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec ./dev test")
    assert os.access(ROOT / "dev", os.X_OK) and os.access(ROOT / ".ci" / "run", os.X_OK)
