"""``key=value`` overrides as cluster_utils reads them, and what to say when it cannot.

cluster_utils reads an override's value as a Python literal (``ast.literal_eval``) in
``hp_optimization`` and in the job script alike. Standard library only: ``run_singularity``
reads a by-hand job's overrides on the host, where nothing but ``python3`` may be installed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from typing import Any

#: JSON's literals, which a Python literal spells differently
_JSON_WORDS = {"true": "True", "false": "False", "null": "None"}


def clip(text: str, limit: int = 100) -> str:
    """``text`` cut to ``limit`` characters for a message: an argument may be megabytes."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_override(override: str) -> tuple[str, Any]:
    """``(dotted key, value)`` of one override, read exactly as cluster_utils'
    ``add_cmd_line_params`` reads it (both sides stripped, the value a Python literal);
    ValueError saying what to write when it cannot be read.

    cluster_utils' own "Failed to parse value" does not explain JSON's ``true``/``null`` or
    text without quotes, the usual mistakes; the message names them with the spelling that
    works.
    """
    key, eq, value = (part.strip() for part in override.partition("="))
    shown = clip(override)
    if not key or not eq or not value:
        raise ValueError(
            f"override {shown!r}: give key=value, e.g. 'optimization_setting.number_of_samples=8'"
        )
    try:
        return key, ast.literal_eval(value)
    except Exception:  # noqa: BLE001 - whatever literal_eval raises (also on deep nesting)
        pass
    what = f"override {shown!r}: cluster_utils reads the value as a Python literal"
    bracketed = value.startswith(("[", "{", "("))
    words = sorted(set(re.findall(r"\b(?:true|false|null)\b", value)))
    if value in _JSON_WORDS or (bracketed and words):
        spelled = ", ".join(f"{_JSON_WORDS[w]} for {w}" for w in words)
        raise ValueError(f"{what}; write {spelled}")
    if not bracketed and not value.startswith(("'", '"')) and len(override) <= 100:
        raise ValueError(
            f"{what}; quote text, e.g. '{key}=\"{value}\"' (the outer quotes are the shell's)"
        )
    raise ValueError(f'{what} (a number, "quoted text", True/False/None, a [list] or a {{dict}})')


def unreadable_override(override: str) -> str | None:
    """What is wrong with one override cluster_utils cannot read, and what to write
    instead (``read_override``'s message); None when it reads it."""
    try:
        read_override(override)
    except ValueError as err:
        return str(err)
    return None


def read_overrides(overrides: Iterable[str]) -> list[tuple[str, Any]]:
    """``read_override`` of each, each read once; one ValueError naming every unreadable
    override."""
    pairs, problems = [], []
    for override in overrides:
        try:
            pairs.append(read_override(override))
        except ValueError as err:
            problems.append(str(err))
    if problems:
        raise ValueError("; ".join(problems))
    return pairs
