"""Checks of ``optimizer_settings`` that several optimisers share, as (key, what to do) pairs.

One wording for the same mistake whichever optimiser it is made for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def is_int(value: Any) -> bool:
    """An integer from JSON (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def unknown_keys(
    settings: Mapping[str, Any], known: Sequence[str], optimizer_str: str
) -> list[tuple[str, str]]:
    """Every key of ``settings`` that ``optimizer_str`` does not take."""
    return [
        (
            f"optimizer_settings.{key}",
            f"is not a setting of {optimizer_str!r}; it takes {', '.join(known)}",
        )
        for key in settings
        if key not in known
    ]


def seed_problems(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``seed``: absent, null or a non-negative integer."""
    seed = settings.get("seed")
    if seed is not None and (not is_int(seed) or seed < 0):
        return [("optimizer_settings.seed", f"is {seed!r}; give a non-negative integer or null")]
    return []
