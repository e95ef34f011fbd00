"""The benchmark's methods: the compact syntax users type, its readable names, and the
command line that takes them (``python bench/hpo_quality.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_helpers import PPO_SETTINGS, by_name_of, settings
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st

from bench.hpo_quality.cli import parse_args
from bench.hpo_quality.methods import (
    BASE_NAMES,
    RL_RELAY_METHODS,
    ZOO_METHODS,
    Method,
    is_known,
    label,
    parse_method,
)

# -- the syntax ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "methods",
    ["foo", "zoo@2", "cem@0", "cem@x", "zoo+2x2", "cem+2x1", "cem+0x2", "cem+2", "cem+x"]
    + ["cem~x", "zoo~ce", "cem~ce+2x2", "zoo~free", "cem~ce~ce", "cem~free~", "zoo~late"],
)
def test_an_unknown_method_exits_1_naming_it(methods: str, capsys) -> None:
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


# -- readable names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, readable",
    [
        ("zoo", "rl-zoo3 TPE"),
        ("zoo-median", "rl-zoo3 TPE + median pruner"),
        ("cem", "CEM"),
        ("cem@1", "CEM, 1 run per job"),
        ("twopointsde+2x2", "differential evolution (nevergrad), best 2 re-run 2 times"),
        ("genetic", "genetic"),
        ("dgd", "grid descent (DGD)"),
        ("pbt", "PBT"),
        ("tpe@2~ce~late", "TPE, 2 runs per job, shared eval episodes, late-window score"),
        ("tpe~free~ce", "TPE, shared eval episodes, ask when a worker is free"),
        ("cem@3+1x2~free", "CEM, 3 runs per job, best 1 re-run 2 times, ask when a worker is free"),
    ],
)
def test_a_method_is_shown_by_its_readable_name(name: str, readable: str) -> None:
    assert label(name) == parse_method(name).label == readable


def test_every_method_has_a_readable_name_and_a_name_it_cannot_read_stays_as_it_is() -> None:
    assert set(BASE_NAMES) == {*ZOO_METHODS, *RL_RELAY_METHODS}
    assert label("cem~x") == "cem~x"


# -- the command line ---------------------------------------------------------------------------


def test_defaults_come_from_the_settings_file_and_quick_shrinks_everything() -> None:
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
    assert (quick.trials, quick.budget, quick.repeats, quick.reeval_seeds) == (4, 1_024, 1, 3)
    assert quick.out == REPO / "bench" / "results" / "quick" / "cartpole"
    assert parse_args(["--out", "rel"]).out == Path("rel").resolve() / "cartpole"
    assert max(by_name_of(quick.settings)["batch_size"].options) <= 256


def test_a_pick_that_leaves_too_few_search_jobs_exits_1_saying_so(capsys) -> None:
    assert parse_args(["--quick", "--methods", "cem+1x2"]).methods == ["cem+1x2"]  # 2 + 1 x 2
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--quick", "--methods", "cem+2x2"])  # 4 trainings: none left to search
    assert exit_.value.code == 1
    assert "cem+2x2: 4 trainings leave fewer than 2 search jobs" in capsys.readouterr().err


def test_a_pick_counts_against_the_share_of_the_budget_an_early_stopping_search_has(
    capsys,
) -> None:
    """32 trainings at 80% are 25; +3x4 keeps 12 of them for its re-runs: 13 search jobs."""
    assert parse_args(["--methods", "tpe+3x4~pruned%80"]).methods == ["tpe+3x4~pruned%80"]
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--methods", "tpe+3x4~pruned%40"])  # 12 trainings: all are re-runs
    assert exit_.value.code == 1
    assert "tpe+3x4~pruned%40: 12 trainings leave fewer than 3 search jobs" in (
        capsys.readouterr().err
    )


def test_pbt_is_a_row_saying_why_it_is_not_compared() -> None:
    from bench.hpo_quality.runs import Env, availability

    state, _ = availability(["pbt", "cem"], Env.current())
    assert state["pbt"][0] == "skipped" and "schedule" in state["pbt"][1]
    assert state["cem"] == ("", "")


# -- early stopping methods ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name, stopping, share, readable",
    [
        ("cem~asha", "asha", 100, "CEM, ASHA early stopping"),
        ("random~median%50", "median", 50, "random search (nevergrad), median-rule early"
         " stopping, 50% of the env steps"),
        ("tpe~ce~pruned%80", "pruned", 80, "TPE, shared eval episodes, Optuna's median pruner,"
         " 80% of the env steps"),
        ("tpe~late~pruned%80", "pruned", 80, "TPE, late-window score, Optuna's median pruner,"
         " 80% of the env steps"),
        ("tpe+3x2~pruned%95", "pruned", 95, "TPE, best 3 re-run 2 times, Optuna's median"
         " pruner, 95% of the env steps"),
        ("tpe~ce~late~fit~pruned%90", "pruned", 90, "TPE, shared eval episodes, late-window"
         " score, rounds within the budget, Optuna's median pruner, 90% of the env steps"),
    ],
)  # fmt: skip
def test_early_stopping_methods_are_read_and_named(name, stopping, share, readable) -> None:
    method = parse_method(name)
    assert (method.stopping, method.share) == (stopping, share)
    assert method.label == readable and is_known(name)


@pytest.mark.parametrize(
    "name",
    ["cem~pruned", "cem~asha~median", "cem%50", "cem~asha%0", "cem~asha%101", "cem+2x2~pruned",
     "zoo~asha", "zoo~late~asha", "zoo+2x2~pruned", "cem~fit", "tpe~fit%90"],
)  # fmt: skip
def test_early_stopping_methods_that_cannot_run_are_unknown(name: str) -> None:
    assert not is_known(name)
