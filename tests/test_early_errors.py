"""Early, one-line errors (reliability-2.md): a value that makes no sense, an empty or root path, a JSON-array data
line, no network, a full disk or Ctrl-C each end in one `error:` line naming the cause and the fix, before any work
where they can be found before it; and a huge data row costs memory in proportion to itself."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from conftest import ROOT, compose


def numeric_fields(node, prefix: str = ""):
    """(dotted key, value) of every number the schema declares under `node` (free-form maps left out)."""
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return
    for f in dataclasses.fields(schema):
        if f.name not in node or OmegaConf.is_missing(node, f.name):
            continue
        value = node[f.name]
        if isinstance(value, DictConfig):
            yield from numeric_fields(value, f"{prefix}{f.name}.")
            if OmegaConf.get_type(value) is dict:  # a map of typed entries (benchmarks, judges)
                for key in value:
                    if isinstance(value[key], DictConfig):
                        yield from numeric_fields(value[key], f"{prefix}{f.name}.{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield f"{prefix}{f.name}", value


@pytest.mark.parametrize("overrides", [["algorithm=dpo"], ["algorithm=ppo", "reward_model=tiny"],
                                       ["algorithm=grpo", "reward_model=tiny"]])
def test_every_number_of_the_schema_is_checked_for_nan_inf_and_sign_before_any_stage(overrides):
    """Probe (numeric checks): `algorithm.beta=-1` trained and exited 0; `beta=nan` and `learning_rate=inf` passed
    the check and trained to NaN weights. The check follows the schema's fields (no hand list that rots): every
    number of the composed config, here set to inf (floats) or -5 (ints), is refused, naming its key."""
    from harness.checks import NEGATIVE_MEANS, check
    from harness.config.errors import ConfigError

    cfg = compose(*overrides, "eval=smoke")
    fields = list(numeric_fields(cfg))
    assert {"algorithm.learning_rate", "eval.benchmarks.gsm8k.limit", "dataset.max_bad_fraction", "seed"} <= {k for k, _ in fields}
    for key, value in fields:
        bad = -5 if isinstance(value, int) else math.inf
        if bad == -5 and key.rsplit(".", 1)[-1] in NEGATIVE_MEANS:
            continue
        OmegaConf.update(cfg, key, bad)
        with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}=(-5|inf) must be"):
            check(cfg)
        OmegaConf.update(cfg, key, value)
    check(cfg)  # all restored


@pytest.mark.parametrize("override, message", [
    ("algorithm.beta=-1", r"algorithm\.beta=-1\.0 must be >= 0"),
    ("algorithm.beta=nan", r"algorithm\.beta=nan must be a finite number"),
    ("algorithm.learning_rate=inf", r"algorithm\.learning_rate=inf must be a finite number"),
    ("eval.benchmarks.gsm8k.limit=0", r"eval\.benchmarks\.gsm8k\.limit=0 must be >= 1"),
    ("eval.benchmarks.gsm8k.limit=-1", r"eval\.benchmarks\.gsm8k\.limit=-1 must be >= 1"),
    ("paths.results=", r"paths\.results='' is empty"),
    ("paths.home=/", r"paths\.home='/' is the root directory"),
])
def test_a_value_that_makes_no_sense_fails_in_one_line_before_anything_is_written(tmp_path, override, message):
    """Probes: `limit <= 0` failed only after training; `paths.results=` trained for 300 s writing /stages, /hydra and
    /mlflow.db at the file system's root."""
    from harness.config.errors import ConfigError
    from harness.pipeline import run

    roots = {p for p in ("/stages", "/mlflow.db", "/runs") if Path(p).exists()}
    cfg = compose(f"paths.home={tmp_path}", "tracking=none", override)
    with pytest.raises(ConfigError, match=message):
        run(cfg)
    assert not any((tmp_path / "results").glob("stages/*/*"))
    assert {p for p in ("/stages", "/mlflow.db", "/runs") if Path(p).exists()} == roots


