"""Tolerant readers of files an HPO may still be writing: CSV, JSON, the server's log.

cluster_utils rewrites ``all_data.csv`` only after each optimisation iteration, jobs have
no ``metrics.csv`` until they finish, and any file may be caught half written; every
reader here returns what it can and never raises for that.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from rl_relay.layout import SERVER_LOG

logger = logging.getLogger("rl_relay.report.command")

_SERVER_LINE_RE = re.compile(
    r"Job (\d+) (died with error|exited to be resumed|has concluded, but has not sent results)(.*)"
)


def number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def scalar(text: str) -> Any:
    """A CSV cell as int, float or the string itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and complete rows of a CSV file that may be half written.

    Rows with another number of fields than the header (a line cut off mid-write) are
    dropped. Returns ``([], [])`` if the file is missing, empty or unreadable.
    """
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                return [], []
            rows = []
            try:
                for row in reader:
                    if len(row) == len(header):
                        rows.append(row)
            except csv.Error as err:  # e.g. a quote cut off at the end
                logger.debug("%s: stopped reading at %s", path, err)
            return header, rows
    except OSError:
        return [], []


def read_json(path: Path) -> Any:
    """Parsed JSON, or None if the file is missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_metrics(path: Path) -> dict[str, float]:
    """The one-row ``metrics.csv`` cluster_utils' ``finalize_job`` writes; {} if incomplete."""
    header, rows = read_csv_rows(path)
    if not rows:
        return {}
    values = {k: number(v) for k, v in zip(header, rows[0], strict=True)}
    return {k: v for k, v in values.items() if v is not None}


def _error_message(logged: str) -> str:
    """The message of a "died with error ['...']." line: cluster_utils logs a list's repr."""
    text = logged.strip().removesuffix(".")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    return str(value)


def server_events(procedure: Path) -> tuple[dict[int, list[str]], dict[int, int]]:
    """Errors and exits for resume per job id, from the server's ``cluster_run.log``."""
    errors: dict[int, list[str]] = {}
    resumed: dict[int, int] = {}
    try:
        text = (procedure / SERVER_LOG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return errors, resumed
    for match in _SERVER_LINE_RE.finditer(text):
        job_id, event, rest = int(match.group(1)), match.group(2), match.group(3)
        if event == "died with error":
            errors.setdefault(job_id, []).append(_error_message(rest))
        elif event.startswith("has concluded") and job_id not in errors:
            errors[job_id] = ["ended without sending results (cluster_utils considers it failed)"]
        elif event == "exited to be resumed":
            resumed[job_id] = resumed.get(job_id, 0) + 1
    return errors, resumed
