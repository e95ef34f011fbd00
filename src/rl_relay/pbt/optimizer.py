"""The cluster_utils optimiser ``"pbt"``: one ask per member, and the members' job parameter.

cluster_utils runs one job per ``ask()``. For PBT the population is the whole HPO: ask
``k`` starts member ``k`` with hyperparameters drawn from ``(seed, k)`` (cluster_utils'
initial distributions, reproducibly), and the members then decide among themselves through
the population directory (``rl_relay.pbt.member``); the optimiser only records the results
members report when they stop. Hence ``number_of_samples`` = ``population_size`` and
``n_jobs_per_iteration`` >= ``population_size`` (``whole_file_problems`` checks both).

On continue (the same ``results_dir`` and name again), cluster_utils numbers jobs from 0
again and their working directories are ``working_directories/<id>``: the loaded optimiser
asks from member 0 again, so member ``k`` is job ``k`` again and resumes from its own state.

``register()`` adds the optimiser to ``cluster_utils.server.settings.optimizer_dict`` (the
dict ``job_manager`` looks optimisers up in), in the process that runs hp_optimization.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from cluster_utils.base import constants
from cluster_utils.server.optimizers import Optimizer
from cluster_utils.server.utils import nested_to_dict

from rl_relay.layout import ResultsPaths
from rl_relay.metrics import DEFAULT_METRIC
from rl_relay.optimizers.persist import ContinueError, load_to_continue
from rl_relay.paramtree import plain
from rl_relay.pbt import settings as pbt_settings
from rl_relay.pbt.explore import ParamSpace, initial_hyperparameters
from rl_relay.pbt.settings import OPTIMIZER_NAME, PBTSettings
from rl_relay.pbt.spec import PARAM, encode_job_params

logger = logging.getLogger(__name__)

#: The parameter that tells a job which member it is (set by ``ask``).
MEMBER_PARAM = f"{PARAM}.member"


class PBTOptimizer(Optimizer):
    """cluster_utils optimiser for Population Based Training (``"optimizer_str": "pbt"``)."""

    def __init__(
        self,
        *,
        optimized_params: Sequence[Any],
        metric_to_optimize: str,
        minimize: bool,
        number_of_samples: int,
        report_hooks: Any = None,
        **optimizer_settings: Any,
    ) -> None:
        super().__init__(
            metric_to_optimize=metric_to_optimize,
            minimize=minimize,
            report_hooks=report_hooks,
            number_of_samples=number_of_samples,
            optimized_params=optimized_params,
        )
        self.pbt = PBTSettings.from_dict(plain(optimizer_settings), "optimizer_settings")
        if number_of_samples != self.pbt.population_size:
            raise ValueError(
                f"optimization_setting.number_of_samples is {number_of_samples}; with PBT every"
                f" sample is a member: set it to population_size ({self.pbt.population_size})"
            )
        self.space = [ParamSpace.from_distribution(d) for d in optimized_params]
        self.params = [*self.params, MEMBER_PARAM]  # one row per member in reduced_data.csv
        self.asked = 0

    def ask(self) -> dict[str, Any]:
        """The next member's initial hyperparameters (nested, as cluster_utils hands them on)."""
        member = self.asked
        if member >= self.pbt.population_size:
            raise RuntimeError(
                f"the PBT optimiser was asked for member {member} of a population of"
                f" {self.pbt.population_size}; set optimization_setting.number_of_samples to"
                " population_size"
            )
        self.asked += 1
        values = initial_hyperparameters(self.space, self.pbt.seed, member)
        items = [(name.split(constants.OBJECT_SEPARATOR), value) for name, value in values.items()]
        items.append((MEMBER_PARAM.split(constants.OBJECT_SEPARATOR), member))
        logger.info("PBT member %d starts with %s", member, values)
        return nested_to_dict(items)

    def tell(self, jobs: Any) -> None:
        """Record the results of finished members (their final score)."""
        frames = []
        for job in jobs if isinstance(jobs, list) else [jobs]:
            result = job.get_results()
            if result is not None:
                frames.append(result[0])
        if not frames:
            return
        new = pd.concat(frames, axis=0, sort=True)
        if MEMBER_PARAM in self.full_df and MEMBER_PARAM in new:
            # a continued PBT starts every member again, and each reports again: its row
            # replaces the one it sent before
            self.full_df = self.full_df[~self.full_df[MEMBER_PARAM].isin(new[MEMBER_PARAM])]
        super().tell(new, jobs)

    def save_data_and_self(self, directory: str) -> None:
        self.full_df.to_csv(os.path.join(directory, constants.FULL_DF_FILE))
        self.minimal_df.to_csv(os.path.join(directory, constants.REDUCED_DF_FILE))
        with open(os.path.join(directory, constants.STATUS_PICKLE_FILE), "wb") as f:
            pickle.dump(self, f)

    @classmethod
    def try_load_from_pickle(
        cls,
        file: str,
        optimized_params: Sequence[Any],
        metric_to_optimize: str,
        minimize: bool,
        report_hooks: Any,
        **optimizer_settings: Any,
    ) -> PBTOptimizer | None:
        """The saved optimiser of an HPO continued in the same results directory, or None."""
        # the space check below covers the parameters (PBT's include ``pbt.member``)
        loaded = load_to_continue(
            file,
            cls,
            optimized_params,
            metric_to_optimize,
            minimize,
            report_hooks,
            same_params=False,
        )
        if loaded is None:
            return None
        settings = PBTSettings.from_dict(plain(optimizer_settings), "optimizer_settings")
        space = [ParamSpace.from_distribution(d) for d in optimized_params]
        if settings != loaded.pbt or space != loaded.space:
            raise ContinueError(
                f"{file} is a PBT with other optimizer_settings or optimized_params; a PBT"
                " continues only with the settings it started with (or use a new results"
                " directory)"
            )
        loaded.asked = 0  # job ids start at 0 again: member k is job k again
        return loaded


def register() -> None:
    """Make ``"optimizer_str": "pbt"`` known to cluster_utils in this process."""
    from cluster_utils.server import settings

    settings.optimizer_dict[OPTIMIZER_NAME] = PBTOptimizer


def job_params_for_pbt(settings: Mapping[str, Any], results_dir: str | Path) -> dict[str, Any]:
    """The ``pbt.*`` fixed parameters the launcher adds to ``fixed_params`` of a PBT.

    ``settings``: the settings file as loaded; ``results_dir``: the procedure's results
    directory (``results_dir/optimization_procedure_name``, as cluster_utils resolves it).
    Flat dotted keys with scalar or tuple values, as cluster_utils' fixed parameters must
    be; a member reads them with ``MemberSpec.from_job_params``.
    """
    settings = plain(settings)
    setting = settings.get("optimization_setting") or {}
    return encode_job_params(
        population_dir=ResultsPaths(Path(results_dir)).population,
        settings=PBTSettings.from_dict(settings.get("optimizer_settings"), "optimizer_settings"),
        space=[ParamSpace.from_item(item) for item in settings.get("optimized_params") or []],
        metric=str(setting.get("metric_to_optimize", DEFAULT_METRIC)),
        minimize=bool(setting.get("minimize", False)),
    )


def settings_problems(
    optimizer_settings: Mapping[str, Any], optimized_params: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """What is wrong with ``optimizer_settings`` for ``pbt`` (``rl-relay check`` adds the
    checks that need the whole settings file: ``pbt.settings.whole_file_problems``)."""
    return pbt_settings.settings_problems(optimizer_settings)
