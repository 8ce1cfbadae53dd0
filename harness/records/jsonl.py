"""JSON-lines files that stages append to (`lm_requests.jsonl`, `verdicts.jsonl`): read back on resume.

A process killed in the middle of an append leaves a torn last line; `read_jsonl(path, repair=True)` drops it (and
truncates it from the file, so the next append starts on a fresh line) instead of failing the stage forever. Any
other unparsable line is an error that names the file and the line.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


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
                print(f"[harness] {path}: dropping the torn last line {number} (a write cut short); it is redone")
                log.warning("%s: dropped torn last line %d", path, number)
                os.truncate(path, start)
                return rows
        start = end + 1
    if repair and data and not data.endswith(b"\n"):  # a whole last row cut before its newline
        with path.open("ab") as f:
            f.write(b"\n")
    return rows
