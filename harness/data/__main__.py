"""Data commands, composed with the same Hydra overrides a run takes.

    python -m harness.data prefetch dataset=hh_rlhf prompts=uf eval=paper paths.mirror=/data/mirror
    python -m harness.data prefetch --sweep table1 --sweep table4 paths.mirror=/data/mirror      # sweeps/<name>.yaml
    python -m harness.data prefetch --models model=qwen25_05b paths.mirror=/data/mirror   # its models too (weights...)
    python -m harness.data describe dataset=hh_rlhf model=tulu2_13b [prompts=uf]
    python -m harness.data verify --sweep table1 paths.mirror=/data/mirror [--token hf_...]   # needs hub access
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hydra import compose, initialize_config_dir  # noqa: E402

from harness import cli  # noqa: E402
from harness.config import schema  # noqa: E402,F401  (registers the config schemas)
from harness.config.errors import ConfigError  # noqa: E402
from harness.config.groups import CONF_DIR  # noqa: E402


def compose_run(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run_configs(args) -> list:
    from harness.data.prefetch import sweep_points

    points = sweep_points(args.sweep, args.overrides) if args.sweep else [list(args.overrides)]
    return [compose_run(p) for p in points]


def cmd_prefetch(args) -> int:
    from harness.data.hub import revision_label
    from harness.data.prefetch import prefetch, prefetch_models, run_sources
    from harness.planning import hub_models

    configs = run_configs(args)
    mirror = configs[0].paths.mirror
    if not mirror:
        raise ConfigError("prefetch needs a mirror directory: add paths.mirror=<dir> (or set HARNESS_MIRROR)")
    sources = list(dict.fromkeys(s for cfg in configs for s in run_sources(cfg)))
    models = list({(m.path, m.revision): m for cfg in configs for m in hub_models(cfg)}.values()) if args.models else []
    what = f"{len(sources)} hub split(s)" + (f" and {len(models)} model(s)" if args.models else "")
    print(f"[harness.data] {len(configs)} run configuration(s) read {what}; mirror: {mirror}")
    for line in prefetch(sources, mirror, force=args.force):
        s = line["source"]
        rows = f": {line['rows']} rows" if "rows" in line else ""
        sample = "" if s.seed is None else f" (seed {s.seed}, first {s.cap})"
        print(f"  {line['status']:<8} {s.hub_id} [{s.config or 'default'}] {s.split}@{revision_label(s.revision)}{sample}{rows}")
    for line in prefetch_models(models, mirror, force=args.force):
        m = line["model"]
        commit = f" = {line['commit']}, {line['bytes'] / 1e9:.2f} GB" if "commit" in line else ""
        print(f"  {line['status']:<8} model {m.path}@{revision_label(m.revision)}{commit} ({m.wanted_by})")
    return 0


def cmd_describe(args) -> int:
    from harness.data.describe import describe_dataset, describe_prompts
    from harness.models import HubModel, base_model, check_models, load_tokenizer, use_mirror

    cfg = compose_run(args.overrides)
    # the base model's tokenizer measures the rows: it must be readable here, and the data is read before it is built
    check_models([HubModel(cfg.model.path, cfg.model.revision, f"model={cfg.model.name}")] if cfg.model.tiny is None
                 else [], cfg.paths.mirror)
    use_mirror(cfg.paths.mirror)

    @functools.cache
    def tokenizer():
        base, _ = base_model(cfg.model, cfg.paths.stages)
        tokenizer_id = {"model": base.key or [base.path, base.revision], "chat_template": cfg.model.chat_template}
        return load_tokenizer(base, cfg.model.chat_template), tokenizer_id

    print(describe_dataset(cfg, tokenizer))
    if any(o.startswith("prompts=") for o in args.overrides):
        print(describe_prompts(cfg, tokenizer()[0]))
    return 0


def cmd_verify(args) -> int:
    from harness.data.verify import HfHubInfo, table, verify, write

    if args.token:
        os.environ["HF_TOKEN"] = args.token  # gated sets (lmsys/chatbot_arena_conversations) for the row reads too
    configs = run_configs(args)
    mirror = configs[0].paths.mirror
    report = verify(configs, HfHubInfo(args.token), mirror)
    print(table(report))
    print(f"[harness.data] wrote {write(report, mirror, args.out)}")
    return 1 if report["failures"] else 0


@cli.command("harness.data")
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m harness.data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("prefetch", help="write the offline mirror for a run or a sweep (needs network)")
    pre.add_argument("--sweep", action="append", default=[], help="a sweep of sweeps/ by name, e.g. table1 (repeatable)")
    pre.add_argument("--force", action="store_true", help="fetch again even if the mirror has the entry")
    pre.add_argument("--models", action="store_true", help="also the models the runs read (weights, tokenizer, config)")
    pre.add_argument("overrides", nargs="*", help="Hydra overrides, as for `python -m harness`")
    desc = sub.add_parser("describe", help="rows, drops by reason and token lengths of a dataset")
    desc.add_argument("overrides", nargs="*", help="Hydra overrides, as for `python -m harness`")
    ver = sub.add_parser("verify", help="check every hub source a run or sweep reads against the hub and Table 1")
    ver.add_argument("--sweep", action="append", default=[], help="a sweep of sweeps/ by name (repeatable)")
    ver.add_argument("--token", default=None, help="hub token for gated sets (else HF_TOKEN / the stored login)")
    ver.add_argument("--out", default=None, help="where to write verify.json (default: beside the mirror)")
    ver.add_argument("overrides", nargs="*", help="Hydra overrides, as for `python -m harness`")
    args = parser.parse_args(argv)
    return {"prefetch": cmd_prefetch, "describe": cmd_describe, "verify": cmd_verify}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
