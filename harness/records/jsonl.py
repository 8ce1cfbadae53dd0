"""JSON-lines files that stages and caches append to (`lm_requests.jsonl`, `verdicts.jsonl`, the generation cache's
`answers.jsonl`): read back on resume.

A process killed in the middle of an append leaves a torn last line; `read_jsonl(path, repair=True)` drops it (and
truncates it from the file, so the next append starts on a fresh line), with one line on the console naming the file,
instead of failing every later run. Any other unparsable line is an error that names the file and the line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness import console


def read_jsonl(path: Path, repair: bool = False) -> list:
    path = Path(path)
    data = path.read_bytes()
    rows, start = [], 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        end = start + len(line)
        if line.strip():
            try:
                rows.append(json.loads(line.decode("utf-8")))
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                last = not any(rest.strip() for rest in lines[number:])
                if not (repair and last):
                    raise ValueError(f"{path}, line {number}: not a JSON line ({exc})") from exc
                console.say(f"[harness] WARNING: {path}: dropping its torn last line {number} (a write cut short); "
                            "what it held is computed again")
                os.truncate(path, start)
                return rows
        start = end + 1
    if repair and data and not data.endswith(b"\n"):  # a whole last row cut before its newline
        with path.open("ab") as f:
            f.write(b"\n")
    return rows
