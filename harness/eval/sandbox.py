"""Run untrusted generated code: a separate process with a time limit, a memory limit, its own temporary directory,
and no way to touch the project's files.

    outcome = run_python("assert add(2, 3) == 5", Limits(timeout_s=5))

Layers (all on by default, `isolation: namespaces`):
  - a fresh process group in a fresh temporary working directory (HOME and TMPDIR too), a minimal environment,
    `python -I`; wall-clock timeout, after which the whole group is killed;
  - resource limits: address space (memory), CPU seconds, processes (fork bombs), file size, no core dumps;
  - Linux namespaces through util-linux `unshare`: a pid namespace whose init is the sandbox's own bootstrap (when it
    dies, with the harness, the kernel kills every process of the namespace: nothing the program started survives),
    no network, and a mount namespace in which every top-level directory but the system's (/usr, /etc, /lib ...), /tmp
    and the project's directories (`hide`) are covered by a fresh tmpfs, the interpreter's own files bound back in
    read-only (also when they live under /tmp); every other mount is remounted read-only, and the program gets a
    private /dev/shm, a private /tmp and a fresh tmpfs as its working directory, the only places it can write. Host
    files and unix sockets under /tmp, /run, /var or a home directory are out of its sight;
  - the program starts with no capabilities (`setpriv`), and, when the harness runs as root (CI, containers), as an
    unprivileged user id of its own (sandbox_uid): root-only files (/etc/shadow) stay unreadable, and the process limit
    holds and counts its processes alone;
  - the sandbox dies with the harness (PR_SET_PDEATHSIG on `unshare`, which passes it to the bootstrap), and a killed
    harness's temporary directory is removed by the next sandbox use;
  - stderr is read as it comes and only its end is kept (CAPTURED_STDERR): a program printing without end cannot grow
    the harness's memory; stdout is discarded. What it prints never decides the outcome.
`isolation: process` keeps only the first two layers, for machines without namespaces (a clear error says so).
A program that exits 0 passed; a timeout, a crash, a failed assert or a killed process is a failure.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ISOLATIONS = ("namespaces", "process")
# Bytes of a program's stderr read at a time and kept (the end), and characters of it an Outcome holds.
CAPTURED_STDERR, KEPT_STDERR = 1 << 16, 2000


@dataclass
class Limits:
    # Wall-clock seconds per program (open-instruct: 3 s for HumanEval, 10 s for MBPP).
    timeout_s: float = 10.0
    # Address-space limit of the program.
    memory_mb: int = 1024
    # Processes the program may run at once (a fork bomb hits this, then the timeout).
    max_processes: int = 16
    # Largest file it may write.
    max_file_mb: int = 16
    # namespaces (default) | process (resource limits only, for machines without namespaces).
    isolation: str = "namespaces"
    # Directories made invisible to the program, besides the project root and the current directory.
    hide: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    # passed | failed | timeout
    status: str
    returncode: int | None
    seconds: float
    # The end of what it wrote to stderr (a traceback ends there); earlier output is dropped as it comes.
    stderr: str = ""
    # Bytes of stderr dropped before that end. Not a failure: the exit status alone decides.
    stderr_dropped: int = 0

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class SandboxUnavailable(RuntimeError):
    pass


# Runs inside the namespaces as (namespace) root, as the pid namespace's init. It covers every host directory but the
# system's (and the hidden ones, and /tmp) with a fresh tmpfs into which the paths the program needs from beneath it
# (the interpreter's files, the way to its working directory) are bound back; makes every mount read-only; gives the
# program a private /dev/shm, a private writable /tmp and a fresh tmpfs as its working directory; then starts the
# program as an unprivileged user with no capabilities and its limits, and waits for it. It stays the namespace's init
# on purpose: when it dies (with `unshare`, so with the harness) the kernel kills every process of the namespace, and
# the program, not being the init, cannot escape that (a parent-death signal of its own is cleared by the change of user
# and could be cleared by the program itself).
BOOTSTRAP = r"""
import json, os, resource, subprocess, sys
cfg = json.loads(sys.argv[1])
def mount(*args, check=True):  # -n: no userspace mount table (it lives in /run, which gets covered)
    return subprocess.run(["mount", "-n", *args], check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
under = lambda path, top: path == top or path.startswith(top.rstrip("/") + "/")
tops = ["/" + e for e in os.listdir("/") if e not in cfg["system"] and os.path.isdir("/" + e) and not os.path.islink("/" + e)]
covered = [c for c in cfg["hide"] + tops + ["/tmp"] if not any(under(c, k) for k in cfg["keep"])]
covered = sorted({c for c in covered if not any(under(c, o) and c != o for o in covered)},
                 key=lambda c: (under(cfg["root"], c), c))  # the one holding the sandbox's own directory last
for i, path in enumerate(covered):
    # a fresh tmpfs is mounted beside, filled with what the program needs from beneath `path`, then moved over it
    stage = os.path.join(cfg["root"], f".cover{i}")
    os.makedirs(stage)
    size, mode = (f"{cfg['work_mb']}m", "1777") if path == "/tmp" else ("64k", "755")
    mount("-t", "tmpfs", "-o", f"size={size},mode={mode}", "tmpfs", stage)
    for keep in cfg["keep"] + [cfg["dir"]]:
        if under(keep, path):
            inside = os.path.join(stage, os.path.relpath(keep, path))
            os.makedirs(inside, exist_ok=True)
            if keep != cfg["dir"]:  # the working directory gets its own tmpfs below
                mount("--rbind", keep, inside)
    mount("--move", stage, path)
for point in sorted({line.split()[4] for line in open("/proc/self/mountinfo")}, key=len):
    if not point.startswith(("/proc", "/sys", "/dev")) and point != "/tmp":
        mount("-o", "remount,bind,ro", point, check=False)
owner = f",uid={cfg['uid']},gid={cfg['uid']}" if cfg["uid"] is not None else ""
if os.path.isdir("/dev/shm"):
    mount("-t", "tmpfs", "-o", f"size={cfg['work_mb']}m,mode=1777", "tmpfs", "/dev/shm")
mount("-t", "tmpfs", "-o", f"size={cfg['work_mb']}m,mode=700{owner}", "tmpfs", cfg["dir"])
with open(os.path.join(cfg["dir"], "program.py"), "w") as f:
    f.write(cfg["program"])
os.chdir(cfg["dir"])
drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
if cfg["uid"] is not None:
    drop += [f"--reuid={cfg['uid']}", f"--regid={cfg['uid']}", "--clear-groups"]
program = os.fork()
if program == 0:
    for name, value in cfg["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    os.execve("/usr/bin/setpriv" if os.path.exists("/usr/bin/setpriv") else drop[0],
              drop + [sys.executable, "-I", "program.py"], cfg["env"])
while True:  # the init reaps every orphan of the namespace, and ends with the program
    pid, status = os.wait()
    if pid == program:
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else 128 - code)
"""
# Top-level directories the program sees (read-only): the system's. Every other one (home directories, /tmp, /work,
# /srv, /mnt, /var, /run ...) is covered, so other checkouts, results directories and sockets are out of sight.
SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "proc", "sys", "dev")
# Who the program runs as when the harness is root: a user id of its own, one per sandbox, from a range no account
# uses (2^30 + harness pid x 256 + a counter). Not the shared `nobody`: the process limit counts a user's processes
# machine-wide, so the programs of concurrent sandboxes (other benchmarks, other runs) sharing one user ate each
# other's allowance, and could signal each other.
SANDBOX_UIDS = 1 << 30
_sandboxes = itertools.count()


def sandbox_uid() -> int:
    return SANDBOX_UIDS + (os.getpid() % (1 << 22)) * 256 + next(_sandboxes) % 256


def _processes_of_uid(uid: int) -> int:
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"Uid:\t{uid}\t" in status.read_text():
                count += 1
        except OSError:
            pass
    return count


def _unshare_args() -> list[str]:
    args = ["unshare", "--fork", "--kill-child", "--pid", "--mount-proc", "--net", "--mount", "--ipc", "--uts"]
    return args if os.geteuid() == 0 else args + ["--user", "--map-root-user"]


@functools.lru_cache(maxsize=None)
def namespaces_available() -> str | None:
    """None if `unshare` can build the sandbox here, else why not."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "util-linux `unshare`/`mount` are not installed"
    probe = subprocess.run(_unshare_args() + ["true"], capture_output=True, text=True)
    return None if probe.returncode == 0 else (probe.stderr.strip() or f"unshare exited {probe.returncode}")


