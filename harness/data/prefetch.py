"""Prefetch: copy every hub split a run (or a whole sweep) reads into the offline mirror, on a connected machine; with
`--models`, the models it reads too.

    python -m harness.data prefetch dataset=hh_rlhf prompts=uf eval=paper paths.mirror=/data/mirror
    python -m harness.data prefetch --sweep table1 paths.mirror=/data/mirror
    python -m harness.data prefetch --models --sweep table1 paths.mirror=/data/mirror

What a run reads: its preference dataset (`dataset.source` decides released split, upstream set or mixture
components), the reward model's training dataset when it names one, its policy prompts, and, for each benchmark of
its `eval` suite with a `hub_id`, (hub_id, hub_config, split, revision). Entries already in the mirror are kept unless
`--force`. A sweep file is a Hydra override file (`defaults: [override /group: entry]`, `hydra.sweeper.params`); its
grid is expanded with Hydra's own override parser and every point is prefetched.

Models (harness.planning.hub_models: the base policy, the reward model or its base, local judges) are downloaded with
the hub client's snapshot_download at one commit (the configured revision, else the commit `main` resolves to, which
the manifest records): config, tokenizer files and the weights (safetensors when the repo has them, else .bin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from datasets import Dataset

from harness.config.errors import UserError
from harness.data import mixture, preferences, prompts
from harness.data.mirror import HubSplit, add_model, add_to_mirror, entry_path, hub_unreachable, mirrored_model, offline
from harness.data.revisions import hub_revision
from harness.models import HubModel
from harness.eval.lm_eval_runner import fewshot_split
from harness.eval.variants import check_sources, variants


def hub_splits(bench) -> list[HubSplit]:
    """Every hub split a benchmark reads, for prefetching a mirror: its split per subset, the few-shot split lm-eval
    draws from, the variants its options name, and RewardBench's prior sets."""
    fill = lambda value, part: value.replace("{subset}", part) if part and isinstance(value, str) else value  # noqa: E731
    check_sources(bench)
    out = []
    for v in variants(bench):
        if v.files or not v.hub_id:
            continue
        for part in v.subsets or [None]:
            splits = [fill(v.split, part)]
            if v.runner == "lm_eval" and v.task:
                splits += [s for s in [fewshot_split(v, part)] if s]
            out += [HubSplit(v.hub_id, fill(v.hub_config, part), s, v.revision, fill(v.data_files, part)) for s in splits]
    opts = bench.options
    if opts.get("prior_sets") and opts.get("prior_sets_hub_id") and not opts.get("prior_sets_files"):
        out += [HubSplit(opts.prior_sets_hub_id, None, name, opts.get("prior_sets_revision")) for name in opts.prior_sets]
    return list(dict.fromkeys(out))


def run_sources(cfg) -> list[HubSplit]:
    """Every hub split the run composed as `cfg` may read, without duplicates."""
    needed = preferences.hub_sources(cfg.dataset) + prompts.hub_sources(cfg.prompts)
    rm_data = cfg.reward_model.get("dataset")
    if rm_data:
        needed += preferences.hub_sources(mixture.dataset_config(rm_data))
    for bench in cfg.eval.benchmarks.values():
        needed += hub_splits(bench)
    return list(dict.fromkeys(needed))


def sweep_points(sweeps: list[str], overrides: list[str] = ()) -> list[list[str]]:
    """The override list of every run the named sweeps (sweeps/<name>.yaml) launch, as `python -m harness -m
    +sweep=<name>` expands them; launcher settings do not change what a run reads."""
    from harness.sweep.plan import sweep_jobs

    points = [job for name in sweeps for job in sweep_jobs(name, list(overrides))]
    return [[o for o in job if not o.startswith(("hydra/", "hydra."))] for job in points]


class HubOffline(UserError):
    """Prefetch has something to download and the hub cannot be reached."""


def require_hub(what: str, command: str = "prefetch downloads", then: str = ", then copy the mirror to this one") -> None:
    """A command that needs the hub says so at once when this machine cannot reach it (offline, or unreachable)."""
    why = "HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set" if offline() else hub_unreachable()
    if why:
        raise HubOffline(f"{command} {what} from the hub, which this machine cannot reach ({why}): run the same "
                         f"command on a machine with network access (without HF_HUB_OFFLINE){then}")


def hub_fetch(source: HubSplit) -> Dataset:
    """Download a whole split from the hub (never from a mirror); the mirror then keeps its seeded prefix, if any."""
    require_hub(f"{source.hub_id} (split {source.split})")
    return source._replace(seed=None, cap=None).load(mirror=None)


# Besides the weights: the model's config, generation config, tokenizer (tokenizer.json, sentencepiece .model,
# vocabulary and merges files) and the weights' index.
MODEL_FILES = ("*.json", "*.model", "*.txt", "*.tiktoken")


def hub_download_model(hub_id: str, revision: str | None, into: Path) -> str:
    """Download a model's files at one commit into `into`; returns the commit."""
    from huggingface_hub import HfApi, snapshot_download

    require_hub(f"model {hub_id}")
    info = HfApi().model_info(hub_id, revision=hub_revision(revision))
    files = [s.rfilename for s in info.siblings or []]
    weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
    snapshot_download(hub_id, revision=info.sha, local_dir=into, allow_patterns=[*MODEL_FILES, weights])
    return info.sha


def prefetch(sources: list[HubSplit], mirror: str, fetch: Callable[[HubSplit], Dataset] = hub_fetch,
             force: bool = False) -> list[dict]:
    """Write each source into the mirror (manifest last per entry); returns what was done, one line per source."""
    done = []
    for source in sources:
        path = entry_path(mirror, source.hub_id, source.config, source.split, source.revision, source.seed, source.cap)
        if path.exists() and not force:
            done.append({"source": source, "status": "present", "file": str(path)})
            continue
        entry = add_to_mirror(mirror, source.hub_id, source.config, source.split, source.revision, fetch(source),
                              source.seed, source.cap)
        done.append({"source": source, "status": "fetched", "rows": entry["rows"], "file": str(path)})
    return done


def prefetch_models(models: list[HubModel], mirror: str,
                    download: Callable[[str, str | None, Path], str] = hub_download_model, force: bool = False) -> list[dict]:
    """Write each model into the mirror (its manifest entry last); returns what was done, one line per model."""
    done = []
    for model in models:
        path = mirrored_model(mirror, model.path, model.revision)
        if path is not None and not force:
            done.append({"model": model, "status": "present", "file": str(path)})
            continue
        entry = add_model(mirror, model.path, model.revision, download)
        done.append({"model": model, "status": "fetched", "commit": entry["commit"], "bytes": entry["bytes"],
                     "file": entry["file"]})
    return done
