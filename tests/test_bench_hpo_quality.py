"""bench/hpo_quality.py's pure parts: the shared space, reading what searches left, statistics.

Nothing here trains; the whole pipeline is exercised by ``python bench/hpo_quality.py --quick``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from hpo_quality_cost import expected_seconds, training_seconds  # noqa: E402
from hpo_quality_lib import (  # noqa: E402
    Method,
    Outcome,
    ZooSearch,
    format_table,
    job_env_steps,
    job_rewards,
    parse_method,
    per_repeat_differences,
    read_best_job,
    read_pick,
    read_zoo_report,
    summary,
    t_interval,
    versus,
    welch_interval,
    write_csv,
    zoo_overrides,
)
from hpo_quality_space import (  # noqa: E402
    Param,
    SpaceError,
    restrict,
    space_of,
    suggest,
    zoo_native_overrides,
)

PPO_SETTINGS = REPO / "hp_optim" / "hp_optim_ppo_zoo_space.json"
SAC_SETTINGS = REPO / "hp_optim" / "hp_optim_sac_zoo_space.json"


def settings(path: Path) -> dict:
    return json.loads(path.read_text())


def by_name(path: Path) -> dict[str, Param]:
    return {p.name.removeprefix("config.rl_config."): p for p in space_of(settings(path))}


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


class RecordingTrial:
    """Answers like an Optuna trial (the lowest choice) and records how it was asked."""

    def __init__(self) -> None:
        self.asked: dict[str, tuple] = {}

    def suggest_float(self, name, low, high, log=False):
        self.asked[name] = ("float", low, high, log)
        return low

    def suggest_int(self, name, low, high, log=False):
        self.asked[name] = ("int", low, high, log)
        return low

    def suggest_categorical(self, name, choices):
        self.asked[name] = ("categorical", tuple(choices))
        return choices[0]


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
    quick = restrict(settings(PPO_SETTINGS), {"config.rl_config.n_steps": (32, 128)})
    assert by_name_of(quick)["n_steps"].options == (32, 64, 128)
    assert settings(PPO_SETTINGS) != quick  # the shipped file is not touched
    with pytest.raises(SpaceError, match="n_steps"):
        restrict(settings(PPO_SETTINGS), {"config.rl_config.n_steps": (1, 2)})


def by_name_of(s: dict) -> dict[str, Param]:
    return {p.name.removeprefix("config.rl_config."): p for p in space_of(s)}


def test_zoo_sampler_trains_what_rl_relay_would_merge_for_the_same_values() -> None:
    pytest.importorskip("optuna")
    import torch.nn as nn
    from hpo_quality_zoo import make_sampler

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

    import hpo_quality_zoo
    import rl_zoo3.exp_manager as exp_manager
    import rl_zoo3.hyperparams_opt as hyperparams_opt
    import rl_zoo3.train
    from stable_baselines3.common.utils import configure_logger

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
    hpo_quality_zoo.main(["--space", str(PPO_SETTINGS), "--", "--algo", "ppo"])
    assert list((tmp_path / "tmp").iterdir()) == []
    assert (tmp_path / "work" / "sb3-logger").is_dir()


# -- what the searches leave behind ------------------------------------------------------------

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


def small_space() -> list[Param]:
    return [
        Param("config.rl_config.n_steps", "categorical", options=(32, 64)),
        Param(
            "config.rl_config.policy_kwargs.activation_fn", "categorical", options=("tanh", "relu")
        ),
        Param("config.rl_config.gamma", "categorical", options=(0.97, 0.99)),
    ]


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


def write_progress(path: Path, steps: list[int], eval_row: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["rollout/ep_rew_mean,time/total_timesteps,eval/mean_reward"]
    lines += [f"20.0,{s}," for s in steps] + ([",,500.0"] if eval_row else [])
    path.write_text("\n".join(lines) + "\n")


def test_job_env_steps_counts_failed_attempts_and_chained_iterations_once(tmp_path) -> None:
    write_progress(tmp_path / "run_0.0-0" / "logs" / "progress.csv", [256, 512], eval_row=False)
    write_progress(tmp_path / "run_0.0-1" / "logs" / "progress.csv", [512, 1024])
    write_progress(tmp_path / "run_1.0-0" / "logs" / "progress.csv", [1024])
    write_progress(tmp_path / "run_1.1-0" / "logs" / "progress.csv", [1536, 2048])
    (tmp_path / "not_a_run").mkdir()
    assert job_env_steps(tmp_path) == 512 + 1024 + 2048


def test_off_policy_steps_come_from_the_checkpoint_info_when_the_log_lags(tmp_path) -> None:
    # SAC logs every 4 episodes: progress.csv says 800 of the 1,000 steps trained
    write_progress(tmp_path / "run_0.0-0" / "logs" / "progress.csv", [800])
    (tmp_path / "run_0.0-0" / "model.resume.json").write_text('{"num_timesteps": 1000}')
    write_progress(tmp_path / "run_1.0-0" / "logs" / "progress.csv", [800])
    (tmp_path / "run_1.0-0" / "model.resume.json").write_text("{half-written")
    assert job_env_steps(tmp_path) == 1000 + 800


def test_best_job_is_the_first_row_with_the_metric_and_overrides_in_template_types(
    tmp_path,
) -> None:
    all_data = tmp_path / "all_data.csv"
    all_data.write_text(
        ",_id,config.rl_config.n_steps,config.rl_config.policy_kwargs.activation_fn,"
        "config.rl_config.gamma,mean_eprewmean\n"
        "0,3,64.0,relu,0.99,\n"
        "1,5,32,tanh,0.97,250.5\n"
        "2,1,64,relu,0.97,100.0\n"
    )
    estimate, overrides = read_best_job(all_data, small_space(), "mean_eprewmean")
    assert estimate == 250.5
    assert overrides == {
        "config.rl_config.n_steps": 32,
        "config.rl_config.policy_kwargs.activation_fn": "tanh",
        "config.rl_config.gamma": 0.97,
    }


def test_the_pick_is_the_best_fresh_mean_of_rl_relay_reevaluate_not_the_search_estimate(
    tmp_path,
) -> None:
    from rl_relay.reevaluate.command import write_summary
    from rl_relay.reevaluate.stats import Candidate, Evaluated, summary_rows

    def candidate(job: int, estimate: float, n_steps: int, act: str) -> Candidate:
        values = {
            "config.rl_config.n_steps": n_steps,
            "config.rl_config.policy_kwargs.activation_fn": act,
            "config.rl_config.gamma": 0.99,
        }
        return Candidate(job, estimate, values)

    evaluated = [
        Evaluated(candidate(4, 500.0, 64, "relu"), [120.0, 180.0], [1, 2]),  # the lucky one
        Evaluated(candidate(7, 450.0, 32, "tanh"), [400.0, 380.0], [3, 4]),
        Evaluated(candidate(9, 480.0, 64, "tanh"), [], []),  # no run finished
    ]
    summary = tmp_path / "summary.csv"
    write_summary(summary, summary_rows(evaluated, minimize=False))
    mean, overrides = read_pick(summary, small_space())
    assert mean == 390.0
    assert overrides == {
        "config.rl_config.n_steps": 32,
        "config.rl_config.policy_kwargs.activation_fn": "tanh",
        "config.rl_config.gamma": 0.99,
    }
    write_summary(summary, summary_rows(evaluated[2:], minimize=False))
    with pytest.raises(ValueError, match="no configuration has a finished re-evaluation run"):
        read_pick(summary, small_space())


def test_job_rewards_are_the_finished_runs_rewards(tmp_path) -> None:
    state = {"runs": [{"done": True, "reward": 500.0}, {"done": False, "reward": None}]}
    (tmp_path / "restarts.json").write_text(json.dumps(state))
    assert job_rewards(tmp_path) == [500.0]


# -- statistics and the table ----------------------------------------------------------------


def test_t_interval_matches_the_textbook_value() -> None:
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)  # t(0.975, 2) * s / sqrt(n)
    assert math.isnan(t_interval([5.0])[1])


@given(
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=20),
    st.floats(0.01, 100),
    st.floats(-100, 100),
)
def test_t_interval_scales_and_shifts_with_the_data(values, scale, shift) -> None:
    mean, half = t_interval(values)
    mean2, half2 = t_interval([v * scale + shift for v in values])
    assert half >= 0
    assert mean2 == pytest.approx(mean * scale + shift, abs=1e-6)
    assert half2 == pytest.approx(half * scale, rel=1e-6, abs=1e-6)


def outcomes() -> list[Outcome]:
    return [
        Outcome(
            "cartpole",
            "zoo",
            0,
            trials=16,
            env_steps=200_000,
            wall_seconds=100.0,
            estimate=500.0,
            reeval_rewards=[300.0, 320.0],
        ),
        Outcome(
            "cartpole",
            "zoo",
            1,
            trials=16,
            env_steps=180_000,
            wall_seconds=120.0,
            estimate=480.0,
            reeval_rewards=[100.0, 140.0],
        ),
        Outcome(
            "cartpole",
            "cem",
            0,
            estimate=450.0,
            reeval_rewards=[400.0, 420.0],
            env_steps=160_000,
            wall_seconds=90.0,
        ),
        Outcome("cartpole", "dgd", 0, status="missing", detail="optimizer 'dgd' is not here"),
    ]


def test_summary_pools_the_reevaluations_and_takes_medians_over_repeats() -> None:
    rows = {r["method"]: r for r in summary(outcomes())}
    zoo = rows["zoo"]
    assert zoo["searches"] == 2 and zoo["env_steps"] == 190_000 and zoo["estimate"] == 490.0
    assert zoo["reeval_mean"] == 215.0
    assert zoo["reeval_median_of_repeats"] == (310.0 + 120.0) / 2
    assert rows["dgd"]["searches"] == 0 and "not here" in rows["dgd"]["status"]


def test_table_has_a_row_per_method_and_says_why_one_is_missing() -> None:
    table = format_table(summary(outcomes())).splitlines()
    assert len(table) == 2 + 3
    assert table[2].startswith("| zoo | 2 | 190,000 | 110 | 490.0 | 215.0 ± ")
    assert "missing: optimizer 'dgd' is not here" in table[4]


def test_welch_interval_matches_scipys_welch_test() -> None:
    from scipy.stats import ttest_ind

    a, b = [412.0, 500.0, 388.5, 450.0, 301.0], [350.0, 330.5, 410.0, 290.0]
    low, high = ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    diff, half = welch_interval(a, b)
    assert diff == pytest.approx((low + high) / 2) and half == pytest.approx((high - low) / 2)


def test_versus_calls_a_difference_only_when_its_interval_excludes_zero() -> None:
    def o(method: str, rewards: list[float]) -> Outcome:
        return Outcome("cartpole", method, 0, reeval_rewards=rewards)

    zoo = o("zoo", [400.0, 410.0, 390.0, 405.0])
    lines = versus(
        [
            zoo,
            o("cem", [480.0, 490.0, 500.0, 470.0]),
            o("dgd", [300.0, 310.0, 290.0, 305.0]),
            o("genetic", [200.0, 500.0, 450.0, 420.0]),
            o("twopointsde", [500.0]),
            Outcome("cartpole", "pbt", 0, "missing", "not compared"),
        ]
    )
    verdicts = {line.split(" - ")[0]: line.split("; ")[0].rsplit(": ", 1)[1] for line in lines}
    assert verdicts == {
        "cem": "better",
        "dgd": "worse",
        "genetic": "within noise",
        "twopointsde": "too few seeds to tell",
    }
    assert versus([o("cem", [1.0, 2.0])]) == []  # no zoo row: nothing to compare with
    assert lines[0].endswith("over 1 repeat(s), higher in 1): too few repeats to tell")


def test_per_repeat_differences_pair_the_searches_of_one_search_seed() -> None:
    def o(method: str, repeat: int, rewards: list[float], status: str = "ok") -> Outcome:
        return Outcome("pendulum", method, repeat, status, reeval_rewards=rewards)

    outcomes = [
        o("zoo", 0, [-150.0, -160.0]),
        o("zoo", 1, [-200.0, -210.0]),
        o("zoo", 2, [-150.0, -150.0]),
        o("tpe", 1, [-190.0, -200.0]),  # +10 on repeat 1
        o("tpe", 0, [-140.0, -150.0]),  # +10 on repeat 0
        o("tpe", 2, [-100.0], "failed"),  # a failed search pairs with nothing
        o("tpe", 3, [-100.0, -100.0]),  # the zoo has no repeat 3
    ]
    assert per_repeat_differences(outcomes, "tpe") == [10.0, 10.0]
    line = versus(outcomes)[0]
    # the pooled runs differ by more than the repeats do: Welch cannot call it, the pairs can
    assert "within noise; per repeat" in line
    assert line.endswith("+10.0 ± 0.0 (95% t interval over 2 repeat(s), higher in 2): better")


def test_report_only_writes_the_table_from_finished_searches_and_runs_nothing(
    tmp_path, monkeypatch, capsys
) -> None:
    import hpo_quality

    done = tmp_path / "cartpole" / "searches"
    done.mkdir(parents=True)
    for outcome in outcomes()[:3]:
        name = f"{outcome.method}-r{outcome.repeat}.json"
        (done / name).write_text(json.dumps(outcome.to_json()))

    def must_not_run(*args, **kwargs):
        raise AssertionError("--report-only ran a search")

    monkeypatch.setattr(hpo_quality, "run_one", must_not_run)
    argv = ["--methods", "zoo,cem", "--repeats", "2", "--out", str(tmp_path), "--report-only"]
    assert hpo_quality.main(argv) == 0
    table = (tmp_path / "cartpole" / "hpo_quality.md").read_text()
    assert "| zoo | 2 |" in table and "| cem | 1 |" in table
    assert "cem - zoo: +195.0" in table
    with open(tmp_path / "cartpole" / "hpo_quality.csv", newline="") as f:
        rows = {(r["method"], r["repeat"]): r["status"] for r in csv.DictReader(f)}
    assert rows[("cem", "1")] == "not run"
    assert not (tmp_path / "cartpole" / "options.json").exists()


def test_csv_has_one_row_per_search_with_its_choice(tmp_path) -> None:
    write_csv(tmp_path / "r.csv", outcomes())
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["zoo", "zoo", "cem", "dgd"]
    assert json.loads(rows[2]["reeval_rewards"]) == [400.0, 420.0]
    assert float(rows[2]["reeval_mean"]) == 410.0


# -- the runners' settings and the cost model -------------------------------------------------


def test_rl_relay_search_gets_the_same_env_step_budget_as_the_zoo(tmp_path) -> None:
    from hpo_quality_runs import Search, reeval_params, rl_relay_settings

    s = settings(PPO_SETTINGS)
    search = Search(
        "cartpole",
        "ppo",
        "CartPole-v1",
        PPO_SETTINGS,
        s,
        space_of(s),
        16,
        10_000,
        10,
        2,
        "eval/mean_reward",
        2,
        101,
        1,
    )
    out = rl_relay_settings(search, "twopointsde", tmp_path, "search")
    assert out["optimization_setting"]["number_of_samples"] == 8  # 8 jobs x 2 runs = 16
    picked = rl_relay_settings(search, "twopointsde+2x2", tmp_path, "search")
    assert picked["optimization_setting"]["number_of_samples"] == 6  # 6 x 2 + 2 x 2 = 16
    assert "config.rl_common_config.eval_seed" not in picked["fixed_params"]  # own episodes
    shared = rl_relay_settings(search, "twopointsde~ce", tmp_path, "search")
    assert shared["fixed_params"]["config.rl_common_config.eval_seed"] == 101  # the search seed
    # ~free: no more configurations asked ahead of their results than there are workers
    wide = dataclasses.replace(search, trials=32, runs_per_job=1)
    ahead = rl_relay_settings(wide, "tpe~ce", tmp_path, "search")["optimization_setting"]
    assert ahead["n_jobs_per_iteration"] == 8  # a quarter of the 32 jobs
    free = rl_relay_settings(wide, "tpe~ce~free", tmp_path, "search")
    assert free["optimization_setting"]["n_jobs_per_iteration"] == wide.workers
    assert free["optimization_setting"]["number_of_samples"] == 32
    assert free["fixed_params"]["config.rl_common_config.eval_seed"] == 101
    # tpe: the zoo's 10 random start trials, or its share of them when there are fewer jobs
    zoo_like = dataclasses.replace(search, runs_per_job=1)
    startup = rl_relay_settings(zoo_like, "tpe~ce", tmp_path, "search")["optimizer_settings"]
    assert startup == {"n_startup_trials": 10, "multivariate": True, "seed": 101}
    two_runs = rl_relay_settings(search, "tpe@2~ce", tmp_path, "search")
    assert two_runs["optimization_setting"]["number_of_samples"] == 8
    assert two_runs["optimizer_settings"]["n_startup_trials"] == 5  # 10 of 16 -> 5 of 8
    assert "reward_window" not in two_runs["fixed_params"]  # the final evaluation scores
    late = rl_relay_settings(search, "tpe@2~ce~late", tmp_path, "search")["fixed_params"]
    assert (late["config.rl_common_config.evaluations"], late["reward_window"]) == (5, 3)
    # ... but every choice is re-evaluated by its final evaluation, on its own episodes
    again = reeval_params(search, {"config.rl_config.gamma": 0.9}, 3, 7, tmp_path)
    assert (again["reward_column"], again.get("reward_window", 1)) == ("eval/mean_reward", 1)
    assert again.get("config.rl_common_config.evaluations", 1) == 1
    assert (again["config.rl_common_config.eval_seed"], again["seed"]) == (None, 7)
    assert again["config.rl_config.gamma"] == 0.9 and again["learning_runs_per_job"] == 3
    assert (out["optimizer_str"], out["optimizer_settings"]) == (
        "nevergrad",
        {"opt_alg": "twopointsde"},
    )
    fixed = out["fixed_params"]
    assert fixed["config.rl_common_config.total_timesteps"] == 10_000
    assert (fixed["seed"], fixed["learning_runs_per_job"], fixed["training_iterations"]) == (
        101,
        2,
        1,
    )
    assert out["cluster_requirements"]["max_cpus"] == 2 and not out["remove_working_dirs"]
    assert (
        s["fixed_params"]["learning_runs_per_job"]
        == settings(PPO_SETTINGS)["fixed_params"]["learning_runs_per_job"]
    )  # the shared settings are not changed


def test_dgd_searches_ordered_grids_over_the_same_ranges(tmp_path) -> None:
    from hpo_quality_runs import Search, rl_relay_settings

    s = settings(PPO_SETTINGS)
    search = Search(
        "cartpole",
        "ppo",
        "CartPole-v1",
        PPO_SETTINGS,
        s,
        space_of(s),
        8,
        1_000,
        5,
        1,
        "eval/mean_reward",
        2,
        100,
        0,
    )
    out = rl_relay_settings(search, "dgd", tmp_path, "search")
    assert (out["optimizer_str"], out["optimizer_settings"]) == ("dgd", {"seed": 100})
    grids = by_name_of(out)
    assert all(p.kind == "categorical" for p in grids.values())
    lr = grids["learning_rate"].options
    assert (len(lr), lr[0], lr[-1]) == (7, 1e-5, 0.002) and list(lr) == sorted(lr)
    assert lr[3] == pytest.approx(math.sqrt(1e-5 * 0.002), rel=1e-2)  # log-spaced
    assert grids["max_grad_norm"].options[3] == pytest.approx(1.15)  # linear
    assert grids["n_steps"].options == by_name(PPO_SETTINGS)["n_steps"].options
    genetic = rl_relay_settings(search, "genetic", tmp_path, "search")["optimizer_settings"]
    assert genetic["population_size"] == 2 and genetic["seed"] == 100


def test_pbt_is_a_row_saying_why_it_is_not_compared() -> None:
    from hpo_quality import availability
    from hpo_quality_runs import Env

    state, _ = availability(["pbt", "cem"], Env.current())
    assert state["pbt"][0] == "skipped" and "schedule" in state["pbt"][1]
    assert state["cem"] == ("", "")


def test_cost_model_charges_small_minibatches_and_rollout_rounding() -> None:
    base = {"n_steps": 32, "batch_size": 256, "n_epochs": 10, "policy_kwargs": {"net_arch": [64]}}
    cheap = training_seconds("ppo", base, 10_000, 8)
    assert training_seconds("ppo", {**base, "batch_size": 4}, 10_000, 8) > 3 * cheap
    # 4096 x 8 = 32k steps for a 10k budget: one whole rollout, more than 3x the steps
    assert training_seconds("ppo", {**base, "n_steps": 4096}, 10_000, 8) > cheap
    full = space_of(settings(PPO_SETTINGS))
    quick = space_of(restrict(settings(PPO_SETTINGS), {"config.rl_config.batch_size": (64, 256)}))
    assert (
        expected_seconds("ppo", quick, {}, 10_000, 8)[0]
        < expected_seconds("ppo", full, {}, 10_000, 8)[0]
    )


# -- the command line ---------------------------------------------------------------------------


def test_defaults_come_from_the_settings_file_and_quick_shrinks_everything() -> None:
    from hpo_quality import parse_args

    s = settings(PPO_SETTINGS)
    full = parse_args(["--task", "cartpole"])
    fixed = s["fixed_params"]
    assert (
        full.trials
        == s["optimization_setting"]["number_of_samples"] * fixed["learning_runs_per_job"]
    )
    assert full.budget == fixed["config.rl_common_config.total_timesteps"]
    assert full.eval_episodes == fixed["config.rl_common_config.eval_episodes"]
    assert "zoo" in full.methods and "cem" in full.methods
    assert full.out == REPO / "bench" / "results" / "cartpole"
    quick = parse_args(["--quick", "--reeval-seeds", "3"])
    assert (quick.trials, quick.budget, quick.repeats, quick.reeval_seeds) == (4, 1_000, 1, 3)
    assert quick.out == REPO / "bench" / "results" / "quick" / "cartpole"
    assert parse_args(["--out", "rel"]).out == Path("rel").resolve() / "cartpole"
    assert max(by_name_of(quick.settings)["batch_size"].options) <= 256


@pytest.mark.parametrize(
    "methods",
    ["foo", "zoo@2", "cem@0", "cem@x", "zoo+2x2", "cem+2x1", "cem+0x2", "cem+2", "cem+x"]
    + ["cem~x", "zoo~ce", "cem~ce+2x2", "zoo~free", "cem~ce~ce", "cem~free~", "zoo~late"],
)
def test_an_unknown_method_exits_1_naming_it(methods: str, capsys) -> None:
    from hpo_quality import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(["--methods", f"zoo,{methods}"])
    assert exit_.value.code == 1
    assert methods in capsys.readouterr().err


@given(
    base=st.sampled_from(["cem", "twopointsde", "genetic", "dgd"]),
    runs=st.none() | st.integers(1, 99),
    pick=st.none() | st.tuples(st.integers(1, 99), st.integers(2, 99)),
    flags=st.lists(st.sampled_from(["ce", "free", "late"]), unique=True),
)
def test_a_method_name_is_read_back_into_its_parts(base, runs, pick, flags) -> None:
    name = base + (f"@{runs}" if runs else "") + (f"+{pick[0]}x{pick[1]}" if pick else "")
    name += "".join(f"~{f}" for f in flags)
    top, reruns = pick or (0, 0)
    expected = Method(base, runs, top, reruns, "ce" in flags, "free" in flags, "late" in flags)
    assert parse_method(name) == expected
    assert parse_method(name).pick_trainings == top * reruns


def test_a_pick_that_leaves_too_few_search_jobs_exits_1_saying_so(capsys) -> None:
    from hpo_quality import parse_args

    assert parse_args(["--quick", "--methods", "cem+1x2"]).methods == ["cem+1x2"]  # 2 + 1 x 2
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--quick", "--methods", "cem+2x2"])  # 4 trainings: none left to search
    assert exit_.value.code == 1
    assert "cem+2x2: 4 trainings leave fewer than 2 search jobs" in capsys.readouterr().err


def test_report_writes_the_files_and_fails_when_a_search_failed(tmp_path, capsys) -> None:
    import argparse

    from hpo_quality_report import report

    args = argparse.Namespace(
        out=tmp_path,
        task="cartpole",
        algo="ppo",
        env_id="CartPole-v1",
        trials=16,
        budget=10_000,
        runs_per_job=1,
        eval_episodes=5,
        repeats=2,
        reeval_seeds=2,
    )
    assert report(args, outcomes()) == 0
    assert {p.name for p in tmp_path.iterdir()} == {
        "hpo_quality.csv",
        "hpo_quality.md",
        "hpo_quality.png",
    }
    assert "| cem | 1 |" in (tmp_path / "hpo_quality.md").read_text()
    broken = [*outcomes(), Outcome("cartpole", "twopointsde", 0, "failed", "exit 1: boom")]
    assert report(args, broken) == 1
    assert "FAILED twopointsde repeat 0: exit 1: boom" in capsys.readouterr().err
    only_missing = [Outcome("cartpole", "dgd", 0, "missing", "not here")]
    assert report(args, only_missing) == 1  # nothing ran: not a benchmark
