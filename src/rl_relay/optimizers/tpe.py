"""``tpe``: Optuna's Tree-structured Parzen Estimator, the sampler rl-baselines3-zoo searches with.

Users who tune SB3 agents with ``rl_zoo3.train -optimize`` get the same sampler here, with
rl-relay's cluster jobs, containers and chained iterations: multivariate TPE, whose first
``n_startup_trials`` configurations are drawn at random (the zoo's defaults: 10, and
``multivariate=True``). TPE's prior over a parameter is uniform within its bounds (in log
space for the ``*LogNormal`` distributions), as Optuna's ``suggest_float(log=True)``; the
normal shape cluster_utils gives those distributions is not used. Discrete options are
categories, so options of any type work. Seeded, the proposals are reproducible for the
same order of results. Needs optuna (``pip install 'rl-relay[tpe]'``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from rl_relay.metrics import STOPPED_EARLY
from rl_relay.optimizers.adapter import RelayOptimizer
from rl_relay.optimizers.checks import is_int, seed_problems, unknown_keys
from rl_relay.optimizers.persist import finite
from rl_relay.optimizers.space import (
    DISCRETE,
    LOGNORMAL,
    Config,
    Param,
    config_from_row,
    option_index,
)
from rl_relay.stopping.settings import SECTION

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {"n_startup_trials": 10, "multivariate": True, "seed": None}
#: Set by ``rl-relay hpo`` (not in the settings file) when Optuna's pruners stop jobs: the
#: study then lives in this journal file under this name, and every job is told its trial.
STORAGE_SETTINGS = ("storage", "study_name")
INSTALL = "'tpe' needs the optuna package: pip install 'rl-relay[tpe]'"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        raise ImportError(INSTALL) from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial otherwise
    return optuna


def distributions(params: Sequence[Param]) -> dict[str, Any]:
    """Optuna's distribution of each parameter; discrete ones as indices of their options."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: dict[str, Any] = {}
    for p in params:
        if p.kind == DISCRETE:
            found[p.name] = CategoricalDistribution(tuple(range(len(p.options))))
            continue
        log = p.kind == LOGNORMAL
        if p.integer:
            if log and p.lower < 1:
                raise ValueError(
                    f"{p.name}: 'tpe' samples an integer log distribution from 1 up; its lower"
                    f" bound is {p.lower}: raise it to 1 or use IntNormal"
                )
            found[p.name] = IntDistribution(int(p.lower), int(p.upper), log=log)
        else:
            found[p.name] = FloatDistribution(float(p.lower), float(p.upper), log=log)
    return found


