"""The benchmark's zoo side: the shipped zoo-space settings against rl_zoo3's own samplers,
the shared space as Optuna asks it, rl_zoo3 run on that space, and reading the zoo's report.

Nothing here trains; the whole pipeline is exercised by ``python bench/hpo_quality.py --quick``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from bench_helpers import (
    PPO_SETTINGS,
    SAC_SETTINGS,
    RecordingTrial,
    by_name,
    by_name_of,
    settings,
    small_space,
)
from hypothesis import given
from hypothesis import strategies as st

from bench.hpo_quality.outcome import ZooSearch, read_zoo_report, zoo_overrides
from bench.hpo_quality.space import (
    Param,
    SpaceError,
    restrict,
    space_of,
    suggest,
    zoo_native_overrides,
)

# -- the shipped zoo-space settings against rl_zoo3's own samplers ------------------------


def _zoo_samples(algo: str, n: int = 300) -> list[dict]:
    """rl_zoo3's own sampler, driven by Optuna's random sampler, as rl-relay overrides."""
    optuna = pytest.importorskip("optuna")
    hyperparams_opt = pytest.importorskip("rl_zoo3.hyperparams_opt")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        extra = {"using_her_replay_buffer": False, "her_kwargs": {}}
        hyperparams_opt.HYPERPARAMS_SAMPLER[algo](trial, 1, 1, extra)
        out.append(zoo_native_overrides(algo, trial.params))
        study.tell(trial, 0.0)
    return out


def _covered(param: Param, value: object) -> bool:
    if param.kind == "categorical":
        numeric = [o for o in param.options if not isinstance(o, str)]
        if value in param.options:
            return True
        # a grid (1 - gamma) covers the zoo's continuous range it discretises
        return bool(numeric) and min(numeric) - 1e-9 <= value <= max(numeric) + 1e-9
    return param.low - 1e-12 <= value <= param.high + 1e-12


@pytest.mark.parametrize("algo, path", [("ppo", PPO_SETTINGS), ("sac", SAC_SETTINGS)])
def test_shipped_space_covers_every_value_the_zoo_samples(algo: str, path: Path) -> None:
    space = by_name(path)
    for overrides in _zoo_samples(algo):
        for key, value in overrides.items():
            key = key.removeprefix("config.rl_config.")
            if key == "policy_kwargs.net_arch":
                if value == [64]:  # PPO's one-layer "tiny": the documented gap
                    continue
                for i, width in enumerate(value):
                    assert width in space[f"policy_kwargs.net_arch:{i}"].options, (key, value)
            elif key == "gradient_steps":
                assert value == overrides["config.rl_config.train_freq"]  # template: -1
            else:
                assert key in space, f"{path.name} does not search {key}"
                assert _covered(space[key], value), (key, value, space[key])


@pytest.mark.parametrize("algo, path", [("ppo", PPO_SETTINGS), ("sac", SAC_SETTINGS)])
def test_shipped_space_searches_only_what_the_zoo_searches(algo: str, path: Path) -> None:
    zoo_keys = {
        k.removeprefix("config.rl_config.").split(":")[0] for o in _zoo_samples(algo, 20) for k in o
    }
    for name in by_name(path):
        assert name.split(":")[0] in zoo_keys, f"{path.name} searches {name}, the zoo does not"


def test_native_mapping_matches_the_zoo_converters() -> None:
    hyperparams_opt = pytest.importorskip("rl_zoo3.hyperparams_opt")
    params = {
        "batch_size_pow": 5,
        "n_steps_pow": 9,
        "one_minus_gamma": 0.01,
        "one_minus_gae_lambda": 0.05,
        "learning_rate": 3e-4,
        "ent_coef": 1e-3,
        "clip_range": 0.2,
        "n_epochs": 10,
        "max_grad_norm": 0.7,
        "net_arch": "medium",
        "activation_fn": "relu",
    }
    theirs = hyperparams_opt.convert_onpolicy_params(dict(params))
    ours = zoo_native_overrides("ppo", params)
    rl = "config.rl_config."
    for key in ("batch_size", "n_steps", "gamma", "gae_lambda", "learning_rate", "n_epochs"):
        assert ours[rl + key] == pytest.approx(theirs[key])
    assert ours[rl + "policy_kwargs.net_arch"] == theirs["policy_kwargs"]["net_arch"]["pi"]
    assert ours[rl + "policy_kwargs.activation_fn"] == "relu"


# -- translating the space to Optuna --------------------------------------------------------


def test_suggest_asks_optuna_for_each_distribution_on_its_scale() -> None:
    space = space_of(
        {
            "optimized_params": [
                {"param": "a", "distribution": "TruncatedLogNormal", "bounds": [1e-5, 1e-2]},
                {"param": "b", "distribution": "TruncatedNormal", "bounds": [0.3, 2]},
                {"param": "c", "distribution": "IntLogNormal", "bounds": [8, 256]},
                {"param": "d", "distribution": "IntNormal", "bounds": [1, 10]},
                {"param": "e", "distribution": "Discrete", "options": [64, "x"]},
            ]
        }
    )
    trial = RecordingTrial()
    assert suggest(trial, space) == {"a": 1e-5, "b": 0.3, "c": 8, "d": 1, "e": 64}
    assert trial.asked == {
        "a": ("float", 1e-5, 1e-2, True),
        "b": ("float", 0.3, 2.0, False),
        "c": ("int", 8, 256, True),
        "d": ("int", 1, 10, False),
        "e": ("categorical", (64, "x")),
    }


def test_a_distribution_optuna_cannot_mirror_is_an_error_naming_it() -> None:
    bad = {"optimized_params": [{"param": "x", "distribution": "Weird", "bounds": [0, 1]}]}
    with pytest.raises(SpaceError, match="x: distribution 'Weird'"):
        space_of(bad, "s.json")


def test_restrict_keeps_the_options_within_the_limits_and_refuses_to_empty_one() -> None:
    shipped = settings(PPO_SETTINGS)
    quick = restrict(shipped, {"config.rl_config.n_steps": (32, 128)})
    assert by_name_of(quick)["n_steps"].options == (32, 64, 128)
    assert shipped != quick
    assert shipped == settings(PPO_SETTINGS)  # the settings it restricts are not touched
    with pytest.raises(SpaceError, match="n_steps"):
        restrict(settings(PPO_SETTINGS), {"config.rl_config.n_steps": (1, 2)})


@given(
    st.lists(
        st.one_of(
            st.integers(-(10**6), 10**6),
            st.floats(-1e6, 1e6, allow_nan=False),
            st.text("abcxyz_", min_size=1),
        ),
        min_size=1,
        max_size=6,
        unique=True,
    )
)
def test_a_discrete_value_read_back_as_text_is_the_option_itself(options: list) -> None:
    param = Param("p", "categorical", options=tuple(options))
    for option in options:
        value = param.coerce(str(option))
        assert value == option or str(value) == str(option)


# -- rl_zoo3 on the shared space ----------------------------------------------------------------


def test_zoo_sampler_trains_what_rl_relay_would_merge_for_the_same_values() -> None:
    pytest.importorskip("optuna")
    import torch.nn as nn

    from bench.hpo_quality.zoo import make_sampler

    algo, n_envs, sampler = make_sampler(settings(PPO_SETTINGS))
    assert (algo, n_envs) == ("ppo", 8)
    kwargs = sampler(RecordingTrial(), 2, 8, {})
    assert kwargs["batch_size"] == 4 and kwargs["n_steps"] == 32  # lowest options
    assert kwargs["gamma"] == pytest.approx(0.97)
    assert kwargs["policy_kwargs"] == {"net_arch": [64, 64], "activation_fn": nn.Tanh}
    assert kwargs["learning_rate"] == pytest.approx(1e-5)  # constant, as the zoo's sampler
    assert not {"algorithm", "schedule", "load_path"} & set(kwargs)


def test_zoo_trials_leave_no_logger_folders_in_the_system_temp_dir(tmp_path, monkeypatch) -> None:
    """Each zoo trial's SB3 logger makes a folder; they belong in the search's directory."""
    pytest.importorskip("optuna")
    import tempfile

    import rl_zoo3.exp_manager as exp_manager
    import rl_zoo3.hyperparams_opt as hyperparams_opt
    import rl_zoo3.train
    from stable_baselines3.common.utils import configure_logger

    from bench.hpo_quality import zoo

    # undone after the test: main() patches these module attributes for its own process
    monkeypatch.setattr(exp_manager, "TrialEvalCallback", exp_manager.TrialEvalCallback)
    monkeypatch.setitem(
        hyperparams_opt.HYPERPARAMS_SAMPLER, "ppo", hyperparams_opt.sample_ppo_params
    )
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    # what a zoo trial does: train without a logger of its own, verbose 0
    monkeypatch.setattr(rl_zoo3.train, "train", lambda: configure_logger(verbose=0))
    zoo.main(["--space", str(PPO_SETTINGS), "--", "--algo", "ppo"])
    assert list((tmp_path / "tmp").iterdir()) == []
    assert (tmp_path / "work" / "sb3-logger").is_dir()


# -- reading the zoo's report ------------------------------------------------------------------

ZOO_HEADER = [
    "",
    "number",
    "value",
    "datetime_start",
    "datetime_complete",
    "duration",
    "params_config.rl_config.n_steps",
    "params_config.rl_config.policy_kwargs.activation_fn",
    "params_config.rl_config.gamma",
    "user_attrs_env_steps",
    "state",
]


def write_zoo_report(path: Path, rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(ZOO_HEADER)
        for i, row in enumerate(rows):
            writer.writerow([i, i, *row[:1], "t0", "t1", "0 days", *row[1:]])
    return path


def test_zoo_report_gives_the_best_complete_trial_and_every_trials_env_steps(tmp_path) -> None:
    report = write_zoo_report(
        tmp_path / "report.csv",
        [
            ["120.5", "32", "tanh", "0.97", "1024", "COMPLETE"],
            ["", "64", "relu", "0.99", "512", "PRUNED"],
            ["300.0", "64", "relu", "0.99", "16384", "COMPLETE"],
        ],
    )
    found = read_zoo_report(report)
    assert (found.best_value, found.trials, found.env_steps) == (300.0, 3, 1024 + 512 + 16384)
    overrides = zoo_overrides(found, small_space())
    assert overrides == {
        "config.rl_config.n_steps": 64,
        "config.rl_config.policy_kwargs.activation_fn": "relu",
        "config.rl_config.gamma": 0.99,
    }
    assert type(overrides["config.rl_config.n_steps"]) is int


def test_zoo_report_without_a_complete_trial_is_an_error_naming_the_file(tmp_path) -> None:
    report = write_zoo_report(tmp_path / "r.csv", [["", "32", "tanh", "0.97", "9", "FAIL"]])
    with pytest.raises(ValueError, match=r"r\.csv: no complete trial \(FAIL\)"):
        read_zoo_report(report)


def test_zoo_best_trial_lacking_a_shared_parameter_is_an_error() -> None:
    found = ZooSearch(1.0, {"config.rl_config.n_steps": "32"}, 1, 10)
    with pytest.raises(ValueError, match="gamma"):
        zoo_overrides(found, small_space())


def test_a_zoo_native_trial_is_read_back_into_rl_relay_overrides() -> None:
    found = ZooSearch(
        1.0, {"n_steps_pow": "9", "learning_rate": "0.0003", "net_arch": "small"}, 1, 1
    )
    assert zoo_overrides(found, small_space(), native_algo="ppo") == {
        "config.rl_config.n_steps": 512,
        "config.rl_config.learning_rate": 3e-4,
        "config.rl_config.policy_kwargs.net_arch": [64, 64],
    }
