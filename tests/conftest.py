"""Shared fixtures: compose the real config, on CPU, offline, with one tiny base model built per session."""

from __future__ import annotations

import os

# Any hub access is a bug in a test: everything runs on bundled or locally built data and models.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One thread per process: tests start several processes at once (Slurm jobs, 2-process training) on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Composed configs are cached per session (harness.config.compose), not in the user's ~/.cache.
os.environ["HARNESS_COMPOSE_CACHE"] = os.path.join(__import__("tempfile").mkdtemp(prefix="harness-compose-"), "cache")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hydra import compose as hydra_compose  # noqa: E402
from hydra import initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import harness.config.schema  # noqa: E402,F401  (registers the schemas)

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


def torchrun_two(worker: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`tests/<worker> <args>` on 2 CPU processes through torchrun; asserts it exited 0. `--standalone`: the
    rendezvous store binds port 0 itself, so no free port is picked, closed and raced for."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(ROOT / "tests" / worker), *args],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def compose(*overrides: str) -> DictConfig:
    """The composed run config, exactly as `python -m harness <overrides>` would see it."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def checkout_commit() -> str:
    """`git rev-parse HEAD` of this checkout, with -dirty when a tracked file differs from it (what provenance records)."""
    import subprocess

    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()  # noqa: E731
    return git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


# The longest files (minutes each) start first: under `./dev test`'s two workers one started last runs alone at the end.
LONGEST_FIRST = ("tests/test_tiny_grid.py", "tests/test_slurm.py")


def pytest_collection_modifyitems(items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # one process: the files' own order

    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every other test keeps its order


# What torchrun sets in each process. Set in the test process (a colocated engine sets them for vLLM's
# external_launcher), every later `python -m harness` inherits them and accelerate starts a process group on one fixed
# port: two at once fail with EADDRINUSE (CI, stop 29). A test that sets one must leave the environment as it found it.
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_LAUNCHER_AT_START = {k: os.environ.get(k) for k in LAUNCHER_VARIABLES}


@pytest.fixture(autouse=True)
def no_launcher_variables_left_behind():
    yield
    left = {k: os.environ[k] for k in LAUNCHER_VARIABLES if os.environ.get(k) != _LAUNCHER_AT_START[k]}
    assert not left, f"the test left torchrun's variables in the test process: {left}"


@pytest.fixture(scope="session")
def shared_stages(tmp_path_factory) -> Path:
    """One stage store per test session, so the tiny base model is built once."""
    return tmp_path_factory.mktemp("stages")


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path


@pytest.fixture
def run_config(home, shared_stages):
    """compose(...) for a run writing results under this test's tmp dir, sharing the session's stages."""

    def make(*overrides: str) -> DictConfig:
        return compose(f"paths.home={home}", f"paths.stages={shared_stages}", *overrides)

    return make


@pytest.fixture(scope="session")
def tiny_base(shared_stages):
    """The tiny SFT model (built once per session) as a ModelRef."""
    from harness.models import base_model

    cfg = compose(f"paths.stages={shared_stages}")
    ref, _ = base_model(cfg.model, cfg.paths.stages)
    return ref


@pytest.fixture(scope="session")
def tiny_reward_model(shared_stages, tiny_base):
    """The tiny reward model (conf/reward_model/tiny.yaml, trained once per session) as a RewardModel."""
    from harness.records.tracking import Tracker
    from harness.train import reward

    cfg = compose(f"paths.stages={shared_stages}", "algorithm=ppo", "reward_model=tiny", "tracking=none")
    return reward.obtain(reward.plan(cfg), cfg.paths.stages, Tracker(cfg.tracking), "tests")


@pytest.fixture(scope="session")
def random_tiny(tmp_path_factory):
    """A tiny policy and reward model with random weights (the tiny architecture and tokenizer, no SFT: built in a
    second), saved as checkpoints: for known answers computed from the weights themselves, not from training.
    Returns (policy ModelRef, harness.train.reward_plan.RewardModel)."""
    import torch
    from transformers import LlamaForSequenceClassification

    from harness.config.schema import TinyModelSpec
    from harness.models import ModelRef
    from harness.tiny.model import build_model, build_tokenizer
    from harness.train.reward_plan import RewardModel

    root = tmp_path_factory.mktemp("random_tiny")
    spec = TinyModelSpec()
    tok = build_tokenizer(spec)
    policy = build_model(spec, tok)
    policy.save_pretrained(root / "policy")
    tok.save_pretrained(root / "policy")
    torch.manual_seed(1)
    rm = LlamaForSequenceClassification(policy.config.__class__(**{**policy.config.to_dict(), "num_labels": 1}))
    rm.save_pretrained(root / "reward_model")
    tok.save_pretrained(root / "reward_model")
    return ModelRef(str(root / "policy")), RewardModel(ModelRef(str(root / "reward_model")), "tulu", {})
