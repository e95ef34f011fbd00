"""rl-relay reevaluate: the best configurations again, on seeds the search never used.

The stand-in learner's reward is ``learning_rate * ticks + seed % 7``: a known true value
(``learning_rate * ticks + 3``, the mean of the seed noise) plus seed-dependent noise, so
the selection bias of a search and the honesty of its re-evaluation can be checked.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import hp_optimization, read_json, rl_relay, stand_in_settings
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import t as scipy_t

from rl_relay.job.state import Plan
from rl_relay.paramtree import lookup
from rl_relay.reevaluate.stats import (
    FIRST_BASE_SEED,
    Candidate,
    Evaluated,
    ReevaluationError,
    choose,
    fresh_base_seed,
    grid_settings,
    rank,
    recommendation,
    summary_rows,
    table,
)

TICKS = 3  # the stand-in template's ticks per iteration


def test_the_best_distinct_configurations_with_kept_settings_are_chosen() -> None:
    ranked = [(4, 9.0), (2, 8.5), (7, 8.0), (1, 7.0)]
    settings = {
        4: {"config": {"rl_config": {"learning_rate": 3.0}}},
        2: {"config": {"rl_config": {"learning_rate": 3.0}}},  # the same configuration again
        1: {"config": {"rl_config": {"learning_rate": 1.0}}},  # job 7's directory is gone
    }
    names = ["config.rl_config.learning_rate"]
    chosen, note = choose(ranked, settings, names, top=3)
    assert [(c.job_id, c.values[names[0]]) for c in chosen] == [(4, 3.0), (1, 1.0)]
    assert note is not None and "num_best_jobs_whose_data_is_kept" in note
    with pytest.raises(ReevaluationError):
        choose(ranked, {}, names, top=1)


def test_a_top_that_cuts_through_equal_estimates_says_so() -> None:
    """Four configurations at CartPole's ceiling: --top 1 picks one of them arbitrarily."""
    ranked = [(3, 500.0), (8, 500.0), (5, 500.0), (9, 500.0), (1, 480.0)]
    settings = {i: {"config": {"rl_config": {"learning_rate": float(i)}}} for i, _ in ranked}
    settings[9] = settings[3]  # job 9 repeats job 3's configuration: one of the four
    names = ["config.rl_config.learning_rate"]
    chosen, note = choose(ranked, settings, names, top=1)
    assert [c.job_id for c in chosen] == [3]
    assert note is not None
    assert "3 distinct configurations share the estimate 500 (search jobs 3, 5, 8)" in note
    assert "--top 1 takes 1 of them" in note and "--top 3 re-evaluates them all" in note
    chosen, note = choose(ranked, settings, names, top=2)
    assert "--top 2 takes 2 of them" in (note or "") and "--top 3 re-evaluates" in (note or "")
    chosen, note = choose(ranked, settings, names, top=3)
    assert [c.job_id for c in chosen] == [3, 8, 5] and note is None
    assert choose(ranked, settings, names, top=4)[1] is None  # 480 is below: no tie cut


@given(
    estimates=st.lists(st.sampled_from([1.0, 2.0, 3.0]), min_size=1, max_size=12),
    top=st.integers(1, 12),
)
def test_the_tie_note_is_right_and_its_top_takes_every_tied_configuration(
    estimates: list[float], top: int
) -> None:
    """Distinct configurations, best first: a note exactly when the first one left out has the
    last chosen one's estimate; the --top it suggests leaves none of that estimate out."""
    ranked = sorted(enumerate(estimates), key=lambda r: -r[1])
    settings = {i: {"x": i} for i, _ in ranked}
    chosen, note = choose(ranked, settings, ["x"], top)
    assert [c.job_id for c in chosen] == [i for i, _ in ranked[:top]]
    left_out = ranked[top:]
    cut = bool(left_out) and left_out[0][1] == chosen[-1].estimate
    assert (note is not None and "share the estimate" in note) == cut
    if cut:
        assert note is not None
        suggested = int(note.rsplit("--top ", 1)[1].split()[0])
        level = chosen[-1].estimate
        assert suggested == top + sum(e == level for _, e in left_out)
        again, again_note = choose(ranked, settings, ["x"], suggested)
        assert {c.job_id for c in again} >= {i for i, e in ranked if e == level}
        assert again_note is None


