"""Continue ``cem_metaoptimizer`` with its own ``with_restarts`` setting.

cluster_utils 3.0.0 defect (still on its master): ``Metaoptimizer.try_load_from_pickle``
does ``_, with_restarts = optimizer_settings``, unpacking the settings dict's *keys*, so a
continued HPO gets ``with_restarts = "with_restarts"`` (or ``"num_jobs_in_elite"``): a
truthy string whatever the file says. ``ContinuableMetaoptimizer`` loads the same state
with the setting's value, and (``Continuable``) saves it after every result.
"""

from __future__ import annotations

from typing import Any

from cluster_utils.server.optimizers import Metaoptimizer

from rl_relay.optimizers.persist import Continuable, continuable, load_to_continue


class ContinuableMetaoptimizer(Continuable, Metaoptimizer):
    """``cem_metaoptimizer``, saved after every result, continuing without the 3.0.0 bug."""

    @classmethod
    def try_load_from_pickle(
        cls,
        file: str,
        optimized_params: Any,
        metric_to_optimize: str,
        minimize: bool,
        report_hooks: Any,
        **optimizer_settings: Any,
    ) -> ContinuableMetaoptimizer | None:
        metaopt = load_to_continue(
            file, Metaoptimizer, optimized_params, metric_to_optimize, minimize, report_hooks
        )
        if metaopt is None:
            return None
        if len(metaopt.minimal_df) > 0:  # refit to the best so far, as cluster_utils does
            best = metaopt.get_best_params()
            for distribution in optimized_params:
                distribution.fit(best[distribution.param_name])
        metaopt.with_restarts = bool(optimizer_settings["with_restarts"])
        metaopt.params = [d.param_name for d in optimized_params]
        return continuable(metaopt, cls)


def install(optimizer_dict: dict[str, Any]) -> None:
    optimizer_dict["cem_metaoptimizer"] = ContinuableMetaoptimizer
