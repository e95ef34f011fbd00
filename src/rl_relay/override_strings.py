"""``key=value`` overrides as cluster_utils reads them, and what to say when it cannot.

cluster_utils reads an override's value as a Python literal (``ast.literal_eval``) in
``hp_optimization`` and in the job script alike. Standard library only: ``run_singularity``
reads a by-hand job's overrides on the host, where nothing but ``python3`` may be installed.
"""

from __future__ import annotations

import ast
import re
from typing import Any

#: JSON's literals, which a Python literal spells differently
_JSON_WORDS = {"true": "True", "false": "False", "null": "None"}


def clip(text: str, limit: int = 100) -> str:
    """``text`` cut to ``limit`` characters for a message: an argument may be megabytes."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unreadable_override(override: str) -> str | None:
    """What is wrong with one ``key=value`` override cluster_utils cannot read, and what to
    write instead; None when it reads it.

    cluster_utils reads each value as a Python literal (``ast.literal_eval``), so JSON's
    ``true``/``null`` and text without quotes, the mistakes its own "Failed to parse value"
    does not explain, are named here with the spelling that works.
    """
    key, eq, value = (part.strip() for part in override.partition("="))
    shown = clip(override)
    if not key or not eq or not value:
        return (
            f"override {shown!r}: give key=value, e.g. 'optimization_setting.number_of_samples=8'"
        )
    try:
        ast.literal_eval(value)
    except Exception:  # noqa: BLE001 - whatever literal_eval raises (also on deep nesting)
        pass
    else:
        return None
    what = f"override {shown!r}: cluster_utils reads the value as a Python literal"
    bracketed = value.startswith(("[", "{", "("))
    words = sorted(set(re.findall(r"\b(?:true|false|null)\b", value)))
    if value in _JSON_WORDS or (bracketed and words):
        spelled = ", ".join(f"{_JSON_WORDS[w]} for {w}" for w in words)
        return f"{what}; write {spelled}"
    if not bracketed and not value.startswith(("'", '"')) and len(override) <= 100:
        return f"{what}; quote text, e.g. '{key}=\"{value}\"' (the outer quotes are the shell's)"
    return f'{what} (a number, "quoted text", True/False/None, a [list] or a {{dict}})'


def read_override(override: str) -> tuple[str, Any]:
    """``(dotted key, value)`` of one override, read exactly as cluster_utils'
    ``add_cmd_line_params`` reads it (both sides stripped); ValueError saying what to write
    when it cannot be read."""
    if problem := unreadable_override(override):
        raise ValueError(problem)
    key, _, value = override.partition("=")
    return key.strip(), ast.literal_eval(value.strip())