def test_the_base_seed_avoids_every_seed_of_the_search() -> None:
    taken = {Plan(2, 1, 3, FIRST_BASE_SEED, "job", 1).seed(1, 2)}
    base = fresh_base_seed(taken, jobs=2, runs=2, max_attempts=3)
    assert base == FIRST_BASE_SEED + 1
    assert fresh_base_seed(set(), jobs=2, runs=2, max_attempts=3) == FIRST_BASE_SEED


def test_confidence_interval_and_ties() -> None:
    a = Evaluated(Candidate(0, 10.0, {}), [1.0, 2.0, 3.0, 4.0])
    low, high = a.interval()
    # t(0.975, 3) = 3.182; std 1.291; half width 2.054
    assert (low, high) == pytest.approx((2.5 - 2.054, 2.5 + 2.054), abs=1e-3)
    b = Evaluated(Candidate(1, 12.0, {}), [3.0, 4.0, 3.5, 4.5])
    far = Evaluated(Candidate(2, 11.0, {}), [40.0, 41.0, 42.0, 43.0])
    assert "search job 1" in recommendation([a, b], minimize=False)
    assert "A tie with search job(s) 0" in recommendation([a, b], minimize=False)
    assert "tie" not in recommendation([a, far], minimize=False)
    assert "search job 0" in recommendation([a, far], minimize=True)


def recommended(text: str) -> int | None:
    prefix = "Recommended: the configuration of search job "
    return int(text[len(prefix) :].split(",")[0]) if text.startswith(prefix) else None


def test_a_failed_configuration_ranks_last_and_is_never_recommended() -> None:
    """The issue's case: a failed configuration in second place broke the sort, and 5.55 was
    recommended over 7.55."""
    good = Evaluated(Candidate(3, 9.0, {"config.a": 1}), [5.5, 5.6], [11, 12])
    failed = Evaluated(Candidate(8, 8.5, {"config.a": 2}), [], [], failed_runs=1)
    better = Evaluated(Candidate(5, 8.0, {"config.a": 3}), [7.5, 7.6], [13, 14])
    evaluated = [good, failed, better]
    assert [e.candidate.job_id for e in rank(evaluated, minimize=False)] == [5, 3, 8]
    advice = recommendation(evaluated, minimize=False)
    assert recommended(advice) == 5
    assert "tie" not in advice
    assert "Not ranked: search job 8 (failed: no run finished)" in advice
    rows = summary_rows(evaluated, minimize=False, runs_requested=2)
    assert [(r["rank"], r["search_job"], r["status"]) for r in rows] == [
        (1, 5, "ok"),
        (2, 3, "ok"),
        (3, 8, "failed: no run finished"),
    ]
    assert (rows[2]["reevaluated_mean"], rows[2]["ci95_low"], rows[2]["runs"]) == ("", "", 0)
    printed = table(rows).splitlines()
    assert "failed: no run finished" in printed[3] and "nan" not in table(rows)
    assert recommended(recommendation(evaluated, minimize=True)) == 3


def test_one_run_gives_a_rank_by_its_mean_but_no_interval_and_no_tie() -> None:
    one = Evaluated(Candidate(1, 9.0, {}), [8.0], [21])
    two = Evaluated(Candidate(2, 8.0, {}), [7.0, 7.5], [22, 23], failed_runs=1)
    none = Evaluated(Candidate(4, 7.0, {}), [], [])
    advice = recommendation([two, none, one], minimize=False)
    assert recommended(advice) == 1 and "from 1 run, its interval unknown" in advice
    assert "tie" not in advice and "(no run finished)" in advice
    advice = recommendation([two, one], minimize=True)
    assert recommended(advice) == 2 and "1 of its runs failed" in advice
    assert "Search job(s) 1 finished 1 run: interval unknown" in advice
    rows = summary_rows([one, two, none], minimize=False, runs_requested=3)
    assert [r["status"] for r in rows] == [
        "1 run: interval unknown",
        "2 of 3 runs; 1 run(s) failed",
        "no run finished",
    ]
    assert rows[0]["reevaluated_mean"] == 8.0 and rows[0]["reevaluated_std"] == ""
    assert "unknown" in table(rows).splitlines()[1]
    assert recommendation([none], minimize=False).startswith("No configuration has a finished")


rewards = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=0, max_size=4
)


