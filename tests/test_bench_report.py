"""The benchmark's report: the summary per method, the table, the comparisons with the zoo,
the CSV, Markdown and PNG, and writing them again from saved searches (``--report-only``)."""

from __future__ import annotations

import argparse
import csv
import json

import pytest
from bench_helpers import outcomes

from bench.hpo_quality import cli
from bench.hpo_quality.outcome import Outcome
from bench.hpo_quality.report import (
    format_table,
    per_repeat_differences,
    report,
    summary,
    versus,
    write_csv,
)


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
    assert table[2].startswith("| rl-zoo3 TPE | 2 | 190,000 | 110 | 490.0 | 215.0 ± ")
    assert table[4].startswith("| grid descent (DGD) | 0 |")
    assert "missing: optimizer 'dgd' is not here" in table[4]


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
        "CEM": "better",
        "grid descent (DGD)": "worse",
        "genetic": "within noise",
        "differential evolution (nevergrad)": "too few seeds to tell",
    }
    assert all(" - rl-zoo3 TPE: " in line for line in lines)
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


def test_csv_has_one_row_per_search_with_its_choice(tmp_path) -> None:
    write_csv(tmp_path / "r.csv", outcomes())
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["zoo", "zoo", "cem", "dgd"]
    assert [r["method_name"] for r in rows][1:3] == ["rl-zoo3 TPE", "CEM"]
    assert json.loads(rows[2]["reeval_rewards"]) == [400.0, 420.0]
    assert float(rows[2]["reeval_mean"]) == 410.0


def test_report_writes_the_files_and_fails_when_a_search_failed(tmp_path, capsys) -> None:
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
    assert "| CEM | 1 |" in (tmp_path / "hpo_quality.md").read_text()
    broken = [*outcomes(), Outcome("cartpole", "twopointsde", 0, "failed", "exit 1: boom")]
    assert report(args, broken) == 1
    assert "FAILED twopointsde repeat 0: exit 1: boom" in capsys.readouterr().err
    only_missing = [Outcome("cartpole", "dgd", 0, "missing", "not here")]
    assert report(args, only_missing) == 1  # nothing ran: not a benchmark


def test_report_only_writes_the_table_from_finished_searches_and_runs_nothing(
    tmp_path, monkeypatch
) -> None:
    done = tmp_path / "cartpole" / "searches"
    done.mkdir(parents=True)
    for outcome in outcomes()[:3]:
        name = f"{outcome.method}-r{outcome.repeat}.json"
        (done / name).write_text(json.dumps(outcome.to_json()))

    def must_not_run(*args, **kwargs):
        raise AssertionError("--report-only ran a search")

    monkeypatch.setattr(cli, "run_one", must_not_run)
    argv = ["--methods", "zoo,cem", "--repeats", "2", "--out", str(tmp_path), "--report-only"]
    assert cli.main(argv) == 0
    table = (tmp_path / "cartpole" / "hpo_quality.md").read_text()
    assert "| rl-zoo3 TPE | 2 |" in table and "| CEM | 1 |" in table
    assert "CEM - rl-zoo3 TPE: +195.0" in table
    with open(tmp_path / "cartpole" / "hpo_quality.csv", newline="") as f:
        rows = {(r["method"], r["repeat"]): r["status"] for r in csv.DictReader(f)}
    assert rows[("cem", "1")] == "not run"
    assert not (tmp_path / "cartpole" / "options.json").exists()


def test_a_confirmation_on_new_seeds_is_reported_apart(tmp_path, monkeypatch) -> None:
    """--from-repeat: the repeats from N on in files of their own; the full table stays."""
    done = tmp_path / "cartpole" / "searches"
    done.mkdir(parents=True)
    for outcome in outcomes():
        for repeat in (outcome.repeat, outcome.repeat + 4):
            moved = Outcome.from_json({**outcome.to_json(), "repeat": repeat})
            (done / f"{outcome.method}-r{repeat}.json").write_text(json.dumps(moved.to_json()))
    monkeypatch.setattr(cli, "run_one", lambda *a, **k: pytest.fail("ran a search"))
    common = ["--methods", "zoo,cem", "--out", str(tmp_path), "--report-only"]
    assert cli.main([*common, "--repeats", "2"]) == 0
    full = (tmp_path / "cartpole" / "hpo_quality.md").read_text()
    assert cli.main([*common, "--repeats", "6", "--from-repeat", "4"]) == 0
    confirmation = (tmp_path / "cartpole" / "hpo_quality_from_r4.md").read_text()
    assert "search seeds from 104 on" in confirmation
    assert (tmp_path / "cartpole" / "hpo_quality.md").read_text() == full  # untouched
    with open(tmp_path / "cartpole" / "hpo_quality_from_r4.csv", newline="") as f:
        assert {r["repeat"] for r in csv.DictReader(f)} == {"4", "5"}


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 fma avx512f avx512_fp16 amx_tile