class TPESearch:
    """The pure search: an in-memory Optuna study asked and told through configurations."""

    def __init__(
        self,
        params: Sequence[Param],
        minimize: bool,
        n_startup_trials: int = DEFAULTS["n_startup_trials"],
        multivariate: bool = DEFAULTS["multivariate"],
        seed: int | None = None,
        storage: str | None = None,
        study_name: str | None = None,
    ) -> None:
        optuna = _optuna()
        self.params = list(params)
        self.distributions = distributions(self.params)
        self.settings = {"n_startup_trials": int(n_startup_trials), "multivariate": multivariate}
        self.seed = seed
        self.storage = storage
        if storage is None:
            self.study = optuna.create_study(
                direction="minimize" if minimize else "maximize", sampler=self._sampler()
            )
        else:  # shared with the jobs, which report to their trials (early stopping)
            from rl_relay.stopping.pruner import journal_storage

            self.study = optuna.create_study(
                storage=journal_storage(storage),
                study_name=study_name,
                load_if_exists=True,
                direction="minimize" if minimize else "maximize",
                sampler=self._sampler(),
            )
        #: configuration -> numbers of its asked trials still waiting for a result
        self.pending: dict[Config, list[int]] = {}
        #: the number of the trial the last ``ask`` created
        self.last_trial: int | None = None

    def _sampler(self) -> Any:
        optuna = _optuna()
        with warnings.catch_warnings():  # multivariate is "experimental" since Optuna 2.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=self.seed, **self.settings)

    def _config(self, internal: Mapping[str, Any]) -> Config:
        return tuple(
            p.options[internal[p.name]] if p.kind == DISCRETE else internal[p.name]
            for p in self.params
        )

    def _internal(self, config: Config) -> dict[str, Any]:
        return {
            p.name: option_index(p, value) if p.kind == DISCRETE else value
            for p, value in zip(self.params, config, strict=True)
        }

    def ask(self) -> Config:
        trial = self.study.ask(self.distributions)
        config = self._config(trial.params)
        self.pending.setdefault(config, []).append(trial.number)
        self.last_trial = trial.number
        return config

    def tell(
        self, config: Config, value: float, trial: int | None = None, pruned: bool = False
    ) -> None:
        """The result of an asked configuration, or (after a lost ask) a trial of its own.

        ``trial``: the trial the job says it ran as (early stopping with Optuna's pruners);
        ``pruned``: it was stopped early, so the study marks it PRUNED (ranked by its last
        reported score, as Optuna does) rather than COMPLETE.
        """
        waiting = self.pending.get(config)
        if trial is not None and waiting and trial in waiting:
            waiting.remove(trial)
        elif waiting:
            trial = waiting.pop(0)
        if trial is not None:
            if not waiting:
                self.pending.pop(config, None)
            if pruned:
                state = _optuna().trial.TrialState.PRUNED
                self.study.tell(trial, state=state, skip_if_finished=True)
            else:
                self.study.tell(trial, value, skip_if_finished=True)
            return
        optuna = _optuna()
        self.study.add_trial(
            optuna.trial.create_trial(
                params=self._internal(config), distributions=self.distributions, value=value
            )
        )

    def update(self, settings: Mapping[str, Any]) -> None:
        """Continuing with other settings: a new sampler with them (the trials stay)."""
        merged = {**DEFAULTS, **settings}
        wanted = {
            "n_startup_trials": int(merged["n_startup_trials"]),
            "multivariate": merged["multivariate"],
        }
        if wanted != self.settings or merged["seed"] != self.seed:
            logger.info("tpe: settings changed to %s; a new sampler goes on from here", merged)
            self.settings, self.seed = wanted, merged["seed"]
            self.study.sampler = self._sampler()


class TPEOptimizer(RelayOptimizer):
    """``"optimizer_str": "tpe"``."""

    name = "tpe"

    @classmethod
    def make_search(cls, space: list[Param], minimize: bool, settings: dict[str, Any]) -> TPESearch:
        return TPESearch(space, minimize, **{**DEFAULTS, **settings})

    def ask(self) -> dict[str, Any]:
        settings = super().ask()
        if self.search.storage is not None:  # the job reports to its trial
            settings[SECTION] = {"trial": self.search.last_trial}
        return settings

    def tell_search(self, row: Any, value: float) -> None:
        trial = row.get(f"{SECTION}.trial")
        pruned = row.get(STOPPED_EARLY)
        self.search.tell(
            config_from_row(self.space, row),
            value,
            trial=None if trial is None or not finite(trial) else int(trial),
            pruned=bool(pruned) and finite(pruned),
        )


def settings_problems(
    settings: Mapping[str, Any], optimized_params: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """What is wrong with ``optimizer_settings`` for ``tpe``: (key, what to do)."""
    problems = unknown_keys(settings, list(DEFAULTS), "tpe")
    startup = settings.get("n_startup_trials", DEFAULTS["n_startup_trials"])
    if not is_int(startup) or startup < 0:
        problems.append(
            (
                "optimizer_settings.n_startup_trials",
                f"is {startup!r}; give an integer >= 0 (random configurations before TPE)",
            )
        )
    multivariate = settings.get("multivariate", DEFAULTS["multivariate"])
    if not isinstance(multivariate, bool):
        problems.append(
            ("optimizer_settings.multivariate", f"is {multivariate!r}; give true or false")
        )
    problems += seed_problems(settings)
    for i, param in enumerate(optimized_params):
        if (
            isinstance(param, Mapping)
            and param.get("distribution") == "IntLogNormal"
            and isinstance(param.get("bounds"), Sequence)
            and param["bounds"]
            and isinstance(param["bounds"][0], int | float)
            and param["bounds"][0] < 1
        ):
            problems.append(
                (
                    f"optimized_params[{i}].bounds",
                    f"start at {param['bounds'][0]}; 'tpe' samples IntLogNormal from 1 up:"
                    " raise the lower bound to 1",
                )
            )
    try:
        _optuna()
    except ImportError:
        problems.append(("optimizer_str", INSTALL))
    return problems