@given(st.lists(rewards, min_size=1, max_size=6), st.booleans())
def test_ranking_and_recommendation_whatever_failed(runs: list, minimize: bool) -> None:
    evaluated = [Evaluated(Candidate(i, 0.0, {"p": i}), r) for i, r in enumerate(runs)]
    ranked = rank(evaluated, minimize)
    assert sorted(e.candidate.job_id for e in ranked) == list(range(len(runs)))
    with_runs = [e for e in ranked if e.runs]
    assert ranked[: len(with_runs)] == with_runs  # run-less ones last
    means = [e.mean if minimize else -e.mean for e in with_runs]
    assert means == sorted(means)
    advice = recommendation(evaluated, minimize)
    if with_runs:
        best = evaluated[recommended(advice)]
        assert best.runs and best.mean == with_runs[0].mean
    else:
        assert recommended(advice) is None
    if "A tie with search job(s) " in advice:
        tied = advice.split("A tie with search job(s) ")[1].split(":")[0].split(", ")
        assert all(evaluated[int(t)].runs >= 2 for t in tied)
    rows = summary_rows(evaluated, minimize)
    assert [r["search_job"] for r in rows] == [e.candidate.job_id for e in ranked]
    assert "nan" not in table(rows)


def test_grid_settings_run_each_candidate_runs_times_with_the_searchs_settings() -> None:
    hpo = {
        "script_relative_path": "wrappers/run_learning.py",
        "environment_setup": {},
        "cluster_requirements": {"request_cpus": 1},
        "fixed_params": {"config.config_templates": "x.json", "learning_runs_per_job": 1},
        "optimization_setting": {"number_of_samples": 100},
    }
    candidates = [Candidate(5, 1.0, {"config.a": 1}), Candidate(9, 0.5, {"config.a": 2})]
    grid = grid_settings(hpo, candidates, 4, 77, "/r", "reevaluation", local=True)
    assert grid["hyperparam_list"] == [
        {"param": ["config.a", "reevaluation_of"], "values": [[1, 5], [2, 9]]}
    ]
    # every run its own job by default: the grid repeated 4 times, 1 run per job
    assert (grid["fixed_params"]["learning_runs_per_job"], grid["restarts"]) == (1, 4)
    assert (grid["fixed_params"]["seed"], grid["fixed_params"]["seed_scope"]) == (77, "job")
    assert (grid["local_run"], grid["results_dir"]) == (True, "/r")
    for per_job, restarts in ((2, 2), (4, 1)):  # 4 = one job per configuration, as before
        grid = grid_settings(hpo, candidates, 4, 77, "/r", "reevaluation", True, per_job)
        assert (grid["fixed_params"]["learning_runs_per_job"], grid["restarts"]) == (
            per_job, restarts,
        )  # fmt: skip
    with pytest.raises(ValueError, match="must divide"):
        grid_settings(hpo, candidates, 4, 77, "/r", "reevaluation", True, 3)
    assert "optimization_setting" not in grid
    with pytest.raises(ValueError, match="absolute"):  # cluster_utils would put it in $HOME
        grid_settings(hpo, candidates, 4, 77, "results/p", "reevaluation", local=True)


@pytest.mark.parametrize(
    "fixed",
    [
        {"config.rl_common_config.eval_seed": 100},
        {"config": {"rl_common_config": {"eval_seed": 100, "total_timesteps": 10}}},
    ],
)
def test_a_search_on_shared_episodes_is_re_evaluated_on_episodes_of_its_fresh_seeds(
    fixed: dict,
) -> None:
    hpo = {"fixed_params": {"learning_runs_per_job": 1, **fixed}}
    grid = grid_settings(hpo, [Candidate(5, 1.0, {"config.a": 1})], 4, 77, "/r", "re", False)
    assert lookup(grid["fixed_params"], "config.rl_common_config.eval_seed", "gone") == "gone"
    if "config" in fixed:  # the rest of the nested form is kept
        assert grid["fixed_params"]["config"]["rl_common_config"]["total_timesteps"] == 10
    assert lookup(hpo["fixed_params"], "config.rl_common_config.eval_seed") == 100  # not changed


