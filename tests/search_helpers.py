"""Drive a pure search (``ask``/``tell`` of configurations) on a synthetic objective."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def best_found(
    search: Any, objective: Callable[[tuple], float], budget: int, minimize: bool
) -> float:
    """The best objective value ``budget`` asks reach (higher is better).

    A minimising search is told the negated value, so the same objective tests both
    directions.
    """
    sign = -1 if minimize else 1
    best = -math.inf
    for _ in range(budget):
        config = search.ask()
        value = objective(config)
        search.tell(config, sign * value)
        best = max(best, value)
    return best
