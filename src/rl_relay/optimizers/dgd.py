"""``dgd``: Distributed Grid Descent over ordered discrete values (XT; Loynd et al. 2020).

Every optimised parameter is a ``Discrete`` list of values in their natural order. The
search starts from ``start`` (XT's ``tuned_value``; by default the middle value of each
list). Whenever a slot is free it takes the configuration with the best mean metric over
all its completed jobs and runs a random neighbour of it (one parameter moved one step up
or down its list) that has fewer completed jobs than the best has; when every neighbour
has as many, it runs the best again. A configuration's value is the mean over all its
jobs, so good configurations are re-run and their estimate firms up, and a lucky single
result is soon corrected. Like XT's ``eval_hp_search``, the history of the best
configuration is written to ``dgd_best_history.csv`` in the results directory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rl_relay.layout import ResultsPaths
from rl_relay.optimizers.adapter import RelayOptimizer
from rl_relay.optimizers.checks import seed_problems, unknown_keys
from rl_relay.optimizers.persist import write_result_file
from rl_relay.optimizers.space import DISCRETE, Config, Param, canonical, option_index

SETTINGS = ("start", "seed")

Point = tuple[int, ...]  # a configuration as indices into each parameter's options


def neighbours(point: Point, sizes: Sequence[int]) -> list[Point]:
    """Configurations one step up or down in exactly one parameter, inside the grid."""
    found = []
    for i, (index, size) in enumerate(zip(point, sizes, strict=True)):
        for step in (-1, 1):
            if 0 <= index + step < size:
                found.append(point[:i] + (index + step,) + point[i + 1 :])
    return found


def middle(size: int) -> int:
    """The middle index of a list (the lower of the two middles of an even-sized one)."""
    return (size - 1) // 2


@dataclass
class Stats:
    """The completed jobs of one configuration."""

    count: int = 0
    total: float = 0.0
    first_seen: int = 0

    @property
    def mean(self) -> float:
        return self.total / self.count


@dataclass
class Reign:
    """One stretch during which a configuration was the best (a row of the history)."""

    point: Point
    after_jobs: int  # completed jobs when it became best
    best_for: int = 0  # completed jobs it has been best for since
    jobs: int = 0  # its own job count (at the end of the stretch)
    mean: float = 0.0


@dataclass
class BestHistory:
    """The best configuration after each completed job, compressed to stretches."""

    reigns: list[Reign] = field(default_factory=list)

    def update(self, point: Point, completed: int, stats: Stats) -> None:
        if not self.reigns or self.reigns[-1].point != point:
            self.reigns.append(Reign(point, after_jobs=completed))
        reign = self.reigns[-1]
        reign.best_for += 1
        reign.jobs, reign.mean = stats.count, stats.mean


class GridDescent:
    """The pure algorithm on index points: ``ask`` a point, ``tell`` its metric."""

    def __init__(
        self, sizes: Sequence[int], minimize: bool, start: Point, seed: int | None = None
    ) -> None:
        self.sizes = tuple(sizes)
        self.minimize = minimize
        self.start = tuple(start)
        self.rng = np.random.default_rng(seed)
        self.stats: dict[Point, Stats] = {}
        self.completed = 0
        self.history = BestHistory()

    def best(self) -> Point | None:
        """Best mean; ties go to the configuration with more jobs, then the older one."""
        if not self.stats:
            return None
        sign = 1.0 if self.minimize else -1.0
        return min(
            self.stats,
            key=lambda p: (
                sign * self.stats[p].mean,
                -self.stats[p].count,
                self.stats[p].first_seen,
            ),
        )

    def count(self, point: Point) -> int:
        stats = self.stats.get(point)
        return stats.count if stats else 0

    def ask(self) -> Point:
        best = self.best()
        if best is None:
            return self.start
        fewer = [n for n in neighbours(best, self.sizes) if self.count(n) < self.count(best)]
        if not fewer:
            return best
        return fewer[int(self.rng.integers(len(fewer)))]

    def tell(self, point: Point, value: float) -> None:
        stats = self.stats.setdefault(tuple(point), Stats(first_seen=self.completed))
        stats.count += 1
        stats.total += value
        self.completed += 1
        best = self.best()
        assert best is not None
        self.history.update(best, self.completed, self.stats[best])


class DGDSearch:
    """``GridDescent`` on parameter values instead of indices."""

    def __init__(
        self, params: Sequence[Param], minimize: bool, start: Mapping[str, Any], seed: int | None
    ) -> None:
        self.params = list(params)
        point = tuple(
            option_index(p, start[p.name]) if p.name in start else middle(len(p.options))
            for p in self.params
        )
        self.grid = GridDescent([len(p.options) for p in self.params], minimize, point, seed)

    def values(self, point: Point) -> Config:
        return tuple(p.options[i] for p, i in zip(self.params, point, strict=True))

    def ask(self) -> Config:
        return self.values(self.grid.ask())

    def tell(self, config: Config, value: float) -> None:
        point = tuple(option_index(p, v) for p, v in zip(self.params, config, strict=True))
        self.grid.tell(point, value)

    def update(self, settings: Mapping[str, Any]) -> None:
        """Nothing to take: ``start`` and ``seed`` decide only the beginning of a search."""

    def history_csv(self, metric: str) -> str:
        """XT's ``eval_hp_search`` table: one row per stretch a configuration was best; the
        ``metric`` column is its mean over the configuration's jobs (as in reduced_data.csv)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [p.name for p in self.params] + ["after_jobs", "best_for_jobs", "jobs", metric]
        )
        for reign in self.grid.history.reigns:
            writer.writerow(
                list(self.values(reign.point))
                + [reign.after_jobs, reign.best_for, reign.jobs, reign.mean]
            )
        return out.getvalue()