def search(tmp_path: Path, seed: int) -> Path:
    """A search over one configuration (learning_rate 1): its true value is known."""
    settings = stand_in_settings(tmp_path, samples=6, learning_runs_per_job=1, seed=seed)
    data = json.loads(settings.read_text())
    data["optimized_params"] = [
        {"param": "config.rl_config.learning_rate", "distribution": "Discrete", "options": [1.0]}
    ]
    data["num_best_jobs_whose_data_is_kept"] = 2
    settings.write_text(json.dumps(data))
    proc = hp_optimization(settings)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return tmp_path / "results" / "local_test"


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished search over two parameters with its 2 best jobs' directories kept (once per
    module; copy it with ``copy_search`` before changing anything)."""
    tmp = tmp_path_factory.mktemp("search")
    settings = stand_in_settings(tmp, samples=4, learning_runs_per_job=1, seed=0)
    data = json.loads(settings.read_text())
    data["num_best_jobs_whose_data_is_kept"] = 2
    settings.write_text(json.dumps(data))
    proc = hp_optimization(settings)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return tmp / "results" / "local_test"


def copy_search(searched: Path, to: Path) -> Path:
    shutil.copytree(searched, to)
    return to


def reevaluate(results: Path, *args: str) -> subprocess.CompletedProcess:
    return rl_relay("reevaluate", str(results), *args)


def seeds_in(root: Path) -> set[int]:
    return {
        seed
        for state in root.glob("working_directories/*/restarts.json")
        for run in read_json(state)["runs"]
        for seed in run["seeds"]
    }


@pytest.mark.slow
def test_selection_bias_and_an_honest_reevaluation(tmp_path: Path) -> None:
    true_value = 1.0 * TICKS + 3.0
    biases = []
    for seed in (0, 1):
        results = search(tmp_path / f"search{seed}", seed)
        with open(results / "all_data.csv") as f:
            best = max(float(r["mean_eprewmean"]) for r in csv.DictReader(f))
        biases.append(best - true_value)
        dry = reevaluate(results, "--top", "1", "--runs", "6", "--local", "--dry-run")
        assert dry.returncode == 0, dry.stderr[-2000:]
        assert "Would re-evaluate 1 configuration(s) x 6 runs" in dry.stdout
        assert "in 6 job(s) of 1 run(s)" in dry.stdout  # side by side, not one after another
        assert not (results / "reevaluation").exists()  # the choice only: nothing written
        proc = reevaluate(results, "--top", "1", "--runs", "6", "--local")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "Recommended: the configuration of search job" in proc.stdout
        with open(results / "reevaluation" / "summary.csv") as f:
            (row,) = list(csv.DictReader(f))
        assert int(row["runs"]) == 6
        # the stand-in's noise is the seed mod 7: fresh seeds scatter around the true value
        # (a 95% interval misses it on 1 draw in 20, so the check is at 99.9%)
        mean, std = float(row["reevaluated_mean"]), float(row["reevaluated_std"])
        half = float(row["ci95_high"]) - mean
        assert math.isclose(half, scipy_t.ppf(0.975, 5) * std / math.sqrt(6))
        assert abs(mean - true_value) <= scipy_t.ppf(0.9995, 5) * std / math.sqrt(6)
        assert math.isclose(float(row["search_estimate"]), best)
        fresh = {int(s) for s in row["seeds"].split()}
        assert len(fresh) == 6 and fresh.isdisjoint(seeds_in(results))
        report = subprocess.run(
            [sys.executable, "-m", "rl_relay.cli", "report", str(results)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert report.returncode == 0, report.stderr
        page = (results / "report" / "index.html").read_text()
        assert "Re-evaluation on fresh seeds" in page and "reevaluation.png" in page
        assert "Recommended: the configuration of search job" in page
        # started again: nothing runs twice, the same summary
        again = reevaluate(results, "--top", "1", "--runs", "6", "--local")
        assert again.returncode == 0
        assert len(list((results / "reevaluation" / "working_directories").iterdir())) == 6
    # the best of six noisy jobs overestimates what the configuration is worth
    assert sum(biases) / len(biases) > 0


def test_a_results_dir_without_the_hpo_record_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "r" / "working_directories").mkdir(parents=True)
    proc = reevaluate(tmp_path / "r")
    assert proc.returncode == 1
    assert "rl_relay_hpo.json is missing" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["DIR", "--top", "1", "--runs", "2", "--local", "a.b=2", "c='x'"],  # as documented
        ["DIR", "a.b=2", "c='x'", "--top", "1", "--runs", "2", "--local"],
        ["--top", "1", "DIR", "a.b=2", "--runs", "2", "c='x'", "--local"],
        ["DIR", "--top", "1", "--runs", "2", "--local", "--", "a.b=2", "c='x'"],
    ],
)
def test_overrides_are_accepted_before_and_after_the_options(monkeypatch, argv) -> None:
    from rl_relay import cli
    from rl_relay.reevaluate import command

    seen: list = []
    monkeypatch.setattr(command, "run", lambda args: seen.append(args) or 0)
    assert cli.main(["reevaluate", *argv]) == 0
    (args,) = seen
    assert (args.results_dir, args.top, args.runs, args.local) == (Path("DIR"), 1, 2, True)
    assert args.overrides == ["a.b=2", "c='x'"]


def test_after_a_double_dash_an_override_may_look_like_an_option(monkeypatch) -> None:
    from rl_relay import cli
    from rl_relay.reevaluate import command

    seen: list = []
    monkeypatch.setattr(command, "run", lambda args: seen.append(args) or 0)
    assert cli.main(["reevaluate", "DIR", "--runs", "3", "--", "--odd=1"]) == 0
    assert (seen[0].runs, seen[0].local, seen[0].overrides) == (3, False, ["--odd=1"])
    with pytest.raises(SystemExit):  # without it, an unknown option is still an error
        cli.main(["reevaluate", "DIR", "--odd=1"])


@pytest.mark.slow
def test_a_relative_results_dir_is_the_one_below_the_current_directory(
    searched: Path, tmp_path: Path
) -> None:
    results = copy_search(searched, tmp_path / "results" / "local_test")
    home = tmp_path / "home"  # cluster_utils joins a relative results_dir onto $HOME
    home.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "rl_relay.cli", "reevaluate", "results/local_test"]
        + ["--top", "1", "--runs", "2", "--local"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with open(results / "reevaluation" / "summary.csv") as f:
        assert [int(r["runs"]) for r in csv.DictReader(f)] == [2]
    assert not list(home.rglob("summary.csv")) and not list(home.rglob("restarts.json"))


def failing_everywhere(results: Path, tmp_path: Path) -> None:
    """Make every re-evaluation run fail: the search's recorded templates, copied with the
    stand-in's ``fail_dirs`` set for every attempt of run 0."""
    record = read_json(results / "rl_relay_hpo.json")
    fixed = record["settings"]["fixed_params"]
    index = Path(fixed["config.config_templates"])
    templates = shutil.copytree(index.parent, tmp_path / "failing_templates")
    rl = read_json(templates / "rl.json")
    rl["fail_dirs"] = [f"run_0.0-{attempt}" for attempt in range(3)]
    (templates / "rl.json").write_text(json.dumps(rl))
    fixed["config.config_templates"] = str(templates / index.name)
    (results / "rl_relay_hpo.json").write_text(json.dumps(record))