@pytest.mark.parametrize("content, cause", [
    (b'["chosen", "rejected"]\n{"chosen": "a", "rejected": "b"}\n', r"line 1: a JSON list, not an object"),
    (b'[{"chosen": "a", "rejected": "b"}, 7]\n', r"item 2 of its JSON array is a JSON int, not an object"),
])
def test_a_json_array_line_is_named_with_its_line(tmp_path, content, cause):
    """Probe (bad data files): a file whose first line is a JSON array gave `DatasetGenerationError: An error
    occurred...`. (A whole-file JSON array of objects is still read.)"""
    from harness import data
    from harness.data.validate import DataError

    path = tmp_path / "mine.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"{path}: {cause}"):
        data.load_preferences(compose(f"dataset.files.train={path}", "dataset.eval_split=null").dataset)


def harness_cli(*overrides: str, env: dict | None = None, **popen) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "harness", *overrides], cwd=ROOT, env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def test_no_network_without_hf_hub_offline_fails_at_once_in_one_line_with_the_mirror_hint(tmp_path):
    """Probe (no network, HF_HUB_OFFLINE unset): exit 1 after 5 s with a raw `ConnectError` and no mirror hint (the
    split is read from a file inside its repo, which skipped the reachability probe)."""
    import socket

    with socket.socket() as s:  # a hub endpoint nothing answers at
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "harness", "dataset=hh_rlhf", f"paths.home={tmp_path}", "tracking=none"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "the hub cannot be reached" in out.stderr and "python -m harness.data prefetch dataset=hh_rlhf" in out.stderr
    assert "HF_HUB_OFFLINE=1" in out.stderr and time.monotonic() - start < 120


def test_sigint_mid_evaluation_prints_one_line(tmp_path, shared_stages, tiny_base):
    """Probe 13: SIGINT mid-eval printed a 148-line traceback. Now one line (exit 130); the traceback is in the log."""
    run = harness_cli("algorithm=none", "eval=smoke", "tracking=none", f"paths.home={tmp_path}",
                      f"paths.stages={shared_stages}", "eval.benchmarks.gsm8k.limit=null",
                      "eval.benchmarks.gsm8k.generation.max_new_tokens=256", f"eval.benchmarks.gsm8k.subset_seed={os.getpid()}")
    deadline = time.monotonic() + 240
    logs = tmp_path / "results" / "runs"
    while time.monotonic() < deadline and not any("running benchmark gsm8k" in p.read_text() for p in logs.glob("*/run.log")):
        time.sleep(0.2)
    assert time.monotonic() < deadline, "the evaluation never started"
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr[-3000:]
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: interrupted"), stderr
    assert len(stdout.strip().splitlines()) <= 2, stdout  # the stage line of the reused base model
    assert "KeyboardInterrupt" in next(logs.glob("*/run.log")).read_text()  # the traceback, in the log


def test_a_huge_data_row_costs_memory_in_proportion_to_itself(tmp_path, tiny_base):
    """Probe: a 50 MB row cost 10.4 GB of peak memory (`python -m harness.data describe`): its token lengths were
    computed before the length filter, tokenising it (~150x its size). A row too long by its characters alone is not
    tokenised. (Here a 4 MB row: the whole describe must stay within 25x it.)"""
    import json

    bundled = ROOT / "harness" / "assets" / "tiny" / "preferences_train.jsonl"
    rows = [json.loads(line) for line in bundled.read_text().splitlines()[:40]]
    huge = dict(rows[0], chosen=[rows[0]["chosen"][0], {"role": "assistant", "content": "word " * 800_000}])
    path = tmp_path / "with_a_huge_row.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [huge] + rows[1:]))
    row_mb = len(json.dumps(huge)) / 2**20
    # peak memory: VmHWM of the process's own memory (ru_maxrss would keep the forking parent's, the test process's)
    script = f"""
import re
from conftest import compose
from harness.data.describe import describe_dataset
from harness.models import ModelRef, load_tokenizer
peak = lambda: int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
cfg = compose("dataset.files.train={path}", "dataset.eval_split=null", "paths.home={tmp_path}")
tok = load_tokenizer(ModelRef({tiny_base.path!r}), "tulu")
before = peak()
print(describe_dataset(cfg, lambda: (tok, None)))
print("grew_mb", peak() - before)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"})
    assert out.returncode == 0, out.stderr[-3000:]
    grew = float(out.stdout.split("grew_mb")[-1])
    assert "1 pair(s) too long to tokenise" in out.stdout and "dropped        1 over_length" in out.stdout, out.stdout
    assert grew < 25 * row_mb, f"{grew:.0f} MB for a {row_mb:.1f} MB row"
