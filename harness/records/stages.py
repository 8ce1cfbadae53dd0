"""Content-addressed stages: a directory per (kind, hash of exactly what determines the output).

    results/stages/<kind>/<key>/
        spec.json        what the key was computed from (config subset, upstream keys, library versions)
        ...              the stage's outputs and checkpoints
        COMPLETE         written last, atomically: its presence means the outputs are whole. It holds the stage's
                         result and its manifest: every output file with its size, sha256 and modification time

A complete stage is reused and never recomputed; an incomplete one (killed half-way) is resumed by its trainer from
the last checkpoint in its directory, or redone. A file lock makes two processes that need the same stage at the same
time train it once: the second waits, then reuses.

Before a complete stage is reused its outputs are checked against the manifest: by default every file's size (a
missing, truncated or grown file) and the sha256 of any file written since (a same-size rewrite, e.g. NaN-filled
weights), reading no unchanged file; with `verify_stages=full` the sha256 of every file (also bits changed in place,
e.g. a disk or copy error; reads every byte). A COMPLETE without a manifest vouches for nothing and is not trusted.
A stage that fails the check is deleted and rebuilt, with a line on the console naming it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

from harness import console

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
# Libraries whose versions move results: part of every stage key.
VERSIONED = ("torch", "transformers", "trl", "datasets", "accelerate", "lm_eval", "tokenizers")
# How a complete stage is checked before reuse: "size" (default) or "full" (sizes and sha256); set from the run's
# `verify_stages` (harness.pipeline).
VERIFY = {"mode": "size"}
VERIFY_MODES = ("size", "full")
# Not outputs: the marker itself, resume checkpoints (deleted once training ends) and half-written temp files.
UNRECORDED_DIRS = ("checkpoints",)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def manifest(stage_dir: Path) -> dict[str, dict]:
    """Every output file of a stage (relative path -> size and sha256)."""
    files = {}
    for path in sorted(Path(stage_dir).rglob("*")):
        rel = path.relative_to(stage_dir)
        if not path.is_file() or rel.parts[0] in UNRECORDED_DIRS or rel.name == MARKER or ".tmp" in rel.name:
            continue
        stat = path.stat()
        files[rel.as_posix()] = {"size": stat.st_size, "sha256": _sha256(path), "mtime_ns": stat.st_mtime_ns}
    return files


def verify(stage_dir: Path, files: dict[str, dict], full: bool) -> str | None:
    """None when every recorded file is whole, else what is wrong with the first one that is not."""
    for rel, want in files.items():
        path = Path(stage_dir) / rel
        if not path.is_file():
            return f"{rel} is missing"
        stat = path.stat()
        if stat.st_size != want["size"]:
            return f"{rel} has {stat.st_size} bytes, {want['size']} when the stage completed"
        written = stat.st_mtime_ns != want.get("mtime_ns", stat.st_mtime_ns)  # manifests before mtimes: not known
        if (full or written) and _sha256(path) != want["sha256"]:
            return f"{rel} has a different sha256 than when the stage completed"
    return None


def problem(stage_dir: Path, full: bool) -> str | None:
    """Why the complete stage at `stage_dir` cannot be trusted, or None: its COMPLETE must parse and list the outputs
    it vouches for (a marker without them, e.g. replaced by `{}`, vouches for nothing), and each must be whole."""
    try:
        files = json.loads((Path(stage_dir) / MARKER).read_text()).get("files")
    except (OSError, ValueError, AttributeError) as exc:
        return f"{MARKER} is unreadable ({exc})"
    if not isinstance(files, dict):
        return f"{MARKER} lists no outputs with their sizes and sha256"
    return verify(stage_dir, files, full)


def content_digest(stage_dir: Path) -> str:
    """What a complete stage holds, as one digest of its outputs' names and sha256s (the manifest in COMPLETE; not
    when they were written: a rebuild with the same bytes is the same content)."""
    files = json.loads((Path(stage_dir) / MARKER).read_text())["files"]
    return digest({name: entry["sha256"] for name, entry in files.items()}, 16)


def library_versions() -> dict[str, str]:
    return dict(_library_versions())


@functools.lru_cache(maxsize=1)
def _library_versions() -> tuple[tuple[str, str], ...]:
    """Read once per process: parsing package metadata is slow, and every stage key needs it (a sweep plan: thousands)."""
    versions = []
    for name in VERSIONED:
        try:
            versions.append((name, metadata.version(name.replace("_", "-"))))
        except metadata.PackageNotFoundError:
            versions.append((name, "absent"))
    return tuple(versions)


def digest(obj: Any, length: int = 12) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


class CorruptStage(RuntimeError):
    """A complete stage's outputs changed after it completed (found when they are about to be used)."""


