"""The compose cache (harness.config.compose): a cached config is the composed one, typed; any change of an input
(a config file, a schema) composes again; a broken or disabled cache never gives a wrong config."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError

from harness.config import compose
from harness.pipeline import identity, planned_stages
from harness.sweep import plan
from conftest import CONF, ROOT


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_COMPOSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def no_compose(monkeypatch):
    def refuse(*args):
        raise AssertionError(f"composed again: {args}")

    monkeypatch.setattr(compose, "_compose", refuse)


def one_job_per_algorithm() -> list[list[str]]:
    jobs = {}
    for job in plan.sweep_jobs("all"):
        jobs.setdefault(next(o for o in job if o.startswith("algorithm=")), job)
    return list(jobs.values())


def test_a_cached_config_is_the_composed_one_typed_and_strict(cache, monkeypatch, tmp_path):
    jobs = [*one_job_per_algorithm(), [f"paths.home={tmp_path}", "scale=tiny", "algorithm=ppo", "reward_model=uf_13b"]]
    assert {next(o for o in j if o.startswith("algorithm=")) for j in jobs} >= {"algorithm=dpo", "algorithm=ppo",
                                                                                "algorithm=best_of_n", "algorithm=none"}
    fresh = [compose.compose(job) for job in jobs]
    expected = [(identity(cfg), [s.key for s in planned_stages(cfg)]) for cfg in fresh]  # reward models: entries
    n_files = len(list(cache.glob("*.pkl")))
    assert n_files > len(jobs)  # the runs, the sweep file's own compose and the entries reward models name
    no_compose(monkeypatch)
    for job, composed, (ident, keys) in zip(jobs, fresh, expected):
        cached = compose.compose(job)
        assert cached == composed, job
        for node in ("algorithm", "dataset", "reward_model", "eval"):
            assert OmegaConf.get_type(cached[node]) is OmegaConf.get_type(composed[node])
        assert identity(cached) == ident
        assert [s.key for s in planned_stages(cached)] == keys
        with pytest.raises(ConfigAttributeError):
            cached.algorithm.misspelt_key  # noqa: B018  (struct mode, as composed)


def test_editing_a_config_file_composes_again(cache, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    assert compose.compose(["algorithm=dpo"], conf_dir=conf).algorithm.beta == 0.1
    dpo = conf / "algorithm" / "dpo.yaml"
    dpo.write_text(dpo.read_text().replace("beta: 0.1 ", "beta: 0.3 "))
    assert compose.compose(["algorithm=dpo"], conf_dir=conf).algorithm.beta == 0.3
    assert len(list(cache.glob("*.pkl"))) == 2


def test_a_changed_schema_changes_the_key(cache):
    before = compose._cached_path(["algorithm=dpo"], False, CONF)
    ConfigStore.instance().store(group="schema/test_only", name="extra", node={"a": 1})
    try:
        assert compose._cached_path(["algorithm=dpo"], False, CONF) != before
    finally:
        del ConfigStore.instance().repo["schema"]["test_only"]
    assert compose._cached_path(["algorithm=dpo"], False, CONF) == before


def test_the_key_does_not_depend_on_what_the_process_did_before(cache):
    """Hydra stores its plugins' configs on first use: the key of a fresh process and of one that has composed agree
    (else the cache would miss in every other process)."""
    code = ("from harness.config import compose as c; a = c._cached_path(['algorithm=dpo'], False, c.CONF_DIR); "
            "c.compose(['algorithm=ppo']); print(a == c._cached_path(['algorithm=dpo'], False, c.CONF_DIR))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", out.stderr


def test_a_torn_cache_file_is_composed_again(cache):
    path = compose._cached_path(["algorithm=ppo"], False, CONF)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x04 torn")
    cfg = compose.compose(["algorithm=ppo"])
    assert cfg.algorithm.name == "ppo"
    assert compose.compose(["algorithm=ppo"]) == cfg  # rewritten whole


def test_the_cache_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_COMPOSE_CACHE", "0")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compose.compose(["algorithm=dpo"]).algorithm.name == "dpo"
    assert not any(tmp_path.rglob("*.pkl"))


def test_planning_a_sweep_imports_no_ml_library():
    """Stage keys come from configs (harness.planning): a plan loads no model, tokenizer or dataset, so torch,
    transformers, datasets and TRL stay unimported (lm-eval's model base class is: best-of-N's wrapper is one)."""
    code = ("import contextlib, io, sys; from harness.sweep.__main__ import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out: main(['plan', 'table3'])\n"
            "assert 'reward_model' in out.getvalue()\n"
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'trl', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_cold_cache_is_filled_on_several_processes(cache, monkeypatch):
    jobs = one_job_per_algorithm()
    assert compose.warm(jobs, workers=2) == len(jobs)
    assert compose.warm(jobs, workers=2) == 0  # nothing left to compose
    direct = [compose._compose(job, False, CONF) for job in jobs]
    no_compose(monkeypatch)
    assert [compose.compose(job) for job in jobs] == direct


def test_a_cache_that_cannot_be_written_warns_once_and_composes(monkeypatch, tmp_path, caplog):
    blocked = tmp_path / "not_a_dir"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("HARNESS_COMPOSE_CACHE", str(blocked))
    with caplog.at_level("WARNING", logger="harness.config.compose"):
        assert compose.compose(["algorithm=dpo"]).algorithm.name == "dpo"
        assert compose.compose(["algorithm=ppo"]).algorithm.name == "ppo"
    warnings = [r.getMessage() for r in caplog.records if r.name == "harness.config.compose"]
    assert len(warnings) == 1 and str(blocked) in warnings[0] and "HARNESS_COMPOSE_CACHE=" in warnings[0]
    assert blocked.read_text().startswith("a file")  # nothing of the user's overwritten
    assert compose.warm(one_job_per_algorithm(), workers=2) == 0  # no workers spent on a cache that keeps nothing


# ------------------------------------------------------------------------------------------------- reliability-2.md
def test_editing_a_sweep_file_behind_the_conf_sweep_symlink_composes_again(cache, tmp_path):
    """Probe 5: conf/sweep is a symlink to ../sweeps, which Python 3.11's rglob does not enter, so an edited sweep
    file was served stale from the cache (4 planned points instead of 6)."""
    shutil.copytree(CONF, tmp_path / "conf", symlinks=True)
    shutil.copytree(ROOT / "sweeps", tmp_path / "sweeps")
    assert (tmp_path / "conf" / "sweep").is_symlink()
    params = lambda: compose.compose(["+sweep=tiny"], hydra=True, conf_dir=tmp_path / "conf").hydra.sweeper.params  # noqa: E731
    assert params().seed == "1,2"
    tiny = tmp_path / "sweeps" / "tiny.yaml"
    tiny.write_text(tiny.read_text().replace("seed: 1,2", "seed: 1,2,3"))
    assert params().seed == "1,2,3"


def test_a_flipped_byte_in_a_cached_file_is_composed_again_never_loaded(cache, monkeypatch):
    """Probe 5: 14 of 40 single-byte flips of a cached pickle crashed and 1 loaded a different config. Every flip is
    now caught by the file's digest before unpickling."""
    composed = compose.compose(["algorithm=ppo"])
    path = compose._cached_path(["algorithm=ppo"], False, CONF)
    whole = path.read_bytes()
    for i in range(0, len(whole), max(1, len(whole) // 40)):
        flipped = bytearray(whole)
        flipped[i] ^= 0x01
        path.write_bytes(bytes(flipped))
        assert compose._read(path) is None, i
    path.write_bytes(whole[: len(whole) // 2])  # torn
    assert compose.compose(["algorithm=ppo"]) == composed  # composed again (and rewritten whole)
    no_compose(monkeypatch)
    assert compose.compose(["algorithm=ppo"]) == composed


class Planted:
    """What a stranger's pickle would do when loaded: leave a mark."""

    def __init__(self, mark):
        self.mark = str(mark)

    def __reduce__(self):
        return (exec, (f"open({self.mark!r}, 'w').write('ran')",))


@pytest.mark.parametrize("form", ["bare pickle", "with a valid digest"])
def test_a_pickle_planted_in_a_world_writable_cache_directory_never_runs(tmp_path, monkeypatch, caplog, form):
    """Probe 11: a pickle planted by `nobody` in a 1777 directory named by HARNESS_COMPOSE_CACHE ran code as root. A
    directory others can write, or a file of another owner, is not used (one warning)."""
    import hashlib
    import os
    import pickle

    signed = lambda payload: compose.MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload  # noqa: E731
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("HARNESS_COMPOSE_CACHE", str(shared))
    mark = tmp_path / "ran"
    payload = pickle.dumps(Planted(mark))
    planted = compose._cached_path(["algorithm=dpo"], False, CONF)
    planted.write_bytes(payload if form == "bare pickle" else signed(payload))
    os.chown(planted, 65534, 65534)  # nobody's
    with caplog.at_level("WARNING", logger="harness.config.compose"):
        assert compose.compose(["algorithm=dpo"]).algorithm.name == "dpo"
        assert compose._read(planted) is None
    assert not mark.exists()
    warnings = [r.getMessage() for r in caplog.records if r.name == "harness.config.compose"]
    assert len(warnings) == 1 and str(shared) in warnings[0] and "not a directory of the user's own" in warnings[0]
    assert sorted(p.name for p in shared.iterdir()) == [planted.name]  # and nothing written there
    # a private directory holding a file of another owner: that file is not loaded either
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("HARNESS_COMPOSE_CACHE", str(private))
    planted = compose._cached_path(["algorithm=dpo"], False, CONF)
    planted.write_bytes(signed(payload))
    os.chown(planted, 65534, 65534)
    assert compose._read(planted) is None and not mark.exists()
    os.chown(planted, os.geteuid(), os.getegid())  # the same bytes in the user's own file are loaded: ownership decides
    assert compose._read(planted) is None and mark.exists()  # (and exec gives back no config)
