"""Replacing a cluster_utils function by a wrapper of it, once.

``install`` may run more than once in a process (tests, ``rl-relay hpo`` called twice from
Python); a second wrapper around the first would apply its change twice. The wrapper carries
a marker, and a function that already carries it is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MARKER = "_rl_relay"


def wrap_once(owner: Any, name: str, wrap: Callable[[Any], Any], marker: str = MARKER) -> None:
    """Set ``owner.name`` to ``wrap(owner.name)`` unless it already is such a wrapper.

    ``marker`` tells apart wrappers of the same function that compose (one per backend
    swap); the default suits a function wrapped by one patch only.
    """
    current = getattr(owner, name)
    if getattr(current, marker, False):
        return
    wrapped = wrap(current)
    setattr(wrapped, marker, True)
    setattr(owner, name, wrapped)
