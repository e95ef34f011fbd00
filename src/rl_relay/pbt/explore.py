"""Sample and perturb hyperparameters over cluster_utils' ``optimized_params`` (pure).

PBT's explore step (Ray Tune's ``PopulationBasedTraining._explore``): each hyperparameter is,
with ``resample_probability``, drawn afresh from its distribution, else perturbed: a number
is multiplied by one of ``perturbation_factors``, a ``Discrete`` value moves to a
neighbouring option. Results stay within the bounds, integers stay integers, and every value
is a plain Python type (JSON- and cluster_utils-ready, never a numpy scalar).

The distributions are cluster_utils' (``TruncatedNormal``: normal with mean the middle of the
bounds and std a quarter of their width, clipped; ``TruncatedLogNormal`` the same in log
space; ``Int*`` rounded; ``Discrete`` uniform over ``options``), drawn from a numpy
``Generator`` instead of numpy's global state, so that every draw is reproducible from
PBT's seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rl_relay.paramtree import plain

DISTRIBUTIONS = ("TruncatedNormal", "TruncatedLogNormal", "IntNormal", "IntLogNormal", "Discrete")
INTEGER = ("IntNormal", "IntLogNormal")
LOG = ("TruncatedLogNormal", "IntLogNormal")
#: Independent random streams per purpose: initial hyperparameters, decisions.
INIT_STREAM = 0
DECIDE_STREAM = 1


class SpaceError(ValueError):
    """An ``optimized_params`` item PBT cannot sample or perturb."""


def rng_for(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """A generator determined by ``(seed, stream, *keys)`` alone (numpy's SeedSequence)."""
    return np.random.default_rng([int(seed), int(stream), *(int(k) for k in keys)])


@dataclass(frozen=True)
class ParamSpace:
    """One optimised hyperparameter: its cluster_utils name and distribution."""

    param: str
    distribution: str
    #: (lower, upper) for the numeric distributions
    bounds: tuple[float, float] | None = None
    #: the choices of a Discrete distribution (plain JSON values)
    options: tuple[Any, ...] | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ParamSpace:
        """From a settings file's ``optimized_params`` entry (as cluster_utils reads it)."""
        item = plain(item)
        if not isinstance(item, dict):
            raise SpaceError(f"{item!r} is not an object with param and distribution")
        param, distribution = item.get("param"), item.get("distribution")
        if not isinstance(param, str) or not param:
            raise SpaceError('needs "param": the parameter name, e.g. "config.rl_config.gamma"')
        if distribution not in DISTRIBUTIONS:
            raise SpaceError(
                f"{param!r}: distribution {distribution!r} is not one PBT can perturb; use one"
                f" of {', '.join(DISTRIBUTIONS)}"
            )
        if distribution == "Discrete":
            options = item.get("options", item.get("bounds"))
            if not isinstance(options, list) or not options:
                raise SpaceError(f'{param!r}: a Discrete distribution needs a non-empty "options"')
            return cls(param, distribution, options=tuple(options))
        bounds = item.get("bounds")
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(_is_number(b) for b in bounds)
            or not bounds[0] < bounds[1]
        ):
            raise SpaceError(f'{param!r}: "bounds" must be [lower, upper] with lower < upper')
        if distribution in INTEGER and not all(isinstance(b, int) for b in bounds):
            raise SpaceError(f"{param!r}: the bounds of {distribution} must be integers")
        if distribution in LOG and bounds[0] < 1e-10:
            raise SpaceError(f"{param!r}: the bounds of {distribution} must be positive")
        return cls(param, distribution, bounds=(bounds[0], bounds[1]))

    @classmethod
    def from_distribution(cls, distribution: Any) -> ParamSpace:
        """From one of cluster_utils' distribution objects (what an optimiser is given)."""
        name = type(distribution).__name__
        if name == "Discrete":
            return cls.from_item(
                {
                    "param": distribution.param_name,
                    "distribution": name,
                    "options": plain(list(distribution.option_list)),
                }
            )
        return cls.from_item(
            {
                "param": distribution.param_name,
                "distribution": name,
                "bounds": plain([distribution.lower, distribution.upper]),
            }
        )

    def to_item(self) -> dict[str, Any]:
        """The ``optimized_params`` entry again."""
        item: dict[str, Any] = {"param": self.param, "distribution": self.distribution}
        if self.options is not None:
            item["options"] = list(self.options)
        else:
            item["bounds"] = list(self.bounds or ())
        return item

    @property
    def is_integer(self) -> bool:
        return self.distribution in INTEGER


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _round(value: float) -> int:
    return int(math.floor(value + 0.5))


