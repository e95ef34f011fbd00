"""``tpe``: Optuna's TPE behind rl-relay's ask/tell of configurations."""

from __future__ import annotations

import math
import pickle
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search_helpers import best_found

from rl_relay.optimizers.space import DISCRETE, LOGNORMAL, NORMAL, Param
from rl_relay.optimizers.tpe import TPESearch, distributions

PARAMS = [
    Param("config.rl_config.learning_rate", LOGNORMAL, 1e-4, 1e-1),
    Param("config.rl_config.batch_size", DISCRETE, options=(16, 32, 64, 128, 256)),
    Param("config.rl_config.n_steps", LOGNORMAL, 8, 512, integer=True),
    Param("config.rl_config.gamma", NORMAL, 0.9, 0.999),
    Param("config.rl_config.policy_kwargs.net_arch", DISCRETE, options=((64, 64), "big", None)),
]


def objective(config: tuple) -> float:
    """A smooth peak away from the middle of the space (higher is better)."""
    lr, batch, n_steps, gamma, arch = config
    return -(
        (math.log10(lr) + 1.5) ** 2
        + (math.log2(batch) - 5) ** 2 / 4
        + (math.log2(n_steps) - 8.2) ** 2 / 9
        + ((gamma - 0.99) / 0.03) ** 2
        + (arch != "big")
    )


def valid(param: Param, value: object) -> bool:
    if param.kind == DISCRETE:
        return any(value == o and type(value) is type(o) for o in param.options)
    if param.integer and type(value) is not int:
        return False
    return type(value) in (int, float) and param.lower <= value <= param.upper


@given(st.integers(0, 2**16), st.lists(st.floats(-10, 10), min_size=1, max_size=15))
@settings(max_examples=15, deadline=None)
def test_asks_valid_configurations_of_the_declared_types(seed: int, values: list[float]) -> None:
    search = TPESearch(PARAMS, minimize=False, n_startup_trials=3, seed=seed)
    for value in values:
        config = search.ask()
        assert all(valid(p, v) for p, v in zip(PARAMS, config, strict=True)), config
        search.tell(config, value)
    assert not search.pending


def best_of_tpe(seed: int, budget: int, startup: int, minimize: bool) -> float:
    search = TPESearch(PARAMS, minimize=minimize, n_startup_trials=startup, seed=seed)
    return best_found(search, objective, budget, minimize)


@pytest.mark.parametrize("minimize", [False, True])
def test_learns_from_results_honouring_minimize(minimize: bool) -> None:
    """After its random start, TPE finds better than the same sampler kept random."""
    budget, seeds = 30, range(8)
    tpe = statistics.mean(best_of_tpe(s, budget, 8, minimize) for s in seeds)
    random = statistics.mean(best_of_tpe(s, budget, budget, minimize) for s in seeds)
    assert -tpe < 0.7 * -random, (tpe, random)  # regret of the best found (optimum 0)


def test_reproducible_with_seed_and_after_pickling() -> None:
    def run(search: TPESearch, n: int) -> list[tuple]:
        out = []
        for _ in range(n):
            config = search.ask()
            search.tell(config, objective(config))
            out.append(config)
        return out

    a = TPESearch(PARAMS, minimize=False, n_startup_trials=3, seed=5)
    b = TPESearch(PARAMS, minimize=False, n_startup_trials=3, seed=5)
    assert run(a, 6) == run(b, 6)
    twin = pickle.loads(pickle.dumps(a))  # status.pickle of a continued HPO
    assert run(twin, 4) == run(a, 4)
    assert run(TPESearch(PARAMS, False, n_startup_trials=3, seed=6), 6) != run(
        TPESearch(PARAMS, False, n_startup_trials=3, seed=7), 6
    )


def test_results_told_out_of_order_and_of_configurations_never_asked() -> None:
    search = TPESearch(PARAMS, minimize=False, n_startup_trials=2, seed=0)
    first, second = search.ask(), search.ask()
    search.tell(second, 2.0)  # the second job finished first
    search.tell(first, 1.0)
    stranger = (0.03, 32, 290, 0.99, "big")  # e.g. a job asked before a lost driver state
    search.tell(stranger, 5.0)
    trials = search.study.trials
    assert [t.value for t in trials] == [1.0, 2.0, 5.0]
    assert search.study.best_trial.params["config.rl_config.policy_kwargs.net_arch"] == 1
    assert search._config(search.study.best_trial.params) == stranger


def test_changed_settings_on_continue_take_a_new_sampler() -> None:
    search = TPESearch(PARAMS, minimize=False, n_startup_trials=10, seed=1)
    sampler = search.study.sampler
    search.update({"n_startup_trials": 10, "seed": 1})
    assert search.study.sampler is sampler  # unchanged: the random stream goes on
    search.update({"n_startup_trials": 2, "seed": 1})
    assert search.study.sampler is not sampler and search.settings["n_startup_trials"] == 2


def test_integer_log_distribution_from_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="n_envs.*raise it to 1"):
        distributions([Param("n_envs", LOGNORMAL, 0, 8, integer=True)])


def test_without_optuna_the_check_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_optuna(name: str, *args: object, **kwargs: object) -> object:
        if name == "optuna" or name.startswith("optuna."):
            raise ImportError("No module named 'optuna'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    from rl_relay.optimizers import optimizer_problems

    assert optimizer_problems("tpe", {}, []) == [
        ("optimizer_str", "'tpe' needs the optuna package: pip install 'rl-relay[tpe]'")
    ]