@pytest.mark.slow
def test_configurations_whose_runs_all_failed_are_named_and_nothing_is_recommended(
    searched: Path, tmp_path: Path
) -> None:
    results = copy_search(searched, tmp_path / "local_test")
    failing_everywhere(results, tmp_path)
    proc = reevaluate(results, "--top", "2", "--runs", "2", "--local")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "no re-evaluation job finished a run" in proc.stderr
    with open(results / "reevaluation" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["runs"], r["reevaluated_mean"], r["status"]) for r in rows] == [
        ("0", "", "failed: no run finished")
    ] * 2
    advice = (results / "reevaluation" / "recommendation.txt").read_text()
    assert advice.startswith("No configuration has a finished re-evaluation run")
    assert advice.count("(failed: no run finished)") == 2
    assert proc.stdout.count("failed: no run finished") >= 2  # the table names them too
    report = rl_relay("report", str(results))
    assert report.returncode == 0, report.stderr
    assert "failed: no run finished" in (results / "report" / "index.html").read_text()


def edit_record(results: Path, change) -> None:
    record = read_json(results / "rl_relay_hpo.json")
    change(record)
    (results / "rl_relay_hpo.json").write_text(json.dumps(record))


def assert_one_message(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 1 with one message (no traceback) that holds ``words``."""
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (message,) = [line for line in proc.stderr.splitlines() if "rl-relay reevaluate:" in line]
    for word in words:
        assert word in message, message


HAND_EDITS = {
    "a search job's restarts.json": (
        lambda r: (r / "working_directories" / "1" / "restarts.json").write_text('{"runs": 5}'),
        ["working_directories/1/restarts.json is corrupt", "restore it"],
    ),
    "a list for rl_relay_hpo.json": (
        lambda r: (r / "rl_relay_hpo.json").write_text("[1, 2]"),
        ["rl_relay_hpo.json is corrupt", "rl-relay hpo command again"],
    ),
    "rl_relay_hpo.json cut off": (
        lambda r: (r / "rl_relay_hpo.json").write_text('{"settings": {'),
        ["rl_relay_hpo.json cannot be read", "rl-relay hpo command again"],
    ),
    "fixed_params a list": (
        lambda r: edit_record(r, lambda d: d["settings"].update(fixed_params=[1])),
        ["rl_relay_hpo.json is corrupt at 'settings.fixed_params'"],
    ),
    "optimized_params a string": (
        lambda r: edit_record(r, lambda d: d["settings"].update(optimized_params="lr")),
        ["rl_relay_hpo.json is corrupt at 'settings.optimized_params'"],
    ),
    "optimization_setting a number": (
        lambda r: edit_record(r, lambda d: d["settings"].update(optimization_setting=3)),
        ["rl_relay_hpo.json is corrupt at 'settings.optimization_setting'"],
    ),
}


@pytest.mark.parametrize("edit", HAND_EDITS)
def test_a_hand_corrupted_search_is_one_message_naming_the_file(
    searched: Path, tmp_path: Path, edit: str
) -> None:
    results = copy_search(searched, tmp_path / "local_test")
    corrupt, words = HAND_EDITS[edit]
    corrupt(results)
    assert_one_message(reevaluate(results, "--top", "2", "--runs", "2", "--local"), *words)
    assert not (results / "reevaluation").exists()  # nothing ran


@pytest.mark.slow
def test_a_hand_corrupted_reevaluation_is_one_message_naming_the_file(
    searched: Path, tmp_path: Path
) -> None:
    results = copy_search(searched, tmp_path / "local_test")
    first = reevaluate(results, "--top", "1", "--runs", "2", "--local")
    assert first.returncode == 0, first.stderr[-2000:]
    jobs = sorted((results / "reevaluation" / "working_directories").iterdir())
    assert len(jobs) == 2  # one per run
    job = jobs[0]
    state = job / "restarts.json"
    kept = state.read_text()
    state.write_text('{"runs": 5}')
    again = reevaluate(results, "--top", "1", "--runs", "2", "--local")
    assert_one_message(again, f"{state} is corrupt", f"move {job} away")
    state.write_text(kept)
    kept = (job / "settings.json").read_text()
    (job / "settings.json").write_text('["not", "settings"]')
    again = reevaluate(results, "--top", "1", "--runs", "2", "--local")
    assert_one_message(again, "settings.json is not a JSON object", f"move {job} away")
    (job / "settings.json").write_text(kept)
    (results / "reevaluation" / "summary.csv").write_bytes(b'\x00garbage,"\n1,2,3\n')
    again = reevaluate(results, "--top", "1", "--runs", "2", "--local")
    assert again.returncode == 0 and "Traceback" not in again.stderr  # rewritten
    with open(results / "reevaluation" / "summary.csv") as f:
        assert [r["runs"] for r in csv.DictReader(f)] == ["2"]


@pytest.mark.slow
def test_runs_are_spread_over_jobs_and_an_older_layout_continues_as_it_was(
    searched: Path, tmp_path: Path
) -> None:
    """Each run its own job (side by side on the backend) unless --runs-per-job; a
    re-evaluation started with all its runs in one job (as before 2026-12-06) continues so:
    its jobs are numbered that way, and renumbering them would report one job's runs twice."""
    results = copy_search(searched, tmp_path / "local_test")
    odd = reevaluate(results, "--top", "1", "--runs", "3", "--runs-per-job", "2", "--local")
    assert_one_message(odd, "--runs-per-job 2", "divides --runs 3")
    assert not (results / "reevaluation").exists()
    jobs_dir = results / "reevaluation" / "working_directories"
    one_job = reevaluate(results, "--top", "1", "--runs", "2", "--runs-per-job", "2", "--local")
    assert one_job.returncode == 0, one_job.stderr[-2000:]
    assert len(list(jobs_dir.iterdir())) == 1
    (row,) = summary_of(results / "reevaluation")
    request = read_json(results / "reevaluation" / "request.json")
    assert request["runs_per_job"] == 2
    del request["runs_per_job"]  # as an older rl-relay recorded it
    (results / "reevaluation" / "request.json").write_text(json.dumps(request))
    for extra in ([], ["--runs-per-job", "1"]):
        again = reevaluate(results, "--top", "1", "--runs", "2", "--local", *extra)
        assert again.returncode == 0, again.stderr[-2000:]
        assert "Continuing the re-evaluation in " in again.stdout
        assert len(list(jobs_dir.iterdir())) == 1 and summary_of(results / "reevaluation") == [row]
        assert ("continues so; --fresh starts it over" in again.stdout) == bool(extra)
    fresh = reevaluate(results, "--top", "1", "--runs", "2", "--local", "--fresh")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert len(list(jobs_dir.iterdir())) == 2  # now one job per run
    (spread,) = summary_of(results / "reevaluation")
    seeds = [int(s) for s in spread["seeds"].split()]
    assert (
        spread["runs"] == "2" and len(set(seeds)) == 2 and set(seeds).isdisjoint(seeds_in(results))
    )


# -- which re-evaluation a request continues (#28: a new request never mixes with an old one)


def test_only_the_same_request_continues_a_reevaluation() -> None:
    from rl_relay.reevaluation_request import Earlier, choose_directory, identity, latest

    a = identity([(4, {"lr": 1.0}), (9, {"lr": 2.0})], 3, [])
    request = {"identity": a, "base_seed": 7, "last_started": "2026-01-02T00:00:00+00:00"}
    old = Earlier(1, "reevaluation", request)
    legacy = Earlier(2, "reevaluation-2", None)  # before requests were recorded
    assert choose_directory(a, [old, legacy], fresh=False).continues
    assert choose_directory(a, [old, legacy], fresh=False).number == 1
    fresh = choose_directory(a, [old, legacy], fresh=True)
    assert (fresh.number, fresh.same, fresh.continues) == (1, old, False)
    for other in (
        identity([(4, {"lr": 1.0}), (9, {"lr": 2.0})], 5, []),  # more runs
        identity([(9, {"lr": 2.0}), (4, {"lr": 1.0})], 3, []),  # a new best job first
        identity([(4, {"lr": 1.0})], 3, []),
        identity([(4, {"lr": 1.0}), (9, {"lr": 2.0})], 3, [("a", 1)]),
    ):
        choice = choose_directory(other, [old, legacy], fresh=False)
        assert (choice.number, choice.same) == (3, None)
    assert choose_directory(a, [], fresh=False).number == 1
    assert latest([old, legacy]) is old  # an unknown start time counts as oldest
    later = Earlier(3, "reevaluation-3", {**request, "last_started": "2026-01-03T00:00:00+00:00"})
    assert latest([old, later, legacy]) is later
    # JSON's lists and Python's tuples are the same request (PBT's schedules are tuples)
    assert identity([(1, {"s": ((0, (("lr", 1),)),)})], 2, []) == identity(
        [(1, {"s": [[0, [["lr", 1]]]]})], 2, []
    )


def test_the_announcement_says_what_this_start_does() -> None:
    from rl_relay.reevaluation_request import (
        Earlier,
        announcement,
        choose_directory,
        identity,
    )

    a = identity([(4, {"lr": 1.0})], 3, [])
    b = identity([(4, {"lr": 1.0})], 5, [("cluster_requirements.request_cpus", 2)])
    old = Earlier(1, "reevaluation", {"identity": a, "base_seed": 7, "last_started": "x"})
    line = announcement(choose_directory(a, [old], False), a, [old], "D", 7)
    assert line.startswith("Continuing the re-evaluation in D: 1 configuration(s)")
    line = announcement(choose_directory(b, [old], False), b, [old], "D2", 7)
    assert line.startswith("Re-evaluating in D2: 1 configuration(s) (search job(s) 4) x 5 runs")
    assert "request_cpus=2" in line and "beside reevaluation/" in line and "x 3 runs" in line
    line = announcement(choose_directory(a, [old], True), a, [old], "D", 7, moved_to="D.old")
    assert line.startswith("Re-evaluating from the start in D") and "moved to D.old" in line
    assert "\n" not in line


keys = st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=4)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(st.lists(st.tuples(keys, json_values), max_size=4))
def test_override_strings_parse_to_their_key_and_value(pairs: list) -> None:
    from rl_relay.reevaluation_request import parse_overrides

    texts = [f"{'.'.join(k)}={v!r}" for k, v in pairs]
    assert parse_overrides(texts) == [(".".join(k), v) for k, v in pairs]