@dataclass
class Stage:
    kind: str
    spec: dict
    root: Path

    @property
    def key(self) -> str:
        return digest({"kind": self.kind, "spec": self.spec, "versions": library_versions()})

    @property
    def dir(self) -> Path:
        return Path(self.root) / self.kind / self.key

    @property
    def complete(self) -> bool:
        return (self.dir / MARKER).exists()

    def _marker(self) -> dict:
        return json.loads((self.dir / MARKER).read_text())

    def result(self) -> dict:
        return {k: v for k, v in self._marker().items() if k != "files"}

    def problem(self) -> str | None:
        """Why the complete stage cannot be reused (an output changed since COMPLETE, or no manifest), or None."""
        return problem(self.dir, VERIFY["mode"] == "full")

    def usable(self) -> bool:
        return self.complete and self.problem() is None

    def invalidate(self, label: str, reason: str) -> None:
        self.discard(label, f"is corrupt ({reason})")

    def discard(self, label: str, why: str) -> None:
        """Delete the complete stage so that it is rebuilt, saying so on the console."""
        console.say(f"[harness] {label}: the complete stage {self.dir} {why}; deleting it and rebuilding")
        log.warning("stage %s %s; rebuilding", self.dir, why)
        shutil.rmtree(self.dir, ignore_errors=True)

    def mark_complete(self, result: dict) -> None:
        """Write COMPLETE: the result and the manifest of the outputs as they are now."""
        write_atomic(self.dir / MARKER, json.dumps({**result, "files": manifest(self.dir)}, indent=2, default=str))

    def run(self, work: Callable[[Path], dict], label: str | None = None) -> tuple[dict, bool]:
        """Run `work(stage_dir) -> result` unless complete; returns (result, reused)."""
        label = label or f"{self.kind} {self.key}"
        if self.usable():
            print(f"[harness] reusing {label}: {self.dir}")
            console.stage(self.kind, label, self.dir, None, "reused")
            return self.result(), True
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        with locked(str(self.dir) + ".lock", label):
            if self.complete:  # another process finished it while we waited, or it is corrupt
                problem = self.problem()
                if problem is None:
                    print(f"[harness] reusing {label} (finished by another process): {self.dir}")
                    console.stage(self.kind, label, self.dir, None, "reused")
                    return self.result(), True
                self.invalidate(label, problem)
            resuming = self.dir.exists()
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "spec.json").write_text(json.dumps({"kind": self.kind, "spec": self.spec, "versions": library_versions()}, indent=2, default=str))
            print(f"[harness] {'resuming' if resuming else 'running'} {label}: {self.dir}")
            start = time.time()
            result = work(self.dir)
            result = {**result, "stage_seconds": round(time.time() - start, 2), "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            self.mark_complete(result)
        console.stage(self.kind, label, self.dir, result["stage_seconds"], "resumed" if resuming else "ran")
        return result, False


@contextmanager
def locked(path: str, label: str):
    """The stage's file lock; a process that has to wait for another says so (and where), then waits."""
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"[harness] waiting for {label}: another process is computing it (lock {path})", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def latest_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest whole `checkpoint-N` directory a Trainer left, for `resume_from_checkpoint`."""
    if not checkpoint_dir.is_dir():
        return None
    done = [p for p in checkpoint_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None
