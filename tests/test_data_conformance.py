"""Data as the paper built it: one split's files read (asserted on what the loader is asked for), pinned revisions on
every hub source in conf/, unpinned reads warned about once, and upstream mirrors that hold only the capped rows."""

from __future__ import annotations

import warnings
from pathlib import Path

import datasets
import pytest
from conftest import compose
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from test_data_support import mirror_rows

from harness.data import hub
from harness.data.mirror import HubSplit, MirrorMissing, read_manifest
from harness.data import prefetch as prefetch_module
from harness.data.prefetch import prefetch
from harness.data.preferences import hub_sources, prepare_preferences, upstream_split
from harness.data.prompts import hub_sources as prompt_sources

CONF = Path(__file__).resolve().parent.parent / "conf"
PREFERENCE_DATA_COMMIT = "6e87e7ba11eeb2a21db459cf13267f62d1feea23"


@pytest.fixture
def loader_calls(monkeypatch):
    """What harness.data.hub asks datasets.load_dataset for (the boundary with the hub), answered with one row."""
    calls = []

    def record(path, **kwargs):
        calls.append((path, kwargs))
        return datasets.Dataset.from_list([{"chosen": [], "rejected": []}])

    monkeypatch.setattr(hub, "load_dataset", record)
    monkeypatch.setattr(hub, "load_dataset_builder", lambda *a, **k: pytest.fail(f"repo layout resolved: {a}"))
    return calls


def test_a_released_split_reads_only_its_own_file_at_the_pinned_commit(loader_calls):
    cfg = compose("dataset=hh_rlhf").dataset
    [source] = hub_sources(cfg)
    source.load(mirror=None)
    assert loader_calls == [("json", {"data_files": {"train": [
        f"hf://datasets/allenai/tulu-2.5-preference-data@{PREFERENCE_DATA_COMMIT}/data/hh_rlhf-00000-of-00001.jsonl"]},
        "split": "train"})]


def test_prm800k_reads_the_github_file_at_its_commit_and_alpacafarm_its_repo_file(loader_calls):
    source = upstream_split(compose("dataset=prm800k", "dataset.source=upstream").dataset)
    source._replace(seed=None).load(mirror=None)
    alpaca = upstream_split(compose("dataset=alpaca_farm_human", "dataset.source=upstream",
                                    "dataset.upstream_revision=0123456789abcdef0123456789abcdef01234567").dataset)
    alpaca._replace(seed=None).load(mirror=None)
    assert [c[1]["data_files"]["train"] for c in loader_calls] == [
        ["https://github.com/openai/prm800k/raw/00811d6de065642a6967b9017d4cee59550c0ef4/prm800k/data/phase2_train.jsonl"],
        ["hf://datasets/tatsu-lab/alpaca_farm@0123456789abcdef0123456789abcdef01234567/alpaca_human_preference.json"]]


