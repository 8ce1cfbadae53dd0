"""Verify every hub source a run, sweep or suite reads, on a machine with hub access (once, before the real runs).

    python -m harness.data verify --sweep table1 --sweep table4 paths.mirror=/data/mirror [--token hf_...]
    python -m harness.data verify dataset=helpsteer dataset.source=upstream prompts=uf eval=paper

Per source (preference data, upstream sets, prompts, benchmarks), one row of one table:
    revision  the configured revision resolves to a commit (`pin <commit>`: not pinned yet, main resolves to <commit>;
              put it in the config); URL sources (PRM800k's GitHub file) carry their commit in the URL: `url`
    script    the repo is not a loading-script dataset (a .py file at its root: datasets >= 4 refuses it)
    columns   the split has the columns the code reads (released pairs: chosen/rejected; an upstream set: its
              converter's columns; prompts: one of the EasyLM prompt columns)
    rows      the released split's rows against Table 1 (harness/assets/paper_tables/table1_preference_data.csv; a
              config's `released_rows` where the release differs), and an upstream set's converted pairs likewise
judges' models (hub ids) get the revision check; and, when HelpSteer is among them, its direction: the released
`helpsteer` split joined to nvidia/HelpSteer on (prompt, response), the mean of the 4 ratings of chosen against
rejected, and the direction that decides, against `conf/dataset/helpsteer.yaml`'s `chosen`. Rows are read from the mirror when one is set (run prefetch first), else from
the hub. The table is printed and written as verify.json beside the mirror (or `--out`); any FAIL exits 1.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import mean
from typing import Protocol

from harness.data import converters, mixture, preferences, prompts
from harness.data.hub import hub_revision, pinned, revision_label
from harness.data.mirror import HubSplit
from harness.data.prefetch import hub_splits, require_hub

TABLE1 = Path(__file__).resolve().parent.parent / "assets" / "paper_tables" / "table1_preference_data.csv"
HELPSTEER_ASPECTS = ("helpfulness", "correctness", "coherence", "complexity")
OK, FAIL, NA = "ok", "FAIL", "-"


class HubInfo(Protocol):
    """What verify asks the hub (huggingface_hub.HfApi on a connected machine)."""

    def resolve(self, hub_id: str, revision: str | None) -> str:
        """The commit `revision` (None: main) names; raises when it does not resolve."""

    def files(self, hub_id: str, commit: str) -> list[str]:
        """The repo's file paths at `commit`."""

    def resolve_model(self, model_id: str, revision: str | None) -> str:
        """The commit of a model repo (a judge); raises when it does not resolve."""


class HfHubInfo:
    def __init__(self, token: str | None = None):
        from huggingface_hub import HfApi

        require_hub("the commits and files of every source", "verify reads", "")
        self.api = HfApi(token=token)

    def resolve(self, hub_id: str, revision: str | None) -> str:
        return self.api.dataset_info(hub_id, revision=revision).sha

    def files(self, hub_id: str, commit: str) -> list[str]:
        return self.api.list_repo_files(hub_id, repo_type="dataset", revision=commit)

    def resolve_model(self, model_id: str, revision: str | None) -> str:
        return self.api.model_info(model_id, revision=revision).sha


@dataclass
class Target:
    """A hub source and what the code expects of it."""

    source: HubSplit
    used_by: str
    columns: tuple[str, ...] = ()
    # True: every column is read; False: any one of them is enough (prompt columns).
    all_columns: bool = True
    expected_rows: int | None = None
    # An upstream dataset config whose converted pairs are counted against expected_rows.
    convert: object = None
    # A model repo (a judge's hub id) rather than a dataset split: only its revision is checked.
    model: bool = False


@dataclass
class Row:
    source: str
    used_by: str
    revision: str = NA
    script: str = NA
    columns: str = NA
    rows: str = NA
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return FAIL in (self.revision, self.script, self.columns, self.rows)


def table1_rows() -> dict[str, int]:
    with TABLE1.open() as f:
        return {r["source"]: int(r["samples"]) for r in csv.DictReader(f) if r["samples"]}


def expected_rows(cfg, notes: list[str]) -> int | None:
    """Table 1's count for the dataset (by its label), else its `paper_rows`; a conf that disagrees with Table 1 is
    noted."""
    table = table1_rows().get(cfg.label)
    if table is not None and cfg.paper_rows not in (None, table):
        notes.append(f"conf paper_rows {cfg.paper_rows} != Table 1 {table}")
    return table if table is not None else cfg.paper_rows


