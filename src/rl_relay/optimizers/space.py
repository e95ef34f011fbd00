"""The search space of rl-relay's optimisers: cluster_utils' distributions as plain parameters.

cluster_utils' ``Distribution`` objects sample from numpy's global random state and are
refitted in place by its own optimiser. The genetic search and grid descent need
reproducible samples (their own seeded ``numpy.random.Generator``) from the distributions
as the settings file declares them, so each distribution is read once into a frozen
``Param``. A configuration is a tuple of values, one per parameter, in settings order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Config = tuple[Any, ...]

NORMAL = "normal"
LOGNORMAL = "lognormal"
DISCRETE = "discrete"
#: Rejection sampling gives up after this many draws outside the bounds and clips instead.
_MAX_REJECTIONS = 100


@dataclass(frozen=True)
class Param:
    """One optimised parameter: its dotted name and the distribution it is sampled from."""

    name: str
    kind: str
    lower: float = 0.0
    upper: float = 0.0
    integer: bool = False
    options: tuple[Any, ...] = ()

    @property
    def size(self) -> float:
        """How many distinct values it can take (``inf`` for a continuous parameter)."""
        if self.kind == DISCRETE:
            return len(self.options)
        if self.integer:
            return int(self.upper) - int(self.lower) + 1
        return math.inf


def param_from_distribution(distribution: Any) -> Param:
    """The ``Param`` of a cluster_utils 3 distribution object."""
    from cluster_utils.server import distributions as cu

    name = distribution.param_name
    if isinstance(distribution, cu.Discrete):
        return Param(name, DISCRETE, options=tuple(distribution.option_list))
    integer = isinstance(distribution, cu.DistributionOverIntegers)
    if isinstance(distribution, cu.TruncatedLogNormal):
        kind = LOGNORMAL
    elif isinstance(distribution, cu.TruncatedNormal):
        kind = NORMAL
    else:
        raise ValueError(f"{name}: distribution {type(distribution).__name__} is not supported")
    return Param(name, kind, distribution.lower, distribution.upper, integer)


def sample(param: Param, rng: np.random.Generator) -> Any:
    """A fresh value of ``param``, as Python scalar (jobs get it through ``repr``).

    Distributed like cluster_utils' initial (unfitted) distributions: uniform over the
    options; a normal with mean at the middle of the bounds and std a quarter of their
    span, for ``*LogNormal`` in log space; integers rounded. Draws outside the bounds are
    drawn again (truncation) rather than clipped, so the bounds get no extra weight.
    """
    if param.kind == DISCRETE:
        return param.options[int(rng.integers(len(param.options)))]
    lower, upper = float(param.lower), float(param.upper)
    log = param.kind == LOGNORMAL
    lo, hi = (math.log(lower), math.log(upper)) if log else (lower, upper)
    for _ in range(_MAX_REJECTIONS):
        x = float(rng.normal((lo + hi) / 2, (hi - lo) / 4))
        if lo <= x <= hi:
            break
    x = min(max(x, lo), hi)
    value = math.exp(x) if log else x
    value = min(max(value, lower), upper)  # exp(log(u)) may overshoot by an ulp
    if param.integer:
        return int(value + 0.5)
    return value


def space_size(params: Sequence[Param]) -> float:
    """How many distinct configurations exist (``inf`` with any continuous parameter)."""
    return math.prod(p.size for p in params) if params else 1


def canonical(param: Param, value: Any) -> Any:
    """``value`` as ``sample`` would give it, whatever pandas or JSON made of it.

    Results come back from cluster_utils as DataFrame cells (numpy scalars) or, recovered
    from a job's ``settings.json``, as JSON (lists for tuples); configurations are compared
    and hashed, so they must be normalised first.
    """
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        value = item()
    if isinstance(value, list):
        value = tuple(value)
    if param.kind == DISCRETE:
        for option in param.options:
            if option == value and type(option) is type(value):
                return option
        for option in param.options:
            if option == value:
                return option
        return value
    if param.integer:
        return int(value)
    return float(value)


def option_index(param: Param, value: Any) -> int:
    """Position of ``value`` in a discrete parameter's ordered options (ValueError if none)."""
    value = canonical(param, value)
    for i, option in enumerate(param.options):
        if option == value:
            return i
    raise ValueError(f"{param.name}: {value!r} is not one of its options {list(param.options)}")


def to_nested(params: Sequence[Param], config: Config) -> dict[str, Any]:
    """``{'config': {'rl_config': {'learning_rate': ...}}}``: the form cluster_utils' ask gives."""
    nested: dict[str, Any] = {}
    for param, value in zip(params, config, strict=True):
        *parents, leaf = param.name.split(".")
        node = nested
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return nested


def config_from_row(params: Sequence[Param], row: Mapping[str, Any]) -> Config:
    """The configuration of one result row (flattened dotted names, as in ``all_data.csv``)."""
    return tuple(canonical(p, row[p.name]) for p in params)
