"""The search space every method of the benchmark shares, and its translations.

Which side adapts: the zoo-space settings files ``hp_optim/hp_optim_{ppo,sac}_zoo_space.json``
are the one definition of the space, and rl_zoo3's sampler is replaced in-process by one that
asks Optuna for exactly their parameters (``zoo.py``). Only that direction
gives identical spaces: cluster_utils samples independent scalars from five distributions,
Optuna can sample each of those, but cluster_utils cannot express the zoo's derived
parameters (``gamma = 1 - one_minus_gamma`` log-uniform, ``net_arch`` presets such as "tiny" =
one layer). And the settings files are what users start from, so the benchmark measures the
space rl-relay ships. Where the files differ from rl_zoo3 2.9.2's ``hyperparams_opt.py``
(docs/benchmark.md has the table): ``1 - gamma`` and ``1 - gae_lambda`` are a log-spaced grid
instead of log-uniform; ``net_arch`` is two independently chosen layer widths instead of the
presets (PPO's one-layer "tiny" is missing); cluster_utils' initial distributions are
(log-)normal around the middle of the bounds, Optuna's uniform (each optimiser keeps its
own prior). ``zoo_native_overrides`` maps the zoo's own parameters onto rl-relay's for the
optional ``zoo-native`` method, which runs rl_zoo3 with its sampler untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: cluster_utils distribution -> (value kind, log scale)
NUMERIC = {
    "TruncatedNormal": ("float", False),
    "TruncatedLogNormal": ("float", True),
    "IntNormal": ("int", False),
    "IntLogNormal": ("int", True),
}


class SpaceError(ValueError):
    """A settings file's search space cannot be shared with Optuna."""


@dataclass(frozen=True)
class Param:
    """One optimised parameter, named as rl-relay names it (``config.<file>.<key>[:i]``)."""

    name: str
    kind: str  # "float", "int" or "categorical"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    options: tuple[Any, ...] = ()

    def coerce(self, value: Any) -> Any:
        """A value read back from a CSV (text) or Optuna, as the template expects it."""
        if self.kind == "int":
            return int(round(float(value)))
        if self.kind == "float":
            return float(value)
        for option in self.options:
            if option == value or str(option) == str(value):
                return option
            if not isinstance(option, str) and _number(value) == option:
                return option
        raise SpaceError(f"{self.name}: {value!r} is not one of {list(self.options)}")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def space_of(settings: Mapping[str, Any], source: str = "the settings") -> list[Param]:
    """The optimised parameters of a cluster_utils settings dict."""
    params = []
    for item in settings.get("optimized_params", []):
        name, distribution = item.get("param"), item.get("distribution")
        if distribution == "Discrete":
            options = tuple(item.get("options") or ())
            if not options:
                raise SpaceError(f"{source}: {name}: a Discrete parameter needs options")
            params.append(Param(name, "categorical", options=options))
        elif distribution in NUMERIC:
            kind, log = NUMERIC[distribution]
            low, high = item["bounds"]
            params.append(Param(name, kind, float(low), float(high), log))
        else:
            raise SpaceError(
                f"{source}: {name}: distribution {distribution!r} has no Optuna counterpart"
                f" here (use one of {', '.join([*NUMERIC, 'Discrete'])})"
            )
    return params


def suggest(trial: Any, space: list[Param]) -> dict[str, Any]:
    """One configuration from an Optuna trial, keyed by rl-relay's parameter names."""
    values = {}
    for p in space:
        if p.kind == "categorical":
            values[p.name] = trial.suggest_categorical(p.name, list(p.options))
        elif p.kind == "int":
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return values


