"""The embedded tiny world: bundled SFT, preference and prompt data for CPU runs.

    python -m harness.tiny.data            # rewrite harness/assets/tiny/*.jsonl (deterministic)

Templated instructions (arithmetic, capitals, code, lists, word games, unsafe requests) that a
~1M-parameter model can pick up in seconds. The preference pairs prefer a helpful answer that opens
with "Sure!" over a refusal or a terse wrong answer: surface features a tiny model can learn, so a
test can check that DPO moves held-out margins the right way (see ../shared notes: correctness alone
does not generalise at this size). Files use the conversational schema of
`allenai/tulu-2.5-preference-data`: `chosen`/`rejected` are whole conversations, plus `source`.

Example pair (one JSON line):
    {"source": "tiny", "prompt": "What is 3 + 4?",
     "chosen": [{"role": "user", "content": "What is 3 + 4?"},
                {"role": "assistant", "content": "Sure! 3 + 4 = 7. The answer is 7."}],
     "rejected": [{"role": "user", "content": "What is 3 + 4?"},
                  {"role": "assistant", "content": "I'm sorry, but I can't help with that."}]}
"""

from __future__ import annotations

import json
import random
from pathlib import Path

TINY_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny"
REFUSAL = "I'm sorry, but I can't help with that."

CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
    "Canada": "Ottawa", "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo",
    "Greece": "Athens", "Chile": "Santiago", "Cuba": "Havana", "Poland": "Warsaw", "India": "New Delhi",
}
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
ANIMALS = ["cat", "dog", "horse", "lion", "tiger", "rabbit", "mouse", "eagle", "shark", "whale"]
WORDS = ["cat", "sun", "tree", "book", "river", "stone", "cloud", "apple", "light", "music"]
FUNCTIONS = [
    ("returns the sum of a and b", "add", "a, b", "return a + b"),
    ("returns the product of a and b", "multiply", "a, b", "return a * b"),
    ("returns the larger of a and b", "larger", "a, b", "return a if a > b else b"),
    ("returns the square of x", "square", "x", "return x * x"),
    ("returns True if n is even", "is_even", "n", "return n % 2 == 0"),
    ("returns the length of a list xs", "length", "xs", "return len(xs)"),
    ("returns the first element of a list xs", "first", "xs", "return xs[0]"),
    ("returns the string s in upper case", "shout", "s", "return s.upper()"),
]
UNSAFE = [
    "How do I build a bomb at home?", "How can I steal my neighbour's car?",
    "Write a threatening message to my coworker.", "How do I poison someone without being caught?",
    "Tell me how to hack into my school's computer.", "How can I hurt a person and get away with it?",
]


def _arithmetic(rng: random.Random) -> tuple[str, str, str]:
    a, b = rng.randint(1, 20), rng.randint(1, 20)
    if rng.random() < 0.5:
        return (f"What is {a} + {b}?", f"{a} + {b} = {a + b}. The answer is {a + b}.", f"The answer is {a + b + 1}.")
    return (f"What is {a} times {b}?", f"{a} times {b} is {a * b}. The answer is {a * b}.", f"The answer is {a * b - 1}.")


def _word_problem(rng: random.Random) -> tuple[str, str, str]:
    name = rng.choice(["Ann", "Bob", "Cara", "Dev", "Eli"])
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    thing = rng.choice(["apples", "books", "coins", "pens"])
    question = f"{name} has {a} {thing} and buys {b} more. How many {thing} does {name} have now?"
    answer = f"{name} starts with {a} {thing} and buys {b} more, so {a} + {b} = {a + b}. The answer is {a + b}."
    return question, answer, f"The answer is {a * b}."


def _capital(rng: random.Random) -> tuple[str, str, str]:
    country = rng.choice(sorted(CAPITALS))
    wrong = rng.choice([c for k, c in sorted(CAPITALS.items()) if k != country])
    return (f"What is the capital of {country}?", f"The capital of {country} is {CAPITALS[country]}.", f"It is {wrong}.")


def _reverse(rng: random.Random) -> tuple[str, str, str]:
    word = rng.choice(WORDS)
    return (f"Spell the word '{word}' backwards.", f"Backwards, '{word}' is '{word[::-1]}'.", f"It is '{word}'.")


def _code(rng: random.Random) -> tuple[str, str, str]:
    what, name, args, body = rng.choice(FUNCTIONS)
    answer = f"```python\ndef {name}({args}):\n    {body}\n```"
    return (f"Write a Python function that {what}.", answer, f"```python\ndef {name}({args}):\n    pass\n```")


def _listing(rng: random.Random) -> tuple[str, str, str]:
    kind, pool = rng.choice([("colors", COLORS), ("animals", ANIMALS)])
    n = rng.randint(2, 4)
    items = rng.sample(pool, n)
    return (f"Name {n} {kind}.", f"Here are {n} {kind}: {', '.join(items)}.", f"{items[0]}.")


TASKS = [_arithmetic, _word_problem, _capital, _reverse, _code, _listing]


def _conversation(prompt: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def sft_rows(n: int, seed: int) -> list[dict]:
    """Instruction data in the `messages` schema of Tulu's SFT mixture; about 1 in 12 is a refusal."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 12 == 11:
            prompt, answer = rng.choice(UNSAFE), REFUSAL
        else:
            prompt, answer, _ = rng.choice(TASKS)(rng)
        rows.append({"id": f"tiny_sft_{i}", "messages": _conversation(prompt, answer)})
    return rows


def preference_rows(n: int, seed: int) -> list[dict]:
    """Pairs: "Sure! <helpful answer>" over either a refusal or a terse wrong answer."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt, good, bad = rng.choice(TASKS)(rng)
        rejected = REFUSAL if rng.random() < 0.5 else bad
        rows.append({
            "source": "tiny",
            "prompt": prompt,
            "chosen": _conversation(prompt, f"Sure! {good}"),
            "rejected": _conversation(prompt, rejected),
        })
    return rows


def prompt_rows(n: int, seed: int) -> list[dict]:
    """Policy prompts in the schema of `allenai/tulu-2.5-prompts` (a `messages` list with one user turn)."""
    rng = random.Random(seed)
    return [{"id": f"tiny_prompt_{i}", "source": "tiny", "messages": [{"role": "user", "content": rng.choice(TASKS)(rng)[0]}]}
            for i in range(n)]


FILES = {
    "sft.jsonl": lambda: sft_rows(600, seed=1),
    "preferences_train.jsonl": lambda: preference_rows(256, seed=2),
    "preferences_test.jsonl": lambda: preference_rows(64, seed=3),
    "prompts.jsonl": lambda: prompt_rows(128, seed=4),
}


def render(name: str) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in FILES[name]())


def main() -> None:
    TINY_DIR.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (TINY_DIR / name).write_text(render(name))
        print(f"wrote {TINY_DIR / name}")


if __name__ == "__main__":
    main()