@pytest.mark.parametrize("bad", ["no_equals", "=1", "a=not a literal", "a={1, 2}", "a=b'x'"])
def test_a_bad_override_string_is_an_override_error(bad: str) -> None:
    from rl_relay.reevaluation_request import OverrideError, parse_overrides

    with pytest.raises(OverrideError) as err:
        parse_overrides([bad])
    assert repr(bad) in str(err.value)


def summary_of(directory: Path) -> list[dict[str, str]]:
    with open(directory / "summary.csv") as f:
        return list(csv.DictReader(f))


def make_best(results: Path, job: int) -> None:
    """As if the search had gone on and found a new best job: ``job``'s value raised."""
    for metrics in (results / "working_directories" / str(job)).glob("metrics.csv"):
        rows = list(csv.DictReader(metrics.open()))
        rows[0]["mean_eprewmean"] = "1000.0"
        with metrics.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


@pytest.mark.slow
def test_another_request_is_a_new_reevaluation_beside_the_old_one(
    searched: Path, tmp_path: Path
) -> None:
    results = copy_search(searched, tmp_path / "local_test")
    first = reevaluate(results, "--top", "1", "--runs", "2", "--local")
    assert first.returncode == 0, first.stderr[-2000:]
    (old,) = summary_of(results / "reevaluation")
    # more runs: a new re-evaluation with every run it announces, the old one untouched
    more = reevaluate(results, "--top", "1", "--runs", "3", "--local")
    assert more.returncode == 0, more.stderr[-2000:]
    assert "Re-evaluating in " in more.stdout and "beside reevaluation/" in more.stdout
    assert [r["runs"] for r in summary_of(results / "reevaluation-2")] == ["3"]
    assert summary_of(results / "reevaluation") == [old]
    # the same request again: continued, nothing runs twice
    again = reevaluate(results, "--top", "1", "--runs", "3", "--local")
    assert "Continuing the re-evaluation in " in again.stdout
    assert len(list((results / "reevaluation-2" / "working_directories").iterdir())) == 3
    # the search found a new best job: it gets its own runs, not the old job's "results"
    others = [int(p.name) for p in (results / "working_directories").iterdir()]
    new_best = next(j for j in sorted(others) if j != int(old["search_job"]))
    make_best(results, new_best)
    best = reevaluate(results, "--top", "1", "--runs", "2", "--local")
    assert best.returncode == 0, best.stderr[-2000:]
    (row,) = summary_of(results / "reevaluation-3")
    assert (int(row["search_job"]), row["runs"]) == (new_best, "2")
    # --fresh: the same request's directory moved aside, nothing deleted
    fresh = reevaluate(results, "--top", "1", "--runs", "2", "--local", "--fresh")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert "Re-evaluating from the start in " in fresh.stdout
    (aside,) = results.glob("reevaluation-3.*")
    assert summary_of(aside) == [row] and len(summary_of(results / "reevaluation-3")) == 1
    # the report shows the latest (reevaluation-3/, started last) and says which
    report = rl_relay("report", str(results))
    assert report.returncode == 0, report.stderr
    page = (results / "report" / "index.html").read_text()
    assert "From reevaluation-3/: 1 configuration(s) (search job(s) " in page
    assert "the latest of 3 re-evaluations here" in page


