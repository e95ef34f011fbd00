"""Continue ``nevergrad``, and tell it results it did not ask for.

cluster_utils 3.0.0 defect (still on its master): ``NGOptimizer.try_load_from_pickle``
builds a throw-away nevergrad optimiser with ``instrumentation=``, a keyword nevergrad no
longer has (it is ``parametrization=``): a TypeError on every continue.
``ContinuableNGOptimizer`` does the same check (the saved optimiser runs the algorithm
asked for) with the right keyword, and (``Continuable``) saves its state soon after every result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cluster_utils.server.optimizers import NGOptimizer

from rl_relay.optimizers.persist import Continuable, ContinueError


class ContinuableNGOptimizer(Continuable, NGOptimizer):
    """``nevergrad``, saved soon after every result, continuing without the 3.0.0 bug."""

    saved_class = NGOptimizer

    def continue_with(
        self, file: str, optimized_params: Sequence[Any], settings: dict[str, Any]
    ) -> None:
        algorithm = settings["opt_alg"]
        expected = self.get_optimizer_dict()[algorithm](parametrization=self.instrumentation)
        if type(self.optimizer) is not type(expected):
            raise ContinueError(
                f"{file} holds a nevergrad {type(self.optimizer).__name__}, the settings ask"
                f" for opt_alg {algorithm!r}: continue with the same opt_alg, or --fresh"
            )
        self.candidates.pop(-1, None)  # never saved by us; harmless if cluster_utils did

    def tell(self, jobs: Any) -> None:
        """Results of jobs asked by a driver that died before saving their candidate (or
        recovered from disk) are told to nevergrad as points it did not ask for."""
        for job in jobs if isinstance(jobs, list | tuple) else [jobs]:
            results = job.get_results()
            if results is not None and job.id not in self.candidates:
                row = results[0].iloc[0]
                values = {name: _python(row[name]) for name in self.params}
                self.candidates[job.id] = self.optimizer.parametrization.spawn_child(
                    new_value=((), values)
                )
        super().tell(jobs)


def _python(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def install(optimizer_dict: dict[str, Any]) -> None:
    optimizer_dict["nevergrad"] = ContinuableNGOptimizer
