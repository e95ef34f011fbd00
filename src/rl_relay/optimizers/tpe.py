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

from rl_relay.optimizers.adapter import RelayOptimizer
from rl_relay.optimizers.checks import is_int, seed_problems, unknown_keys
from rl_relay.optimizers.space import DISCRETE, LOGNORMAL, Config, Param, option_index

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {"n_startup_trials": 10, "multivariate": True, "seed": None}
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
    ) -> None:
        optuna = _optuna()
        self.params = list(params)
        self.distributions = distributions(self.params)
        self.settings = {"n_startup_trials": int(n_startup_trials), "multivariate": multivariate}
        self.seed = seed
        self.study = optuna.create_study(
            direction="minimize" if minimize else "maximize", sampler=self._sampler()
        )
        #: configuration -> numbers of its asked trials still waiting for a result
        self.pending: dict[Config, list[int]] = {}

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
        return config

    def tell(self, config: Config, value: float) -> None:
        """The result of an asked configuration, or (after a lost ask) a trial of its own."""
        waiting = self.pending.get(config)
        if waiting:
            self.study.tell(waiting.pop(0), value)
            if not waiting:
                del self.pending[config]
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