def restrict(settings: Mapping[str, Any], limits: Mapping[str, tuple[float, float]]) -> dict:
    """A copy whose Discrete options (and numeric bounds) lie within ``limits[name]``.

    ``--quick`` uses it to leave out the corners of the space that take minutes per trial
    (PPO's 4-sample minibatches over 32k-step rollouts), for every method alike.
    """
    out = copy.deepcopy(dict(settings))
    for item in out.get("optimized_params", []):
        if item.get("param") not in limits:
            continue
        low, high = limits[item["param"]]
        if item.get("distribution") == "Discrete":
            kept = [o for o in item["options"] if low <= o <= high]
            if not kept:
                raise SpaceError(f"{item['param']}: no option within [{low}, {high}]")
            item["options"] = kept
        else:
            lo, hi = max(item["bounds"][0], low), min(item["bounds"][1], high)
            if not lo < hi:
                raise SpaceError(f"{item['param']}: bounds do not meet [{low}, {high}]")
            item["bounds"] = [lo, hi]
    return out


def fixed_overrides(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``config.<file>.<key>`` values the settings fix for every job."""
    fixed = settings.get("fixed_params", {})
    return {k: v for k, v in fixed.items() if k.startswith("config.") and "." in k[7:]}


# -- rl_zoo3 2.9.2's own PPO/SAC parameters (hyperparams_opt.py) -> rl-relay overrides -----
_PPO_NETS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}
_OFF_POLICY_NETS = {
    "small": [64, 64],
    "medium": [256, 256],
    "big": [400, 300],
    "large": [256, 256, 256],
    "verybig": [512, 512, 512],
}


def zoo_native_overrides(algo: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """rl_zoo3's sampled PPO or SAC parameters as rl-relay ``config.rl_config`` overrides.

    The same conversion as the zoo's ``convert_onpolicy_params``/``convert_offpolicy_params``;
    PPO's ``dict(pi=net, vf=net)`` is the list ``net`` (SB3 builds separate networks).
    """
    rl = "config.rl_config."
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "one_minus_gamma":
            out[rl + "gamma"] = 1 - value
        elif key == "one_minus_gae_lambda":
            out[rl + "gae_lambda"] = 1 - value
        elif key.endswith("_pow"):
            out[rl + key[: -len("_pow")]] = 2 ** int(value)
        elif key == "net_arch":
            nets = _PPO_NETS if algo == "ppo" else _OFF_POLICY_NETS
            out[rl + "policy_kwargs.net_arch"] = list(nets[value])
        elif key == "activation_fn":
            out[rl + "policy_kwargs.activation_fn"] = value
        elif key == "train_freq":
            out[rl + "train_freq"] = int(value)
            out[rl + "gradient_steps"] = int(value)  # the zoo's update-to-data ratio of 1
        else:
            out[rl + key] = value
    return out


def rollouts_within(settings: Mapping[str, Any], steps: int, n_envs: int) -> dict:
    """A copy whose ``n_steps`` options are those whose rollout (``n_steps x n_envs``) fits in
    ``steps``: a chained iteration must hold one rollout (the learner refuses one that
    does not, and so does ``rl-relay check``). Other parameters stay as they are."""
    out = copy.deepcopy(dict(settings))
    for item in out.get("optimized_params", []):
        if item.get("param") == "config.rl_config.n_steps" and "options" in item:
            item["options"] = [n for n in item["options"] if n * n_envs <= steps] or [
                min(item["options"])
            ]
    return out


def discretize(settings: Mapping[str, Any], points: int) -> dict:
    """A copy whose numeric parameters are ordered grids over the same ranges (for ``dgd``).

    Log-scaled ranges get log-spaced points, integers the distinct rounded ones; values are
    rounded to 3 significant digits. Discrete parameters stay as they are.
    """
    out = copy.deepcopy(dict(settings))
    for item in out.get("optimized_params", []):
        kind_log = NUMERIC.get(item.get("distribution"))
        if kind_log is None:
            continue
        (kind, log), (low, high), name = kind_log, item["bounds"], item["param"]
        grid: list[float] = []
        for i in range(points):
            f = i / (points - 1)
            value = low * (high / low) ** f if log else low + (high - low) * f
            value = round(value) if kind == "int" else float(f"{value:.3g}")
            if value not in grid:
                grid.append(value)
        item.clear()
        item.update(param=name, distribution="Discrete", options=grid)
    return out
