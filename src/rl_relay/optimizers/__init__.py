"""rl-relay's optimisers for cluster_utils' ``hp_optimization``, and their settings checks.

``genetic`` (HPS-RL's steady-state genetic algorithm), ``dgd`` (XT's Distributed Grid
Descent), ``tpe`` (Optuna's TPE, the sampler of rl-baselines3-zoo) and ``pbt`` (Population
Based Training, ``rl_relay.pbt``) are cluster_utils ``Optimizer`` subclasses, registered
under those names in cluster_utils' optimizer registry by ``rl-relay hpo`` (``register``),
so that ``"optimizer_str": "genetic"`` works with all of cluster_utils' machinery.
``optimizer_problems`` tells ``rl-relay check`` what is wrong with an optimiser's settings,
for these and for cluster_utils' own optimisers.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from rl_relay.optimizers.checks import unknown_keys

#: optimizer_str -> "module:class" of rl-relay's optimisers (imported on registration).
OPTIMIZERS = {
    "genetic": "rl_relay.optimizers.genetic:GeneticOptimizer",
    "dgd": "rl_relay.optimizers.dgd:DGDOptimizer",
    "tpe": "rl_relay.optimizers.tpe:TPEOptimizer",
    "pbt": "rl_relay.pbt.optimizer:PBTOptimizer",
}
#: cluster_utils 3.0's nevergrad algorithms (``NGOptimizer.get_optimizer_dict``).
NEVERGRAD_ALGORITHMS = ("twopointsde", "oneplusone", "cma", "tbpsa", "pso", "randomsearch")
CEM_SETTINGS = ("num_jobs_in_elite", "with_restarts")
KNOWN = ("cem_metaoptimizer", "nevergrad", *OPTIMIZERS)


def optimizer_class(optimizer_str: str) -> type:
    module_name, _, class_name = OPTIMIZERS[optimizer_str].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def register(optimizer_dict: MutableMapping[str, Any]) -> None:
    """Add rl-relay's optimisers to cluster_utils' registry (``settings.optimizer_dict``)."""
    for name in OPTIMIZERS:
        optimizer_dict[name] = optimizer_class(name)


def optimizer_problems(
    optimizer_str: Any, optimizer_settings: Any, optimized_params: Any
) -> list[tuple[str, str]]:
    """(settings key, what is wrong and what to do) for the optimiser part of the settings."""
    if optimizer_str == "gridsearch":
        return [
            (
                "optimizer_str",
                "cluster_utils' hp_optimization cannot run 'gridsearch' (it needs a grid, not"
                " distributions): use python -m cluster_utils.grid_search for a full grid, or"
                " 'dgd' to search ordered value lists",
            )
        ]
    if optimizer_str not in KNOWN:
        return [("optimizer_str", f"is {optimizer_str!r}; use one of {', '.join(KNOWN)}")]
    if not isinstance(optimizer_settings, Mapping):
        return [
            (
                "optimizer_settings",
                f"is missing or not a mapping; {optimizer_str!r} needs one ({{}} for its"
                " defaults where it has them)",
            )
        ]
    params = optimized_params if isinstance(optimized_params, Sequence) else []
    problems: list[tuple[str, str]] = []
    if optimizer_str == "cem_metaoptimizer":
        problems += _known_keys(optimizer_settings, CEM_SETTINGS, optimizer_str, required=True)
        elite = optimizer_settings.get("num_jobs_in_elite")
        if elite is not None and (
            not isinstance(elite, int) or isinstance(elite, bool) or elite < 1
        ):
            problems.append(
                ("optimizer_settings.num_jobs_in_elite", f"is {elite!r}; give an integer >= 1")
            )
        restarts = optimizer_settings.get("with_restarts", False)
        if not isinstance(restarts, bool):
            # cluster_utils takes any truthy value as true: "no" would mean restarts
            problems.append(
                ("optimizer_settings.with_restarts", f"is {restarts!r}; give true or false")
            )
    elif optimizer_str == "nevergrad":
        problems += _known_keys(optimizer_settings, ("opt_alg",), optimizer_str, required=True)
        alg = optimizer_settings.get("opt_alg")
        if "opt_alg" in optimizer_settings and alg not in NEVERGRAD_ALGORITHMS:
            problems.append(
                (
                    "optimizer_settings.opt_alg",
                    f"is {alg!r}; use one of {', '.join(NEVERGRAD_ALGORITHMS)}"
                    " (twopointsde: differential evolution)",
                )
            )
        problems += _nevergrad_installed()
    else:
        module = importlib.import_module(OPTIMIZERS[optimizer_str].partition(":")[0])
        problems += module.settings_problems(optimizer_settings, params)
    return problems


def _known_keys(
    settings: Mapping[str, Any], known: Sequence[str], optimizer_str: str, required: bool
) -> list[tuple[str, str]]:
    problems = unknown_keys(settings, known, optimizer_str)
    if required:
        problems += [
            (f"optimizer_settings.{key}", f"is missing; {optimizer_str!r} needs it")
            for key in known
            if key not in settings
        ]
    return problems


def _nevergrad_installed() -> list[tuple[str, str]]:
    try:
        importlib.import_module("nevergrad")
    except ImportError:
        return [
            (
                "optimizer_str",
                "'nevergrad' needs the nevergrad package: pip install"
                " 'cluster_utils[runner,nevergrad]==3.0.*'",
            )
        ]
    return []
