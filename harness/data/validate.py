"""Validation of normalised rows: bad rows are dropped and counted by reason; too many bad rows stop the load.

A preference pair is bad when (first matching reason wins):
    missing_field              a side or message is absent / not a message list (or there is no prompt at all)
    empty_message              some message (prompt, chosen or rejected) is empty after stripping
    not_ending_with_assistant  chosen or rejected does not end with an assistant turn
    identical_pair             chosen == rejected (this project's own filter, not the conversion script's: counted
                               under its own reason; `dataset.drop_identical_pairs=false` keeps such pairs)
    over_length                prompt + completion exceeds the run's max length in tokens (needs the tokenizer)
A policy prompt is bad when a field is missing, a message is empty, it does not end with a user turn, or it is over
`max_prompt_tokens`. Rows a converter leaves out by its source's rule (a tie, a prompt with one response) are not bad:
they are counted as `skipped`. Counts become run metrics (`DataReport.metrics`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from harness.config.errors import ConfigError

PAIR_REASONS = ("missing_field", "empty_message", "not_ending_with_assistant", "identical_pair", "over_length")
PROMPT_REASONS = ("missing_field", "empty_message", "not_ending_with_user", "over_length")
SHOWN_BAD_ROWS = 5


class DataError(ConfigError):
    """A dataset that cannot be used as configured (too many bad rows, wrong columns)."""


@dataclass
class DataReport:
    """What loading did to a dataset: rows kept, dropped by reason, skipped by converter rule."""

    name: str
    kind: str = "pairs"
    rows: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    first_bad: list[dict] = field(default_factory=list)
    # Rows before the seeded `max_samples` subsample (None: not subsampled).
    subsampled_from: int | None = None
    # Mixtures: rows kept per component.
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def reasons(self) -> tuple[str, ...]:
        return PAIR_REASONS if self.kind == "pairs" else PROMPT_REASONS

    @property
    def bad(self) -> int:
        return sum(self.dropped.values())

    def drop(self, reason: str, index, row) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if len(self.first_bad) < SHOWN_BAD_ROWS:
            self.first_bad.append({"index": index, "reason": reason, "row": _short(row)})

    def skip(self, rule: str) -> None:
        self.skipped[rule] = self.skipped.get(rule, 0) + 1

    def check(self, max_bad_fraction: float) -> None:
        """Stop (before anything is written) when more than `max_bad_fraction` of the checked rows are bad."""
        seen = self.rows + self.bad
        if seen and self.bad / seen > max_bad_fraction:
            shown = "\n".join(f"    row {b['index']}: {b['reason']}: {b['row']}" for b in self.first_bad)
            what = "dataset" if self.kind == "pairs" else "prompt set"
            raise DataError(
                f"{what} {self.name!r}: {self.bad} of {seen} {self.kind} are invalid ({self.bad / seen:.1%} > "
                f"max_bad_fraction={max_bad_fraction}); by reason: {self.dropped}. First bad rows:\n{shown}"
            )

    def merge(self, other: "DataReport") -> None:
        self.rows += other.rows
        for mine, theirs in ((self.dropped, other.dropped), (self.skipped, other.skipped)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.first_bad = (self.first_bad + other.first_bad)[:SHOWN_BAD_ROWS]

    def metrics(self, prefix: str = "data") -> dict[str, int]:
        """Flat counts for the run's training metrics: every reason appears, zero or not."""
        out = {f"{prefix}_rows": self.rows}
        out |= {f"{prefix}_dropped_{r}": self.dropped.get(r, 0) for r in self.reasons}
        out |= {f"{prefix}_skipped_{r}": n for r, n in sorted(self.skipped.items())}
        if self.subsampled_from is not None:
            out[f"{prefix}_rows_before_subsample"] = self.subsampled_from
        out |= {f"{prefix}_rows_{part}": n for part, n in self.parts.items()}
        return out

    def summary(self) -> str:
        lines = [f"{self.name}: {self.rows} {self.kind} kept"]
        lines += [f"  dropped {self.dropped.get(r, 0):>8} {r}" for r in self.reasons]
        lines += [f"  dropped {n:>8} {r} (malformed upstream)" for r, n in self.dropped.items() if r not in self.reasons]
        lines += [f"  skipped {n:>8} {r} (converter rule)" for r, n in self.skipped.items()]
        if self.subsampled_from is not None:
            lines.append(f"  subsampled from {self.subsampled_from} (max_samples)")
        lines += [f"  component {part}: {n} rows" for part, n in self.parts.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def _short(row, limit: int = 160) -> str:
    text = row if isinstance(row, str) else json.dumps(row, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def content_id(row: dict, *content) -> str:
    """The row's own id, else a stable hash of its content."""
    if row.get("id") is not None:
        return str(row["id"])
    return hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def messages_or_none(value) -> list[dict] | None:
    """A message list with exactly {role, content}; None when the value is not one (a missing field)."""
    if not isinstance(value, list):
        return None
    out = []
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            return None
        out.append({"role": m["role"], "content": m["content"]})
    return out


def pair_problem(prompt: list[dict], chosen: list[dict], rejected: list[dict], drop_identical: bool = True) -> str | None:
    """The reason a normalised pair is bad (tokenizer-free checks), or None."""
    if not prompt:
        return "missing_field"
    if any(not m["content"].strip() for m in (*prompt, *chosen, *rejected)):
        return "empty_message"
    if not chosen or not rejected or chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        return "not_ending_with_assistant"
    if drop_identical and chosen == rejected:
        return "identical_pair"
    return None


def prompt_problem(prompt: list[dict] | None) -> str | None:
    if not prompt:
        return "missing_field"
    if any(not m["content"].strip() for m in prompt):
        return "empty_message"
    if prompt[-1]["role"] != "user":
        return "not_ending_with_user"
    return None


# No token is longer than this many characters (inferred: BPE vocabularies of Llama/Tulu tokenizers top out near 16-48
# characters per token), so a conversation of more than N x this characters has more than N tokens: it is over length
# without tokenising it. Tokenising costs ~150x the text in memory (one 50 MB row took 10.4 GB).
MAX_CHARS_PER_TOKEN = 64


def chars(conversation) -> int:
    """Characters of a conversation's message contents."""
    return sum(len(m["content"] or "") for m in conversation or [])


def token_lengths(tokenizer, conversations, add_generation_prompt: bool = False,
                  max_tokens: int | None = None) -> list[int | None]:
    """Tokens of each conversation as the trainer sees it: rendered by the chat template (which writes BOS itself),
    then encoded without adding special tokens (harness.chat). With `max_tokens`, a conversation whose characters
    alone put it over that many tokens is not tokenised: None (over length), so memory follows what is kept."""
    conversations = list(conversations)
    fit = [i for i, c in enumerate(conversations) if max_tokens is None or chars(c) <= max_tokens * MAX_CHARS_PER_TOKEN]
    texts = tokenizer.apply_chat_template([conversations[i] for i in fit], tokenize=False,
                                          add_generation_prompt=add_generation_prompt) if fit else []
    lengths: list[int | None] = [None] * len(conversations)
    for i, ids in zip(fit, tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []):
        lengths[i] = len(ids)
    return lengths


@dataclass
class Prepared:
    """A loaded, normalised and validated dataset with the report of what loading did."""

    dataset: object  # datasets.Dataset
    report: DataReport
    # Cache key of these rows (None when not cacheable): later steps that derive from them key on it.
    key: str | None = None