processor\t: 1
model name\t: Another CPU
flags\t\t: fpu sse2
"""


def test_each_search_records_the_cpu_its_reevaluation_trained_on(tmp_path) -> None:
    """Re-evaluations repeat exactly on one machine, not across CPUs whose kernels differ: a
    saved search says which CPU and torch kernel level gave its rewards."""
    from bench.hpo_quality.outcome import cpu_of, host

    assert cpu_of(CPUINFO) == {
        "cpu": "Intel(R) Xeon(R) Processor",
        "features": ["avx2", "fma", "avx512f", "avx512_fp16", "amx_tile"],
    }
    assert cpu_of("") == {"cpu": "", "features": []}
    here = host()
    assert here["torch_cpu_capability"] and here["torch"].startswith("2.")
    saved = Outcome("pendulum", "zoo", 0, estimate=-160.0, reeval_rewards=[-150.0], host=here)
    (tmp_path / "s.json").write_text(json.dumps(saved.to_json()))
    assert Outcome.from_json(json.loads((tmp_path / "s.json").read_text())) == saved
    older = {k: v for k, v in saved.to_json().items() if k != "host"}  # saved before 12-06
    assert Outcome.from_json(older).host == {}


def test_a_run_stopped_while_re_evaluating_keeps_the_search_and_only_re_evaluates(
    tmp_path, monkeypatch
) -> None:
    """A search takes an hour on Pendulum: stopping the run during the re-evaluation that
    follows must not lose the search's jobs and choice, nor search again when run again."""
    searched = Outcome("cartpole", "cem", 0, trials=6, env_steps=48_000, estimate=480.0,
                       overrides={"config.rl_config.n_steps": 64},
                       jobs=[{"job": 0, "score": 480.0, "stopped_early": 0}])  # fmt: skip
    searches = []

    def search(*args, **kwargs) -> Outcome:
        searches.append(args)
        return Outcome.from_json(searched.to_json())

    def stopped(*args, **kwargs) -> None:
        raise KeyboardInterrupt  # the session ends while the chosen configuration trains

    def trained(s, outcome, seeds, *args) -> None:
        outcome.reeval_rewards += [470.0, 490.0]
        outcome.reeval_env_steps += 20_000

    monkeypatch.setattr(cli, "availability", lambda methods, env: ({"cem": ("", "")}, True))
    monkeypatch.setattr(cli, "estimate", lambda *args: 60.0)
    monkeypatch.setattr(cli, "rl_relay_search", search)
    monkeypatch.setattr(cli, "reevaluate", stopped)
    argv = ["--methods", "cem", "--repeats", "1", "--out", str(tmp_path), "--reeval-seeds", "2"]
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv)
    saved = tmp_path / "cartpole" / "searches" / "cem-r0.json"
    kept = Outcome.from_json(json.loads(saved.read_text()))
    assert kept.status == "searched" and kept.jobs == searched.jobs and not kept.reeval_rewards
    assert kept.overrides == searched.overrides and len(searches) == 1

    monkeypatch.setattr(cli, "reevaluate", trained)
    assert cli.main(argv) == 0
    done = Outcome.from_json(json.loads(saved.read_text()))
    assert len(searches) == 1  # not searched again
    assert done.status == "ok" and done.reeval_rewards == [470.0, 490.0]
    assert (done.jobs, done.env_steps, done.reeval_env_steps) == (searched.jobs, 48_000, 20_000)
    assert cli.main(argv) == 0 and len(searches) == 1  # done: neither searched nor re-evaluated


def test_a_failed_re_evaluation_is_re_evaluated_again_and_a_failed_search_searched_again(
    tmp_path, monkeypatch
) -> None:
    """A re-evaluation that failed (a training crashed, the disk filled) is done again on the
    next run from the saved search; a search that failed is searched again."""
    found = Outcome("cartpole", "cem", 0, trials=6, env_steps=48_000, estimate=480.0,
                    overrides={"config.rl_config.n_steps": 64})  # fmt: skip
    searches, reevaluations = [], []
    search_fails = [True]

    def search(*args, **kwargs) -> Outcome:
        searches.append(args)
        if search_fails[0]:
            return Outcome("cartpole", "cem", 0, status="failed", detail="exit 1: boom")
        return Outcome.from_json(found.to_json())

    def reevaluated(s, outcome, seeds, *args) -> None:
        reevaluations.append(outcome.overrides)
        outcome.reeval_rewards += [470.0]
        if len(reevaluations) == 1:
            outcome.status, outcome.detail = "failed", "re-evaluation: reeval1 exit 1"

    monkeypatch.setattr(cli, "availability", lambda methods, env: ({"cem": ("", "")}, True))
    monkeypatch.setattr(cli, "estimate", lambda *args: 60.0)
    monkeypatch.setattr(cli, "rl_relay_search", search)
    monkeypatch.setattr(cli, "reevaluate", reevaluated)
    argv = ["--methods", "cem", "--repeats", "1", "--out", str(tmp_path), "--reeval-seeds", "2"]
    saved = tmp_path / "cartpole" / "searches" / "cem-r0.json"
    assert cli.main(argv) == 1
    failed = Outcome.from_json(json.loads(saved.read_text()))
    assert (failed.status, failed.failed_in, len(searches), reevaluations) == (
        "failed",
        "search",
        1,
        [],
    )
    search_fails[0] = False
    assert cli.main(argv) == 1  # searched again; its re-evaluation fails
    failed = Outcome.from_json(json.loads(saved.read_text()))
    assert (failed.status, failed.failed_in, len(searches)) == ("failed", "re-evaluation", 2)
    assert failed.overrides == found.overrides and failed.env_steps == 48_000
    assert cli.main(argv) == 0  # only re-evaluated, from the kept search
    done = Outcome.from_json(json.loads(saved.read_text()))
    assert len(searches) == 2 and reevaluations == [found.overrides] * 2
    assert (done.status, done.detail, done.failed_in) == ("ok", "", "")
    assert done.reeval_rewards == [470.0] and done.env_steps == 48_000
