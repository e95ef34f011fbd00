"""``genetic``: a steady-state genetic algorithm over the optimised parameters (HPS-RL).

Genes are the optimised parameters. The first ``population_size`` configurations are
sampled from their distributions. After that every new job is a child: two parents drawn
at random from the successful jobs among the best ``parent_fraction`` so far (by the
metric, honouring ``minimize``), uniform crossover (each gene from either parent), then
mutation (each gene, with ``mutation_probability``, replaced by a fresh sample).
Steady-state: a child is made whenever cluster_utils has a free slot, so parallel jobs
never wait for a generation to finish. A configuration already proposed is not proposed
again while the space has untried ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rl_relay.optimizers.adapter import RelayOptimizer
from rl_relay.optimizers.checks import is_int, is_number, seed_problems, unknown_keys
from rl_relay.optimizers.space import Config, Param, sample, space_size

DEFAULTS: dict[str, Any] = {
    "population_size": 10,
    "parent_fraction": 0.25,
    "mutation_probability": 0.2,
    "seed": None,
}
#: Draws of a new child (then of a random configuration) before a repeat is accepted.
MAX_TRIES = 100


def crossover(a: Config, b: Config, rng: np.random.Generator) -> Config:
    """Uniform crossover: each gene from parent ``a`` or ``b`` with equal probability."""
    picks = rng.random(len(a)) < 0.5
    return tuple(x if pick else y for x, y, pick in zip(a, b, picks, strict=True))


def mutate(
    config: Config, params: Sequence[Param], probability: float, rng: np.random.Generator
) -> Config:
    """Each gene, with ``probability``, replaced by a fresh sample from its distribution."""
    hits = rng.random(len(config)) < probability
    return tuple(
        sample(p, rng) if hit else value for p, value, hit in zip(params, config, hits, strict=True)
    )


def parent_pool(
    results: Sequence[tuple[Config, float]], fraction: float, minimize: bool
) -> list[Config]:
    """The configurations of the best ``fraction`` of the results (at least two, if any)."""
    ranked = sorted(results, key=lambda r: r[1], reverse=not minimize)  # stable: ties by age
    size = min(len(ranked), max(2, math.ceil(fraction * len(ranked))))
    return [config for config, _ in ranked[:size]]


def pick_parents(pool: Sequence[Config], rng: np.random.Generator) -> tuple[Config, Config]:
    """Two parents at random, different jobs when the pool has two or more."""
    i, j = rng.choice(len(pool), size=2, replace=len(pool) < 2)
    return pool[int(i)], pool[int(j)]


class GeneticSearch:
    """The pure algorithm: ``ask`` a configuration, ``tell`` its metric."""

    def __init__(
        self,
        params: Sequence[Param],
        minimize: bool,
        population_size: int = DEFAULTS["population_size"],
        parent_fraction: float = DEFAULTS["parent_fraction"],
        mutation_probability: float = DEFAULTS["mutation_probability"],
        seed: int | None = None,
    ) -> None:
        self.params = list(params)
        self.minimize = minimize
        self.population_size = int(population_size)
        self.parent_fraction = float(parent_fraction)
        self.mutation_probability = float(mutation_probability)
        self.rng = np.random.default_rng(seed)
        self.results: list[tuple[Config, float]] = []
        self.proposed: set[Config] = set()
        self.n_asked = 0
        self.size = space_size(self.params)

    def random_config(self) -> Config:
        return tuple(sample(p, self.rng) for p in self.params)

    def child(self) -> Config:
        pool = parent_pool(self.results, self.parent_fraction, self.minimize)
        a, b = pick_parents(pool, self.rng)
        return mutate(crossover(a, b, self.rng), self.params, self.mutation_probability, self.rng)

    def ask(self) -> Config:
        in_first_generation = self.n_asked < self.population_size or not self.results
        makers: list[Callable[[], Config]] = (
            [self.random_config] if in_first_generation else [self.child, self.random_config]
        )
        config = self._new_config(makers)
        self.proposed.add(config)
        self.n_asked += 1
        return config

    def _new_config(self, makers: list[Callable[[], Config]]) -> Config:
        config = makers[0]()
        if len(self.proposed) >= self.size:  # every configuration was tried: repeats allowed
            return config
        for make in makers:
            for _ in range(MAX_TRIES):
                if config not in self.proposed:
                    return config
                config = make()
        return config  # (nearly) exhausted space: a repeat

    def tell(self, config: Config, value: float) -> None:
        self.results.append((config, value))
        self.proposed.add(config)

    def update(self, settings: Mapping[str, Any]) -> None:
        """New population size, fraction or mutation rate; the random stream goes on."""
        merged = {**DEFAULTS, **settings}
        self.population_size = int(merged["population_size"])
        self.parent_fraction = float(merged["parent_fraction"])
        self.mutation_probability = float(merged["mutation_probability"])


class GeneticOptimizer(RelayOptimizer):
    """``"optimizer_str": "genetic"``."""

    name = "genetic"

    @classmethod
    def make_search(
        cls, space: list[Param], minimize: bool, settings: dict[str, Any]
    ) -> GeneticSearch:
        return GeneticSearch(space, minimize, **{**DEFAULTS, **settings})


def settings_problems(
    settings: Mapping[str, Any], optimized_params: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """What is wrong with ``optimizer_settings`` for ``genetic``: (key, what to do)."""
    problems = unknown_keys(settings, list(DEFAULTS), "genetic")
    size = settings.get("population_size", DEFAULTS["population_size"])
    if not is_int(size) or size < 2:
        problems.append(
            ("optimizer_settings.population_size", f"is {size!r}; give an integer >= 2")
        )
    fraction = settings.get("parent_fraction", DEFAULTS["parent_fraction"])
    if not is_number(fraction) or not 0 < fraction <= 1:
        problems.append(
            (
                "optimizer_settings.parent_fraction",
                f"is {fraction!r}; give a number in (0, 1], e.g. 0.25 for the best quarter",
            )
        )
    probability = settings.get("mutation_probability", DEFAULTS["mutation_probability"])
    if not is_number(probability) or not 0 <= probability <= 1:
        problems.append(
            (
                "optimizer_settings.mutation_probability",
                f"is {probability!r}; give a number in [0, 1]",
            )
        )
    return problems + seed_problems(settings)