def _keep_paths() -> list[str]:
    paths = {sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
             str(Path(sys.executable).resolve().parent)}
    return sorted(str(Path(p).resolve()) for p in paths)


def run_python(program: str, limits: Limits | None = None) -> Outcome:
    """Run `program` as a Python script under the limits; passed when it exits 0 in time."""
    limits = limits or Limits()
    if limits.isolation not in ISOLATIONS:
        raise ValueError(f"sandbox isolation {limits.isolation!r}; valid: {list(ISOLATIONS)}")
    remove_stale_dirs()
    root = Path(tempfile.mkdtemp(prefix=f"harness-sandbox-{os.getpid()}-"))
    root.chmod(0o755)  # the unprivileged program must be able to reach its working directory
    work = root / "work"
    work.mkdir()
    (work / "program.py").write_text(program)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    mb = 1 << 20
    program_uid = sandbox_uid() if os.geteuid() == 0 and limits.isolation == "namespaces" else None
    rlimits = {"RLIMIT_AS": limits.memory_mb * mb, "RLIMIT_CPU": int(limits.timeout_s) + 1,
               "RLIMIT_FSIZE": limits.max_file_mb * mb, "RLIMIT_CORE": 0, "RLIMIT_NOFILE": 256,
               # counted per user over the whole machine: a user of the program's own counts only its processes;
               # else what this user runs now, plus the allowance (root is exempt from it)
               "RLIMIT_NPROC": limits.max_processes if program_uid is not None
               else _processes_of_uid(os.getuid()) + limits.max_processes}
    # ("/" itself is never covered: a harness started from / would hide the system too)
    hide = sorted({str(Path(p).resolve()) for p in [PROJECT_ROOT, os.getcwd(), *limits.hide] if Path(p).exists()} - {"/"})
    cfg = {"root": str(root), "dir": str(work), "env": env, "rlimits": rlimits, "program": program,
           "work_mb": limits.max_file_mb * 2, "hide": hide,
           "keep": _keep_paths(), "uid": program_uid, "system": list(SYSTEM_DIRS)}
    if limits.isolation == "namespaces":
        why = namespaces_available()
        if why:
            raise SandboxUnavailable(f"the code sandbox needs Linux namespaces, which are unavailable here ({why}); "
                                     "set the benchmark's options.sandbox.isolation=process to run generated code "
                                     "under resource limits only (weaker: it can read the project's files)")
        cmd = _unshare_args() + [sys.executable, "-I", "-c", BOOTSTRAP, json.dumps(cfg)]
        preexec = _die_with_parent  # unshare --kill-child passes it on: the whole namespace dies with the harness
    else:
        cmd = [sys.executable, "-I", "program.py"]
        preexec = functools.partial(_limit_self, cfg)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec)
    try:
        err, dropped, finished = _tail_of(proc, start + limits.timeout_s)
        status = ("passed" if proc.returncode == 0 else "failed") if finished else "timeout"
    finally:
        _kill_group(proc)
        proc.stderr.close()
        shutil.rmtree(root, ignore_errors=True)
    return Outcome(status, proc.returncode, round(time.monotonic() - start, 3),
                   err[-KEPT_STDERR:].decode(errors="replace"), dropped)