class DGDOptimizer(RelayOptimizer):
    """``"optimizer_str": "dgd"``."""

    name = "dgd"

    @classmethod
    def make_search(cls, space: list[Param], minimize: bool, settings: dict[str, Any]) -> DGDSearch:
        return DGDSearch(space, minimize, dict(settings.get("start") or {}), settings.get("seed"))

    def write_state(self, directory: str) -> None:
        super().write_state(directory)
        text = self.search.history_csv(self.metric_to_optimize)
        write_result_file(ResultsPaths(Path(directory)).dgd_history, text.encode())


def settings_problems(
    settings: Mapping[str, Any], optimized_params: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """What is wrong with the settings for ``dgd``: (key, what to do)."""
    problems = unknown_keys(settings, SETTINGS, "dgd")
    options: dict[str, list[Any]] = {}
    for i, item in enumerate(optimized_params):
        name = item.get("param", f"#{i}")
        if item.get("distribution") != "Discrete" or not isinstance(item.get("options"), Sequence):
            problems.append(
                (
                    f"optimized_params[{i}] ({name})",
                    "dgd needs every optimised parameter as a Discrete list of values in their"
                    ' natural order: "distribution": "Discrete", "options": [v1, v2, ...]'
                    f" (got distribution {item.get('distribution')!r})",
                )
            )
        elif not item["options"]:
            problems.append(
                (f"optimized_params[{i}] ({name})", "has no options; list at least one")
            )
        else:
            options[name] = list(item["options"])
    start = settings.get("start") or {}
    if not isinstance(start, Mapping):
        problems.append(
            ("optimizer_settings.start", 'give a mapping {"<param>": <one of its options>, ...}')
        )
        start = {}
    for name, value in start.items():
        if name not in options:
            problems.append(
                (
                    f"optimizer_settings.start.{name}",
                    f"is not a Discrete optimised parameter; use one of {sorted(options)}",
                )
            )
            continue
        param = Param(name, DISCRETE, options=tuple(_hashable(o) for o in options[name]))
        if canonical(param, _hashable(value)) not in param.options:
            problems.append(
                (
                    f"optimizer_settings.start.{name}",
                    f"is {value!r}, not one of its options {options[name]}",
                )
            )
    return problems + seed_problems(settings)


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list | tuple) else value
