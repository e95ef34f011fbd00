"""Continue ``cem_metaoptimizer`` with its own ``with_restarts`` setting.

cluster_utils 3.0.0 defect (still on its master): ``Metaoptimizer.try_load_from_pickle``
does ``_, with_restarts = optimizer_settings``, unpacking the settings dict's *keys*, so a
continued HPO gets ``with_restarts = "with_restarts"`` (or ``"num_jobs_in_elite"``): a
truthy string whatever the file says. ``ContinuableMetaoptimizer`` loads the same state
with the setting's value, and (``Continuable``) saves it soon after every result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cluster_utils.server.optimizers import Metaoptimizer

from rl_relay.optimizers.persist import Continuable


class ContinuableMetaoptimizer(Continuable, Metaoptimizer):
    """``cem_metaoptimizer``, saved soon after every result, continuing without the 3.0.0 bug."""

    saved_class = Metaoptimizer

    def continue_with(
        self, file: str, optimized_params: Sequence[Any], settings: dict[str, Any]
    ) -> None:
        if len(self.minimal_df) > 0:  # refit to the best so far, as cluster_utils does
            best = self.get_best_params()
            for distribution in optimized_params:
                distribution.fit(best[distribution.param_name])
        self.with_restarts = bool(settings["with_restarts"])
        self.params = [d.param_name for d in optimized_params]


def install(optimizer_dict: dict[str, Any]) -> None:
    optimizer_dict["cem_metaoptimizer"] = ContinuableMetaoptimizer