@pytest.mark.slow
def test_a_reevaluation_made_before_requests_were_recorded_is_never_continued(
    searched: Path, tmp_path: Path
) -> None:
    results = copy_search(searched, tmp_path / "local_test")
    first = reevaluate(results, "--top", "1", "--runs", "2", "--local")
    assert first.returncode == 0, first.stderr[-2000:]
    (results / "reevaluation" / "request.json").unlink()
    second = reevaluate(results, "--top", "1", "--runs", "2", "--local")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "reevaluation-2" in second.stdout and "a request that is not recorded" in second.stdout
    (results / "reevaluation-2" / "request.json").write_text('{"identity": 3}')
    third = reevaluate(results, "--top", "1", "--runs", "2", "--local")
    assert_one_message(third, "reevaluation-2/request.json is corrupt", "move ")


def test_a_stopped_jobs_shorter_training_is_said_in_its_own_counts() -> None:
    from rl_relay.reevaluate.command import _stopped_after, _was_stopped
    from rl_relay.report.model import JobInfo

    two_runs = JobInfo(
        1,
        None,
        metrics={"iterations_done": 2.0, "stopped_early": 1.0, "learning_runs": 2.0},
        planned_iterations=3,
    )
    assert _was_stopped(two_runs)
    assert _stopped_after(two_runs) == "after 2 of 6 training iterations over its 2 runs"
    # a search from before the columns existed (all_data.csv holds NaN): not marked, no crash
    older = JobInfo(2, None, metrics={"iterations_done": math.nan, "stopped_early": math.nan})
    assert not _was_stopped(older)
    assert _stopped_after(older) == "before its last training iteration"
