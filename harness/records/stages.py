"""Content-addressed stages: a directory per (kind, hash of exactly what determines the output).

    results/stages/<kind>/<key>/
        spec.json        what the key was computed from (config subset, upstream keys, library versions)
        ...              the stage's outputs and checkpoints
        COMPLETE         written last, atomically: its presence means the outputs are whole

A complete stage is reused and never recomputed; an incomplete one (killed half-way) is resumed by its trainer from
the last checkpoint in its directory, or redone. A file lock makes two processes that need the same stage at the same
time train it once: the second waits, then reuses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from harness import console

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
# Libraries whose versions move results: part of every stage key.
VERSIONED = ("torch", "transformers", "trl", "datasets", "accelerate", "lm_eval", "tokenizers")


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

    def result(self) -> dict:
        return json.loads((self.dir / MARKER).read_text())

    def run(self, work: Callable[[Path], dict], label: str | None = None) -> tuple[dict, bool]:
        """Run `work(stage_dir) -> result` unless complete; returns (result, reused)."""
        label = label or f"{self.kind} {self.key}"
        if self.complete:
            print(f"[harness] reusing {label}: {self.dir}")
            console.stage(self.kind, label, self.dir, None, "reused")
            return self.result(), True
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.dir) + ".lock"):
            if self.complete:  # another process finished it while we waited
                print(f"[harness] reusing {label} (finished by another process): {self.dir}")
                console.stage(self.kind, label, self.dir, None, "reused")
                return self.result(), True
            resuming = self.dir.exists()
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "spec.json").write_text(json.dumps({"kind": self.kind, "spec": self.spec, "versions": library_versions()}, indent=2, default=str))
            print(f"[harness] {'resuming' if resuming else 'running'} {label}: {self.dir}")
            start = time.time()
            result = work(self.dir)
            result = {**result, "stage_seconds": round(time.time() - start, 2), "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            write_atomic(self.dir / MARKER, json.dumps(result, indent=2, default=str))
        console.stage(self.kind, label, self.dir, result["stage_seconds"], "resumed" if resuming else "ran")
        return result, False


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
