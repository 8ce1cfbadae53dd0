"""Hub revisions and loadable repos: what a pinned revision is, and which repos datasets cannot load by id. Imports
no ML library, so config checks (and a finished run's fast path) can use it."""

from __future__ import annotations

import re

# Config value of a revision that is not pinned yet (the commit could not be looked up without hub access).
PIN_PENDING = "to-verify"
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def pinned(revision: str | None) -> bool:
    return bool(revision) and bool(COMMIT.match(revision))


def hub_revision(revision: str | None) -> str | None:
    """What the hub client is given: None (main) for an unset or pending revision."""
    return None if revision in (None, PIN_PENDING) else revision


def revision_label(revision: str | None) -> str:
    """The revision as a file name or report shows it."""
    return hub_revision(revision) or "main"


# Hub repos that are loading scripts, which datasets 4+ refuses ("Dataset scripts are no longer supported"): a source
# naming one must read its files through `data_files` instead. Evidence per repo in the comment.
SCRIPT_REPOS = {
    # lm-eval issue #2843 / PR #2845 (commit 908ac2b24) moved BBH to SaylorTwift/bbh for this reason
    "lukaemon/bbh": "use hub_id SaylorTwift/bbh (same configs, split and fields; lm-eval 0.4.13's own source)",
    # alpaca_eval 0.6.6 constants.py loads it with trust_remote_code=True; tatsu-lab/alpaca_eval issue #454
    "tatsu-lab/alpaca_eval": "set data_files: hf://datasets/tatsu-lab/alpaca_eval@{revision}/<config>.json",
    # the AlpacaFarm repo is a loading script too (see conf/dataset/alpacafarm*.yaml)
    "tatsu-lab/alpaca_farm": "set data_files to the JSON file of the split (hf://datasets/tatsu-lab/alpaca_farm@...)",
}


def check_source(source, owner: str, need_revision: bool = False) -> str | None:
    """Refuse a source datasets cannot load (a loading-script repo read by id) or one without a revision where one is
    required; returns a warning when the revision is a branch rather than a commit (it can move), else None."""
    if source.hub_id in SCRIPT_REPOS and not source.data_files:
        raise ValueError(f"{owner}: {source.hub_id} is a loading-script dataset, which datasets 4+ refuses; "
                         f"{SCRIPT_REPOS[source.hub_id]}")
    if need_revision and not source.revision:
        raise ValueError(f"{owner}: hub source {source.hub_id} has no `revision`; set revision: <commit> (or "
                         f"{PIN_PENDING!r} / a branch such as main, to follow it knowingly)")
    rev = source.revision
    if rev == PIN_PENDING:
        return (f"{owner}: {source.hub_id} is not pinned yet (revision {PIN_PENDING!r}: read at main); "
                "`python -m harness.data verify` prints the commit to pin")
    if rev and not pinned(rev):
        return f"{owner}: {source.hub_id} is read at {rev!r}, a branch or tag, not a commit: it may change under this config"
    return None
