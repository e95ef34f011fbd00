"""cluster_utils' ``Optimizer`` interface over a pure search (genetic, grid descent).

A search works on configurations (tuples of values) and metrics; this adapter turns them
into what cluster_utils' job manager needs: nested settings from ``ask``, jobs' result
rows into ``tell``, ``full_df``/``minimal_df`` (``all_data.csv``, ``reduced_data.csv``,
``best_jobs/``, progress bars), ``status.pickle`` and continuing from it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import pandas as pd
from cluster_utils.server.optimizers import Optimizer

from rl_relay.optimizers.persist import Continuable, ContinueError, finite
from rl_relay.optimizers.space import (
    Config,
    Param,
    config_from_row,
    param_from_distribution,
    to_nested,
)

logger = logging.getLogger(__name__)


class Search(Protocol):
    """What a pure search offers: propose a configuration, learn one result."""

    def ask(self) -> Config: ...

    def tell(self, config: Config, value: float) -> None: ...

    def update(self, settings: Mapping[str, Any]) -> None:
        """Take settings changed in the file since the state was saved (continuing)."""
        ...


class SearchOptimizer(Optimizer):
    """ask/tell of cluster_utils' interface over ``self.search``."""

    def __init__(
        self,
        *,
        metric_to_optimize: str,
        minimize: bool,
        report_hooks: Any,
        number_of_samples: int,
        optimized_params: Sequence[Any],
        **settings: Any,
    ) -> None:
        super().__init__(
            metric_to_optimize=metric_to_optimize,
            minimize=minimize,
            report_hooks=report_hooks,
            number_of_samples=number_of_samples,
            optimized_params=optimized_params,
        )
        self.space = [param_from_distribution(d) for d in optimized_params]
        self.search = self.make_search(self.space, bool(minimize), dict(settings))

    @classmethod
    def make_search(cls, space: list[Param], minimize: bool, settings: dict[str, Any]) -> Search:
        raise NotImplementedError

    def ask(self) -> dict[str, Any]:
        return to_nested(self.space, self.search.ask())

    def tell_search(self, row: Any, value: float) -> None:
        """Tell the search one job's result (``row``: the job's row of the results)."""
        self.search.tell(config_from_row(self.space, row), value)

    def tell(self, jobs: Any) -> None:
        jobs = list(jobs) if isinstance(jobs, list | tuple) else [jobs]
        frames = [results[0] for job in jobs if (results := job.get_results()) is not None]
        if not frames:
            for job in jobs:
                job.results_used_for_update = True
            return
        df = pd.concat(frames, ignore_index=True, sort=True)
        super().tell(df, jobs)  # cluster_utils: full_df, minimal_df, marks the jobs used
        for _, row in df.iterrows():
            value = row[self.metric_to_optimize]
            if finite(value):
                self.tell_search(row, float(value))
            else:
                logger.warning(
                    "job %s reported %s=%r; not used",
                    row.get("_id"),
                    self.metric_to_optimize,
                    value,
                )


class RelayOptimizer(Continuable, SearchOptimizer):
    """Base of rl-relay's optimisers; subclasses say how to build their search.

    ``Continuable`` comes first so that its ask/tell (counting, saving) wrap the search's.
    """

    #: The ``optimizer_str`` it is registered under.
    name: ClassVar[str] = ""

    def continue_with(
        self, file: str, optimized_params: Sequence[Any], settings: dict[str, Any]
    ) -> None:
        space = [param_from_distribution(d) for d in optimized_params]
        if space != self.space:
            changed = [new.name for new, old in zip(space, self.space, strict=True) if new != old]
            raise ContinueError(
                f"{file}: the distributions of {changed} changed since this HPO started;"
                " continue with the same optimized_params, or start over with --fresh"
            )
        self.search.update(settings)
