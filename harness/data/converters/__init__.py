"""Converters: re-derive the paper's pairs from each original hub dataset (`dataset.source=upstream`).

    python -m harness.data describe dataset=hh_rlhf dataset.source=upstream

One module per upstream source, each with a docstring showing one row of its data and the rule it follows. The rules
come from protocol.md ("Preference data") and the conversion script the tulu-2.5 card cites
(hamishivi/EasyLM `conversion_scripts/convert_preference_data.py`), read for its rules, not copied. Shared by all:
- upstream rows are shuffled with the dataset seed (42) and the first `upstream_max_rows` (500k) kept before
  conversion, as that script did;
- random choices use `random.Random(seed)`, drawn in that row order: a seed always gives the same pairs;
- output rows have the tulu-2.5 layout (`chosen` / `rejected` whole conversations) and go through the same
  normalisation and validation as the released splits (empty messages and sides not ending with an assistant turn
  are dropped and counted).

What was checked, and how (no network here; nothing was downloaded):
- column layouts from the dataset cards / loading scripts: SHP-2, Nectar, Capybara, the AlpacaFarm loading script's
  features and `preference` split, the 55k arena set's columns, the 2023 arena schema (via datasets that re-publish it
  unchanged); HH-RLHF, StackExchange, HelpSteer, Orca, UltraFeedback (both) and PRM800k from the columns the paper's
  script reads;
- the tulu-2.5 split names from the hub's parquet conversion and the Tulu 2.5 model cards; their `chosen` / `rejected`
  / `source` columns from protocol.md and the script's output. Not checked: how many rows each converter yields
  against the released split (each config's `paper_rows` is Table 1's count).
HelpSteer follows the script's ascending sort (the lowest-rated response chosen; `chosen: highest` is the stated
rule). Inferred (said in the module): AlpacaFarm's instruction + input join, ties as the only
Chatbot Arena filter, Orca's dropped system prompt (as the script did).
"""

from __future__ import annotations

from harness.data.converters import (alpaca_farm, capybara, chatbot_arena_2023, chatbot_arena_2024, helpsteer, hh_rlhf,
                                     nectar, orca, prm800k, shp2, stack_exchange, ultrafeedback)
from harness.data.converters.base import Context, Converter, Skip

CONVERTERS: dict[str, Converter] = {
    "shp2": shp2.CONVERTER,
    "stack_exchange": stack_exchange.CONVERTER,
    "prm800k_phase2": prm800k.CONVERTER,
    "chatbot_arena_2023": chatbot_arena_2023.CONVERTER,
    "chatbot_arena_2024": chatbot_arena_2024.CONVERTER,
    "alpaca_farm": alpaca_farm.CONVERTER,
    "hh_rlhf": hh_rlhf.CONVERTER,
    "helpsteer": helpsteer.CONVERTER,
    "capybara": capybara.CONVERTER,
    "orca": orca.CONVERTER,
    "nectar": nectar.CONVERTER,
    "ultrafeedback_fine_grained": ultrafeedback.FINE_GRAINED,
    "ultrafeedback_overall": ultrafeedback.OVERALL,
}


def get(name: str | None) -> Converter:
    if name not in CONVERTERS:
        raise ValueError(f"unknown converter {name!r}; valid: {sorted(CONVERTERS)}")
    return CONVERTERS[name]


__all__ = ["CONVERTERS", "Context", "Converter", "Skip", "get"]