def _tail_of(proc: subprocess.Popen, deadline: float) -> tuple[bytes, int, bool]:
    """(the last CAPTURED_STDERR bytes the program wrote to stderr, how many bytes before them were dropped, whether it
    exited before `deadline`): memory stays bounded whatever the program writes (441 MB in 10 s otherwise)."""
    tail, total = bytearray(), 0
    fd = proc.stderr.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # closed: the program (and what it started) ended, or closed its stderr
                break
            total += len(chunk)
            tail += chunk
            del tail[:-CAPTURED_STDERR]
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        return bytes(tail), total - len(tail), False
    return bytes(tail), total - len(tail), True


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the harness dies, even by SIGKILL (Linux PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def remove_stale_dirs() -> None:
    """Temporary directories of sandboxes whose harness process was killed (named harness-sandbox-<pid>-...)."""
    for path in Path(tempfile.gettempdir()).glob("harness-sandbox-*-*"):
        pid = path.name.split("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def _limit_self(cfg: dict) -> None:
    """isolation=process: limits set in the child between fork and exec."""
    _die_with_parent()
    for name, value in cfg["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def limits_from(options: dict | None) -> Limits:
    """Limits from a benchmark's `options.sandbox` mapping; an unknown key is an error naming the valid ones."""
    options = dict(options or {})
    valid = set(asdict(Limits()))
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown sandbox option(s) {unknown}; valid: {sorted(valid)}")
    return Limits(**options)
