"""A real single-node Slurm cluster on this machine, for the launcher tests and for trying sweeps locally.

    python -m harness.sweep.slurm_local start [--dir DIR]    # installs the Debian packages if missing (root)
    eval "$(python -m harness.sweep.slurm_local env --dir DIR)"
    python -m harness -m +sweep=... hydra/launcher=slurm
    python -m harness.sweep.slurm_local stop [--dir DIR]

Everything lives under one directory (etc/ state/ spool/ log/ run/ munge/ bin/); nothing goes to /etc. Clients and
daemons find the cluster through SLURM_CONF. The ports are picked free at start, so a second cluster (another
checkout, a stale one) never collides. Daemons are stopped by the PIDs in their PID files, never by name.

Slurm here has no accounting daemon, so `sacct` cannot answer; bin/sacct is a stand-in that answers submitit's status
queries from `squeue` (finished jobs stay visible for a day: MinJobAge). The node advertises more CPUs than exist and
fake GPUs (GRES) and 2 TB of memory so paper-sized requests are accepted; only time limits are enforced (as Slurm does by default).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DEFAULT_DIR = Path(os.environ.get("HARNESS_SLURM_DIR", "/tmp/harness-slurm"))
DAEMONS = ("slurmd", "slurmctld", "munged")  # stop order

SACCT_STANDIN = """#!/bin/sh
# sacct stand-in for a cluster without slurmdbd: answers `sacct -o JobID,State,NodeList --parsable2 -j ID ...`
# (what submitit asks) from squeue, which keeps finished jobs for MinJobAge.
ids=""
while [ $# -gt 0 ]; do
  case "$1" in -j|--jobs) shift; ids="$ids,$1";; esac
  shift
done
echo "JobID|State|NodeList"
[ -n "$ids" ] && squeue --states=all --noheader --jobs "${ids#,}" --format "%i|%T|%N" 2>/dev/null
exit 0
"""


def install() -> None:
    """apt-get the Slurm and munge packages if a daemon is missing (needs root and the Debian registry)."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"Slurm is not installed and installing it needs root: apt-get install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], check=True, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(root: Path = DEFAULT_DIR) -> dict[str, str]:
    """Environment variables that point Slurm clients (sbatch, squeue, submitit) at this cluster."""
    root = Path(root)
    return {"SLURM_CONF": str(root / "etc" / "slurm.conf"),
            "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def _slurm_conf(root: Path, host: str, cpus: int, memory_mb: int, gpus: int) -> str:
    return f"""# Written by harness.sweep.slurm_local: a single-node cluster for tests (see its docstring).
ClusterName=harness
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/slurmd
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
KillWait=5
ReturnToService=2
# Trust the configured CPUs and GPUs rather than the hardware: the node may advertise more than it has.
SlurmdParameters=config_overrides
MinJobAge=86400
GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} Gres=gpu:{gpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _pid(root: Path, daemon: str) -> int | None:
    path = root / "run" / f"{daemon}.pid"
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    """Running and not a zombie (a stopped daemon lingers a few seconds as one)."""
    if not pid:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _run(*cmd: str, root: Path, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env={**os.environ, **env(root)}, capture_output=True, text=True, check=check, timeout=60)


def running(root: Path = DEFAULT_DIR) -> bool:
    return all(_alive(_pid(Path(root), d)) for d in DAEMONS)


def start(root: Path = DEFAULT_DIR, cpus: int = 128, gpus: int = 8, memory_mb: int = 2_000_000, timeout_s: float = 30) -> dict:
    """Install if needed, write the config, start munged, slurmctld and slurmd; return the client environment."""
    root = Path(root).resolve()
    install()
    if running(root):
        return env(root)
    stop(root)
    for stale in ("state", "spool", "log", "run"):  # a fresh cluster: no jobs or node states from an earlier one
        shutil.rmtree(root / stale, ignore_errors=True)
    for sub in ("etc", "state", "spool/slurmd", "log", "run", "munge", "bin", "dev"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    (root / "etc" / "slurm.conf").write_text(_slurm_conf(root, host, cpus, memory_mb, gpus))
    # Fake GPUs: GRES needs device files to count; plain files will do (nothing opens them).
    for i in range(gpus):
        (root / "dev" / f"gpu{i}").touch()
    (root / "etc" / "gres.conf").write_text(f"AutoDetect=off\nNodeName={host} Name=gpu File={root}/dev/gpu[0-{gpus - 1}]\n")
    sacct = root / "bin" / "sacct"
    sacct.write_text(SACCT_STANDIN)
    sacct.chmod(0o755)

    munge = root / "munge"
    munge.chmod(0o711)  # munged refuses a socket directory others can write
    key = munge / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    subprocess.run(["munged", f"--socket={munge}/munge.socket", f"--key-file={key}", f"--pid-file={root}/run/munged.pid",
                    f"--log-file={root}/log/munged.log", f"--seed-file={munge}/munge.seed", "--force"],
                   check=True, capture_output=True, text=True)
    subprocess.run(["slurmctld"], env={**os.environ, **env(root)}, check=True, capture_output=True, text=True)
    subprocess.run(["slurmd", "-N", host], env={**os.environ, **env(root)}, check=True, capture_output=True, text=True)
    _wait_idle(root, host, timeout_s)
    return env(root)


def _wait_idle(root: Path, host: str, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    state = ""
    while time.time() < deadline:
        out = _run("sinfo", "--noheader", "--format=%T", root=root, check=False)
        state = out.stdout.strip()
        if state in ("idle", "mixed", "allocated"):
            return
        if "down" in state or "drain" in state:
            _run("scontrol", "update", f"nodename={host}", "state=resume", root=root, check=False)
        time.sleep(0.25)
    raise RuntimeError(f"Slurm node {host} is {state!r} after {timeout_s}s; logs in {root / 'log'}")


def stop(root: Path = DEFAULT_DIR, timeout_s: float = 15) -> None:
    """Cancel every job, then stop slurmd, slurmctld and munged by their PID files."""
    root = Path(root).resolve()
    if _alive(_pid(root, "slurmctld")):
        _run("scancel", "--full", "--user=root", root=root, check=False)
    for daemon in DAEMONS:
        pid = _pid(root, daemon)
        if not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout_s
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.sweep.slurm_local", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"cluster directory (default {DEFAULT_DIR})")
    parser.add_argument("--cpus", type=int, default=128, help="CPUs the node advertises (may exceed the real ones)")
    parser.add_argument("--gpus", type=int, default=8, help="fake GPUs (GRES) the node advertises")
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    if args.command == "start":
        start(root, cpus=args.cpus, gpus=args.gpus)
    elif args.command == "stop":
        stop(root)
    if args.command in ("start", "env"):
        print("\n".join(f"export {k}={v}" for k, v in env(root).items()))
    if args.command == "status":
        print(_run("sinfo", root=root, check=False).stdout if running(root) else f"no cluster running in {root}")


if __name__ == "__main__":
    main()