def dataset_targets(cfg, used_by: str) -> list[Target]:
    if cfg.source == "tulu25":
        notes: list[str] = []
        want = cfg.released_rows or expected_rows(cfg, notes)
        return [Target(preferences.released_split(cfg), used_by, preferences.REQUIRED_COLUMNS, True, want)]
    if cfg.source == "upstream" and not cfg.mixture:
        conv = converters.get(cfg.converter)
        out = [Target(preferences.upstream_split(cfg), f"{used_by} (upstream)", conv.columns, True,
                      expected_rows(cfg, []), cfg)]
        options = dict(cfg.converter_options)
        return out + [Target(extra, f"{used_by} (allow-list)", ("prompt",)) for extra in conv.extras(options)]
    if cfg.source in ("mixture", "upstream"):
        return [t for c in mixture.components(cfg) for t in dataset_targets(c, f"{used_by} > {c.name}")]
    return []


def run_targets(cfg) -> list[Target]:
    """Every hub source the composed run config reads (as prefetch's run_sources), with what the code expects."""
    out = dataset_targets(cfg.dataset, f"dataset={cfg.dataset.name}")
    rm_data = cfg.reward_model.get("dataset")
    if rm_data:
        out += dataset_targets(mixture.dataset_config(rm_data), f"reward_model.dataset={rm_data}")
    out += [Target(s, f"prompts={cfg.prompts.name}", prompts.PROMPT_COLUMNS, False) for s in prompts.hub_sources(cfg.prompts)]
    for name, bench in cfg.eval.benchmarks.items():
        out += [Target(s, f"eval {name}") for s in hub_splits(bench)]
        out += [Target(HubSplit(j.model, None, "model", j.revision), f"eval {name} judge {key}", model=True)
                for key, j in bench.judges.items() if j.kind == "hf" and j.model and "/" in j.model
                and not Path(j.model).exists()]
    return out


def describe(s: HubSplit) -> str:
    sample = "" if s.seed is None else f" (seed {s.seed}, first {s.cap})"
    return f"{s.hub_id} [{s.config or 'default'}] {s.split}@{revision_label(s.revision)[:12]}{sample}"


def check_model(row: Row, s: HubSplit, hub: HubInfo) -> None:
    try:
        commit = hub.resolve_model(s.hub_id, hub_revision(s.revision))
    except Exception as e:  # noqa: BLE001
        row.revision = FAIL
        row.notes.append(f"model revision {revision_label(s.revision)} does not resolve: {type(e).__name__}: {e}")
        return
    row.revision = OK if commit == s.revision else f"pin {commit}"


def check_repo(row: Row, s: HubSplit, hub: HubInfo) -> None:
    if s.data_files and "://" in s.data_files and not s.data_files.startswith("hf://"):
        row.revision = "url" if "{revision}" in s.data_files and pinned(s.revision) else FAIL
        if row.revision == FAIL:
            row.notes.append("URL source without a pinned {revision} in it")
        return
    try:
        commit = hub.resolve(s.hub_id, hub_revision(s.revision))
    except Exception as e:  # noqa: BLE001 (any hub error is this check's failure)
        row.revision = FAIL
        row.notes.append(f"revision {revision_label(s.revision)} does not resolve: {type(e).__name__}: {e}")
        return
    if pinned(s.revision):
        row.revision = OK if commit == s.revision else FAIL
    else:
        row.revision = f"pin {commit}"
        row.notes.append(f"not pinned ({revision_label(s.revision)}): main is {commit}")
    scripts = [f for f in hub.files(s.hub_id, commit) if "/" not in f and f.endswith(".py")]
    row.script = FAIL if scripts and not s.data_files else OK
    if scripts:
        row.notes.append(f"loading script {scripts}" + (" (read through data_files)" if s.data_files else ""))


def check_rows(row: Row, t: Target, mirror: str | None) -> None:
    if not t.columns and t.expected_rows is None:
        return  # a benchmark: nothing known to check in its rows
    try:
        ds = t.source.load(mirror)
    except Exception as e:  # noqa: BLE001
        row.columns = FAIL
        row.notes.append(f"cannot read the split: {type(e).__name__}: {e}")
        return
    if t.columns:
        found = [c for c in t.columns if c in ds.column_names]
        good = len(found) == len(t.columns) if t.all_columns else bool(found)
        row.columns = OK if good else FAIL
        if not good:
            row.notes.append(f"columns: expected {'all' if t.all_columns else 'one'} of {list(t.columns)}, "
                             f"found {ds.column_names}")
    if t.expected_rows is None:
        return
    n = len(ds)
    if t.convert is not None:
        try:
            report = preferences.prepare_preferences(t.convert, mirror=mirror).report
        except Exception as e:  # noqa: BLE001 (a conversion that stops is this check's failure)
            row.rows = FAIL
            row.notes.append(f"conversion failed ({type(e).__name__}: {str(e)[:200]}); expected {t.expected_rows} pairs")
            return
        n = report.rows  # after the config's own max_samples (the *_60k subsets: Table 2's 60,908)
        row.notes.append(f"converted: {n} pairs, skipped {report.skipped}, dropped {report.dropped}")
        row.notes += filter_variants(t.convert, mirror)
    row.rows = OK if n == t.expected_rows else FAIL
    if n != t.expected_rows:
        row.notes.append(f"rows: {n}, expected {t.expected_rows}")