def _clip(space: ParamSpace, value: float) -> int | float:
    lower, upper = space.bounds  # type: ignore[misc]
    value = min(max(value, lower), upper)
    return int(min(max(_round(value), lower), upper)) if space.is_integer else float(value)


def sample(space: ParamSpace, rng: np.random.Generator) -> Any:
    """A fresh draw from the parameter's distribution."""
    if space.options is not None:
        return plain(space.options[int(rng.integers(len(space.options)))])
    lower, upper = space.bounds  # type: ignore[misc]
    if space.distribution in LOG:
        low, high = math.log(lower), math.log(upper)
        value = math.exp(float(rng.normal((low + high) / 2, (high - low) / 4)))
    else:
        value = float(rng.normal((lower + upper) / 2, (upper - lower) / 4))
    return _clip(space, value)


def _option_index(space: ParamSpace, value: Any) -> int | None:
    wanted = plain(value)
    for i, option in enumerate(space.options or ()):
        if plain(option) == wanted and type(plain(option)) is type(wanted):
            return i
    for i, option in enumerate(space.options or ()):  # 32 == 32.0
        if plain(option) == wanted:
            return i
    return None


def valid(space: ParamSpace, value: Any) -> bool:
    """Whether ``value`` can be perturbed (else it is resampled, as Ray does)."""
    if space.options is not None:
        return _option_index(space, value) is not None
    return _is_number(value)


def perturb(
    space: ParamSpace, value: Any, rng: np.random.Generator, factors: Sequence[float]
) -> Any:
    """A neighbouring option, or the value times a random factor, within the bounds.

    An integer that the factor would leave unchanged after rounding (1 * 1.2) moves by one
    in the factor's direction instead, so that small integers can change at all.
    """
    if not valid(space, value):
        return sample(space, rng)
    if space.options is not None:
        index = _option_index(space, value)
        assert index is not None
        step = 1 if rng.random() < 0.5 else -1
        last = len(space.options) - 1
        if last == 0:
            return plain(space.options[0])
        new = index + step
        if not 0 <= new <= last:  # at an end the only neighbour is the other side
            new = index - step
        return plain(space.options[new])
    factor = float(factors[int(rng.integers(len(factors)))])
    moved = float(value) * factor
    if space.is_integer:
        rounded = _round(moved)
        if rounded == round(value) and moved != value:
            rounded += 1 if moved > value else -1
        return _clip(space, rounded)
    return _clip(space, moved)


def explore(
    hyperparameters: Mapping[str, Any],
    space: Sequence[ParamSpace],
    rng: np.random.Generator,
    resample_probability: float,
    factors: Sequence[float],
) -> dict[str, Any]:
    """New values for every parameter of ``space`` (in its order), others kept as they are.

    Per parameter: one uniform draw decides resample (below ``resample_probability``, or
    when the current value cannot be perturbed) or perturb; then the draws of that step.
    """
    new = {key: plain(value) for key, value in hyperparameters.items()}
    for item in space:
        current = hyperparameters.get(item.param)
        if rng.random() < resample_probability or not valid(item, current):
            new[item.param] = sample(item, rng)
        else:
            new[item.param] = perturb(item, current, rng, factors)
    return new


def initial_hyperparameters(space: Sequence[ParamSpace], seed: int, member: int) -> dict[str, Any]:
    """Member ``member``'s starting point: one draw per parameter from its own stream."""
    rng = rng_for(seed, INIT_STREAM, member)
    return {item.param: sample(item, rng) for item in space}