def _repo(root: Path) -> Path:
    """A dataset repo laid out as the hub serves script-free datasets: one file per split under data/."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "wanted-00000-of-00001.jsonl").write_text('{"x": 1}\n{"x": 2}\n')
    (root / "data" / "other-00000-of-00001.jsonl").write_text('{"x": 3}\n')
    return root


def test_without_data_files_the_repo_layout_names_the_split_files_and_only_those_are_read(tmp_path, monkeypatch):
    repo = _repo(tmp_path / "repo")
    calls = []
    real = hub.load_dataset

    def record(path, **kwargs):
        calls.append((path, kwargs))
        return real(path, **kwargs, cache_dir=str(tmp_path / "cache"))

    monkeypatch.setattr(hub, "load_dataset", record)
    rows = HubSplit(str(repo), None, "wanted", hub.PIN_PENDING).load(mirror=None)
    assert rows["x"] == [1, 2]
    assert [(p, [Path(f).name for f in k["data_files"]["train"]]) for p, k in calls] == [
        ("json", ["wanted-00000-of-00001.jsonl"])]
    with pytest.raises(ValueError, match=r"has no split 'missing'; splits: \['other', 'wanted'\]"):
        hub.split_files(str(repo), None, "missing", None)


def test_an_unpinned_read_warns_once_per_source(tmp_path, loader_calls):
    hub._warned.clear()
    pending = HubSplit("org/set", None, "train", hub.PIN_PENDING, "data.jsonl")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        pending.load(mirror=None)
        pending.load(mirror=None)
        HubSplit("org/set", None, "train", "0123456789abcdef0123456789abcdef01234567", "data.jsonl").load(mirror=None)
    unpinned = [w for w in seen if issubclass(w.category, hub.UnpinnedRevision)]
    assert len(unpinned) == 1 and "org/set split train is read at revision 'main'" in str(unpinned[0].message)
    assert loader_calls[0][1]["data_files"]["train"] == ["hf://datasets/org/set/data.jsonl"]  # main: no @revision


def _conf_sources() -> dict[str, list[HubSplit]]:
    """Every hub source of every conf/dataset and conf/prompts entry, under each source it can be read from (a
    mixture's components are walked as entries of their own). Each group is composed alone: a whole run config per
    entry would take a minute."""
    out = {}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for group, sources in (("dataset", hub_sources), ("prompts", prompt_sources)):
            for path in sorted((CONF / group).glob("*.yaml")):
                cfg = hydra_compose(config_name=None, overrides=[f"+{group}={path.stem}"])[group]
                out[f"{group}={path.stem}"] = sources(cfg)
                if group == "dataset" and cfg.upstream_hub_id:
                    cfg.source = "upstream"
                    out[f"{group}={path.stem} source=upstream"] = sources(cfg)
    return out


def test_every_hub_source_in_conf_has_a_revision():
    # conf/eval/benchmark (the benchmarks' revisions) is issue 11's: walked there.
    sources = _conf_sources()
    assert sum(len(s) for s in sources.values()) > 35  # every dataset (both routes) and prompt set was walked
    unset = {k: [s.hub_id for s in v if not s.revision] for k, v in sources.items()}
    assert {k: v for k, v in unset.items() if v} == {}
    revisions = {s.revision for v in sources.values() for s in v}
    assert revisions <= {hub.PIN_PENDING} | {r for r in revisions if hub.pinned(r)}  # a commit, or marked pending
    released = {s.revision for v in sources.values() for s in v if s.hub_id == "allenai/tulu-2.5-preference-data"}
    assert released == {PREFERENCE_DATA_COMMIT}
    assert {s.revision for v in sources.values() for s in v if s.hub_id == "openai/prm800k"} == {
        "00811d6de065642a6967b9017d4cee59550c0ef4"}


def _shp_rows(n: int) -> list[dict]:
    return [{"history": f"question {i}?", "human_ref_A": f"a{i}", "human_ref_B": f"b{i}", "labels": i % 2} for i in range(n)]


def test_an_upstream_mirror_holds_only_the_seeded_capped_rows_keyed_by_seed_and_cap(tmp_path):
    cfg = compose("dataset=shp2", "dataset.source=upstream", "dataset.upstream_max_rows=4").dataset
    full = datasets.Dataset.from_list(_shp_rows(10))
    [entry] = [d for d in prefetch(hub_sources(cfg), str(tmp_path), lambda s: full)]
    assert entry["file"].endswith("stanfordnlp/SHP-2/default/train@main.seed42-cap4.parquet")
    [manifest] = read_manifest(tmp_path)
    assert manifest["rows"] == 4 and manifest["sample"] == {"seed": 42, "cap": 4, "of_rows": 10}
    assert manifest["format"] == "parquet" and manifest["pinned"] is False
    mirrored = datasets.Dataset.from_parquet(str(tmp_path / manifest["file"]))
    # The conversion script's rows: shuffle(seed=42), then the first min(cap, n).
    assert mirrored["history"] == full.shuffle(seed=42).select(range(4))["history"]
    pairs = prepare_preferences(cfg, mirror=str(tmp_path)).dataset
    assert [r["prompt"][0]["content"] for r in pairs] == mirrored["history"]  # converted in that order, not reshuffled
    with pytest.raises(MirrorMissing, match=r"seed7-cap4\.parquet"):  # another seed is another entry
        prepare_preferences(compose("dataset=shp2", "dataset.source=upstream", "dataset.upstream_max_rows=4",
                                    "dataset.seed=7").dataset, mirror=str(tmp_path))


def test_an_upstream_set_under_its_cap_is_mirrored_whole_in_the_seeded_order(tmp_path):
    cfg = compose("dataset=shp2", "dataset.source=upstream").dataset  # cap 500k
    rows = _shp_rows(6)
    mirror_rows(tmp_path, upstream_split(cfg), rows)
    [manifest] = read_manifest(tmp_path)
    assert manifest["rows"] == 6 and manifest["sample"] == {"seed": 42, "cap": 500000, "of_rows": 6}
    pairs = prepare_preferences(cfg, mirror=str(tmp_path)).dataset
    assert [r["prompt"][0]["content"] for r in pairs] == datasets.Dataset.from_list(rows).shuffle(seed=42)["history"]


def test_prefetch_downloads_the_whole_upstream_split_once_and_keeps_its_seeded_prefix(tmp_path, monkeypatch):
    full = datasets.Dataset.from_list(_shp_rows(10))
    calls = []
    monkeypatch.setattr(hub, "load_dataset", lambda path, **kw: calls.append(kw) or full)
    # the hub's loaders are replaced, so it is "reachable" here (HF_HUB_OFFLINE is set for every test; the
    # reachability check itself: tests/test_user_errors.py)
    monkeypatch.setattr(prefetch_module, "require_hub", lambda *a, **k: None)
    monkeypatch.setattr(hub, "load_dataset_builder", lambda *a, **k: type("B", (), {
        "name": "json", "config": type("C", (), {"data_files": {"train": ["hf://datasets/stanfordnlp/SHP-2/t.json"]}})()})())
    cfg = compose("dataset=shp2", "dataset.source=upstream", "dataset.upstream_max_rows=4").dataset
    prefetch(hub_sources(cfg), str(tmp_path))  # the real hub fetch, at the loader boundary
    assert len(calls) == 1
    [manifest] = read_manifest(tmp_path)
    mirrored = datasets.Dataset.from_parquet(str(tmp_path / manifest["file"]))
    assert mirrored["history"] == full.shuffle(seed=42).select(range(4))["history"]  # shuffled once, not twice