def filter_variants(cfg, mirror: str | None) -> list[str]:
    """Pairs kept with each off-by-default filter option of the converter turned on (Chatbot Arena's candidate
    filters), so the one that reproduces Table 1 can be read off."""
    out = []
    for key, value in cfg.converter_options.items():
        if value is False:
            variant = cfg.copy()
            variant.converter_options[key] = True
            try:
                report = preferences.prepare_preferences(variant, mirror=mirror).report
                out.append(f"with {key}: {report.rows} pairs")
            except Exception as e:  # noqa: BLE001
                out.append(f"with {key}: {type(e).__name__}: {str(e)[:100]}")
    return out


def helpsteer_direction(mirror: str | None) -> dict:
    """Join the released helpsteer split to nvidia/HelpSteer; which side has the higher mean rating."""
    cfg = mixture.dataset_config("helpsteer")
    released = preferences.released_split(cfg).load(mirror)
    upstream = cfg.copy()
    upstream.source = "upstream"
    ratings = {(r["prompt"].strip(), r["response"].strip()): mean(r[a] for a in HELPSTEER_ASPECTS)
               for r in preferences.upstream_split(upstream).load(mirror)}
    counts = {"chosen_lower": 0, "chosen_higher": 0, "equal": 0, "not_joined": 0}
    for r in released:
        prompt = r["chosen"][0]["content"].strip()
        c = ratings.get((prompt, r["chosen"][-1]["content"].strip()))
        j = ratings.get((prompt, r["rejected"][-1]["content"].strip()))
        key = "not_joined" if c is None or j is None else (
            "chosen_lower" if c < j else "chosen_higher" if c > j else "equal")
        counts[key] += 1
    found = None
    if counts["chosen_lower"] != counts["chosen_higher"]:
        found = "lowest" if counts["chosen_lower"] > counts["chosen_higher"] else "highest"
    configured = cfg.converter_options.chosen
    return {"released_direction": found, "configured": configured, **counts,
            "status": OK if found == configured else FAIL}


def verify(configs: list, hub: HubInfo, mirror: str | None) -> dict:
    """The verify report for every hub source the composed run configs read."""
    targets: dict[HubSplit, Target] = {}
    for cfg in configs:
        for t in run_targets(cfg):
            targets.setdefault(t.source, t)
    rows = []
    for s, t in targets.items():
        row = Row(f"model {s.hub_id}@{revision_label(s.revision)[:12]}" if t.model else describe(s), t.used_by)
        if t.model:
            check_model(row, s, hub)
        else:
            check_repo(row, s, hub)
            check_rows(row, t, mirror)
        rows.append(row)
    report = {"sources": [asdict(r) | {"failed": r.failed} for r in rows]}
    if any(s.split == "helpsteer" or s.hub_id == "nvidia/HelpSteer" for s in targets):
        try:
            report["helpsteer"] = helpsteer_direction(mirror)
        except Exception as e:  # noqa: BLE001
            report["helpsteer"] = {"status": FAIL, "error": f"{type(e).__name__}: {e}"}
    report["failures"] = sum(r.failed for r in rows) + (report.get("helpsteer", {}).get("status") == FAIL)
    return report


def table(report: dict) -> str:
    head = ("source", "used by", "revision", "script", "columns", "rows", "notes")
    one_line = lambda text: " ".join(str(text).split())  # noqa: E731 (hub errors span lines)
    lines = [[r["source"], r["used_by"], r["revision"], r["script"], r["columns"], r["rows"],
              "; ".join(one_line(n) for n in r["notes"])] for r in report["sources"]]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)][:-1]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths + [0])).rstrip()  # noqa: E731
    out = [fmt(head), fmt(["-" * w for w in widths] + ["-----"])] + [fmt(c) for c in lines]
    if "helpsteer" in report:
        h = report["helpsteer"]
        out.append(f"HelpSteer direction: {h['status']}: " + one_line(", ".join(f"{k}={v}" for k, v in h.items() if k != "status")))
    out.append(f"{report['failures']} failure(s)")
    return "\n".join(out)


def write(report: dict, mirror: str | None, out: str | None) -> Path:
    path = Path(out) if out else (Path(mirror) if mirror else Path.cwd()) / "verify.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return path
