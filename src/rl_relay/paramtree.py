"""Job parameters as trees: nested (cluster_utils 3) or flat dotted (hand-written files).

cluster_utils 3 hands a job ``{'config': {'rl_config': {'learning_rate': 0.1}}}``; a
hand-written parameter file may say ``{'config.rl_config.learning_rate': 0.1}``; both mean
the same. Every reader of parameters goes through these helpers, so the two forms are
treated alike everywhere. Standard library only: ``run_singularity`` imports this on the
host, where nothing but ``python3`` may be installed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import Any

SEPARATOR = "."
_MISSING = object()


def plain(value: Any) -> Any:
    """JSON-ready copy: mappings become dicts, tuples lists, numpy scalars Python numbers.

    smart_settings gives tuples for lists, and cluster_utils' samplers give numpy scalars
    (``numpy.int64`` is not JSON serialisable); anything written to a file passes here.
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, enum.Enum):  # cluster_utils' generate_report setting
        return value.name
    item = getattr(value, "item", None)  # numpy scalars, without importing numpy
    if callable(item) and getattr(value, "shape", None) == ():
        return item()
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return plain(tolist())
    return value


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted name, leaf)`` for every leaf; keys already dotted stay as they are."""
    for key, value in tree.items():
        name = f"{prefix}{SEPARATOR}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            yield from flatten(value, name)
        else:
            yield name, value


def lookup(params: Mapping[str, Any], dotted: str, default: Any = _MISSING) -> Any:
    """``params[dotted]`` in flat form, else walked through nested mappings.

    Also finds mixed forms (``{'config': {'rl_config.learning_rate': 1}}``).
    Raises KeyError when absent and no default is given.
    """
    found = _find(params, dotted)
    if found is not _MISSING:
        return found
    if default is _MISSING:
        raise KeyError(dotted)
    return default


def _find(params: Mapping[str, Any], dotted: str) -> Any:
    """``lookup`` without the default: ``_MISSING`` when absent at any depth."""
    if dotted in params:
        return params[dotted]
    head, sep, rest = dotted.partition(SEPARATOR)
    if sep and isinstance(params.get(head), Mapping):
        return _find(params[head], rest)
    return _MISSING


def set_dotted(params: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` in nested form, creating the intermediate mappings."""
    node = params
    *parents, last = dotted.split(SEPARATOR)
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def discard(params: dict[str, Any], dotted: str) -> None:
    """Remove ``dotted`` in whichever form it is held (flat, nested or mixed); absent: no-op."""
    params.pop(dotted, None)
    head, sep, rest = dotted.partition(SEPARATOR)
    if sep and isinstance(params.get(head), dict):
        discard(params[head], rest)


def subtree(params: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Everything under ``prefix`` as one nested dict, from the nested and the flat form.

    ``{'singularity': {'image': 'a'}, 'singularity.env': {'X': '1'}}`` gives
    ``{'image': 'a', 'env': {'X': '1'}}``; values that are mappings stay mappings.
    """
    nested = params.get(prefix)
    found: dict[str, Any] = plain(nested) if isinstance(nested, Mapping) else {}
    start = prefix + SEPARATOR
    for key, value in params.items():
        if isinstance(key, str) and key.startswith(start):
            set_dotted(found, key[len(start) :], plain(value))
    return found


def top_level_names(params: Mapping[str, Any]) -> set[str]:
    """The first component of every parameter name (``config`` for ``config.rl_config.x``)."""
    return {str(key).split(SEPARATOR, 1)[0] for key in params}
