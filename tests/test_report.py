"""``rl-relay report`` on the results of a real local cluster_utils HPO, finished and running."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import hp_optimization, stand_in_settings
from hypothesis import given
from hypothesis import strategies as st

from rl_relay.cli import main
from rl_relay.hpo.continuation import job_dirs, kept_best_job_ids
from rl_relay.job.params import DEFAULTS as JOB_DEFAULTS
from rl_relay.layout import numbered_dirs, parse_job_number
from rl_relay.report.load import load_results, read_curve
from rl_relay.report.model import JobInfo, Results, RunInfo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def hpo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished HPO: 4 jobs x 2 runs x 2 chained iterations; run 0 fails once in every job."""
    tmp = tmp_path_factory.mktemp("hpo")
    settings = stand_in_settings(
        tmp,
        {"fail_dirs": ["run_0.1-0"]},
        learning_runs_per_job=2,
        training_iterations=2,
        max_attempts=2,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLUSTER_UTILS_CACHE_DIR", str(tmp / "cu_cache"))
        proc = hp_optimization(settings)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = tmp / "results" / "local_test"
    # cluster_utils may start a job more than number_of_samples on a busy machine; what it
    # promises is number_of_samples results. Keep the jobs that sent results.
    reported = {r["_id"] for r in all_data(results)}
    assert len(reported) >= 4
    for wd in (results / "working_directories").iterdir():
        if wd.name not in reported:
            shutil.rmtree(wd)
    yield results


def copy_results(hpo: Path, tmp_path: Path) -> Path:
    """A copy elsewhere: the report must not need the absolute paths the HPO recorded."""
    target = tmp_path / "moved" / hpo.name
    shutil.copytree(hpo, target)
    return target


def all_data(results: Path) -> list[dict[str, str]]:
    with open(results / "all_data.csv", newline="") as f:
        return list(csv.DictReader(f))


def report(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["report", *args])
    return code, capsys.readouterr().out


def text_of(page: str) -> str:
    """The page as a person reads it: tags and entities gone, cells separated by spaces."""
    import html

    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    return re.sub(r" ([,.;:])", r"\1", text)


def assert_valid_pngs(page: Path) -> list[str]:
    from PIL import Image

    names = re.findall(r'<img src="([^"]+)"', page.read_text())
    assert names
    for name in names:
        path = page.parent / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        with Image.open(path) as image:
            image.verify()
            assert image.size[0] > 100 and image.size[1] > 100
    return names


@pytest.mark.slow  # shares one ~7 s local HPO
def test_report_counts_runs_done_after_the_working_directories_were_removed(
    hpo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # remove_working_dirs deletes finished jobs' directories, and with them restarts.json:
    # the runs each job finished are then the learning_runs it reported
    results = copy_results(hpo, tmp_path)
    data = results / "all_data.csv"  # the paths it recorded: the copy's, which are removed
    data.write_text(data.read_text().replace(str(hpo), str(results)))
    shutil.rmtree(results / "working_directories")  # best_jobs/ keeps the best job's copy
    code, _ = report(str(results), capsys=capsys)
    text = text_of((results / "report" / "index.html").read_text())
    assert code == 0
    jobs = len(all_data(results))
    assert text.count(" 2/2 ") == jobs and " 0/2 " not in text


def test_a_job_without_its_directory_planned_the_default_runs_its_settings_leave_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # all_data.csv holds the parameters a job was given; what a user left out of the
    # settings the job took from its defaults, and so does the report once restarts.json is gone
    results = tmp_path / "proc"
    results.mkdir()
    (results / "all_data.csv").write_text(
        "_id,mean_eprewmean,std_eprewmean,learning_runs,iterations_done,env_steps,"
        "stopped_early,config.rl_config.learning_rate,training_iterations\n"
        "0,10.0,1.0,3,6,6000,0,0.001,2\n1,12.0,1.0,1,1,1000,1,0.002,2\n"
    )
    jobs = load_results(results).jobs
    runs = JOB_DEFAULTS["learning_runs_per_job"]
    assert runs != 1  # else a job read as 1 x 1 could not tell the default from a guess
    assert [(j.planned_runs, j.planned_iterations) for j in jobs] == [(runs, 2), (runs, 2)]
    assert jobs[1].iterations_planned == runs * 2
    code, _ = report(str(results), capsys=capsys)
    text = text_of((results / "report" / "index.html").read_text())
    assert code == 0 and f" 3/{runs} " in text and f" 1/{runs} " in text


@pytest.mark.slow  # shares one ~7 s local HPO
def test_report_of_a_finished_hpo(
    hpo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = copy_results(hpo, tmp_path)
    code, out = report(str(results), capsys=capsys)
    page = results / "report" / "index.html"
    assert code == 0
    assert str(page) in out  # the CLI says where the report is
    html_text = page.read_text()
    text = text_of(html_text)

    rows = all_data(results)
    best = max(rows, key=lambda r: float(r["mean_eprewmean"]))
    mean, std = float(best["mean_eprewmean"]), float(best["std_eprewmean"])
    assert f"Best: job {best['_id']}, mean_eprewmean = {mean:.4g} ± {std:.4g}" in text
    lr = float(best["config.rl_config.learning_rate"])
    assert f"config.rl_config.learning_rate = {lr}" in text
    arch = best["config.rl_config.policy_kwargs.net_arch:1"]
    assert f"config.rl_config.policy_kwargs.net_arch:1 = {arch}" in text
    jobs = len(rows)
    assert f"Jobs: {jobs} — {jobs} with results" in text
    sizes = sorted(
        sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        for d in (results / "working_directories").iterdir()
    )
    assert f"Disk: {sum(sizes) / 1e6:,.1f} MB in the jobs' working directories" in text
    # run 0 failed once in every job (iteration 1 of attempt 0), nothing was preempted
    assert f"{jobs} failed attempts and 0 preemption resumes in {jobs} jobs" in text
    assert text.count("exited with code 2") == jobs
    assert text.count(" 2/2 ") == jobs  # runs done of learning_runs_per_job, every job
    names = assert_valid_pngs(page)
    assert {"objective_vs_hyperparameters.png", "learning_curves.png"} <= set(names)
    assert "failures_and_resumes.png" in names
    # every link stays inside the moved copy
    assert str(hpo) not in html_text
    for href in re.findall(r'<a href="([^"]+)"', html_text):
        assert (page.parent / href).exists(), href
    if len({r["mean_eprewmean"] for r in rows}) == jobs:  # no two jobs share a value
        assert "share this best value" not in text


@given(st.text())
def test_only_ascii_digits_name_a_job(name: str) -> None:
    number = parse_job_number(name)
    assert number is None or str(number) == name.lstrip("0").rjust(1, "0")
    if not name.isascii():
        assert number is None


def test_numbered_dirs_are_the_job_directories_and_nothing_else(tmp_path: Path) -> None:
    assert list(numbered_dirs(tmp_path / "missing")) == []
    for name in ("3", "10", "007", "²", "notes", "directories_4", "directories_x"):
        (tmp_path / name).mkdir()
    (tmp_path / "5").write_text("a file named like a job is not one")
    found = sorted(numbered_dirs(tmp_path))
    assert found == [(3, tmp_path / "3"), (7, tmp_path / "007"), (10, tmp_path / "10")]
    assert list(numbered_dirs(tmp_path, "directories_")) == [(4, tmp_path / "directories_4")]


@pytest.mark.slow  # shares one ~7 s local HPO
def test_directories_a_user_left_beside_the_jobs_are_not_jobs(
    hpo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names that look like numbers to ``str.isdigit`` but not to ``int`` ("²"), and others."""
    results = copy_results(hpo, tmp_path)
    jobs = {int(r["_id"]) for r in all_data(results)}
    for name in ("²", "1_0", "٣x", "notes", " 7"):
        (results / "working_directories" / name).mkdir()
    (results / "best_jobs").mkdir(exist_ok=True)
    (results / "best_jobs" / "directories_²").mkdir()
    assert set(job_dirs(results)) == jobs
    assert kept_best_job_ids(results) <= jobs
    code, out = report(str(results), capsys=capsys)
    assert code == 0
    text = text_of((results / "report" / "index.html").read_text())
    assert f"Jobs: {len(jobs)} — {len(jobs)} with results" in text


@pytest.mark.slow  # shares one ~7 s local HPO
def test_the_report_says_when_jobs_share_the_best_value(
    hpo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reward's ceiling (CartPole's 500) gives several jobs the best value; which one the
    table lists first is then arbitrary, and the report says how to tell them apart."""
    results = copy_results(hpo, tmp_path)
    rows = sorted(all_data(results), key=lambda r: float(r["mean_eprewmean"]))
    ceiling = float(rows[-1]["mean_eprewmean"]) + 100.0
    for row in rows[:2]:  # the two worst jobs reach the ceiling now
        metrics = results / "working_directories" / row["_id"] / "metrics.csv"
        with open(metrics, newline="") as f:
            [values] = list(csv.DictReader(f))
        values["mean_eprewmean"] = str(ceiling)
        with open(metrics, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(values))
            writer.writeheader()
            writer.writerow(values)
    code, _ = report(str(results), capsys=capsys)
    assert code == 0
    text = text_of((results / "report" / "index.html").read_text())
    ids = ", ".join(sorted((r["_id"] for r in rows[:2]), key=int))
    assert f"2 jobs share this best value (jobs {ids})" in text
    assert f"rl-relay reevaluate {results} --top 2" in text


@pytest.mark.slow  # shares one ~7 s local HPO
def test_learning_curves_follow_the_successful_attempt_over_all_iterations(
    hpo: Path, tmp_path: Path
) -> None:
    results = copy_results(hpo, tmp_path)
    loaded = load_results(results)
    job = loaded.finished()[0]
    run0 = job.runs[0]
    assert (run0.attempt, len(run0.failures), run0.done) == (1, 1, True)
    curve = read_curve(job, run0)
    assert curve is not None
    # the stand-in writes 3 rows per iteration with a reward in row 1; 2 iterations of attempt 1
    assert curve.x == [1.0, 4.0] and curve.boundaries == [3.0]
    assert curve.y[-1] == run0.reward


def write_progress(run_dir: Path, rows: list[tuple[object, object]]) -> None:
    (run_dir / "logs").mkdir(parents=True)
    lines = ["time/total_timesteps,rollout/ep_rew_mean,time/fps"]
    lines += [f"{steps},{reward},100" for steps, reward in rows]
    (run_dir / "logs" / "progress.csv").write_text("\n".join(lines) + "\n")


def test_curve_uses_timesteps_and_skips_failed_attempts(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    write_progress(wd / "run_0.0-0", [(100, 999.0), (200, 999.0)])  # failed attempt
    write_progress(wd / "run_0.0-1", [(100, ""), (200, 1.0), (300, 2.0)])
    write_progress(wd / "run_0.1-1", [(400, 3.0), (500, "nan"), (600, 4.0)])
    job = JobInfo(job_id=0, working_dir=wd)
    curve = read_curve(job, RunInfo(run=0, attempt=1, iteration=1, done=True, reward=4.0))
    assert curve is not None
    assert curve.x_label == "time/total_timesteps"
    assert (curve.x, curve.y, curve.boundaries) == ([200, 300, 400, 600], [1, 2, 3, 4], [300])


def make_running(results: Path) -> dict[str, int]:
    """Turn a finished HPO into the picture of one still running; return the job ids used."""
    ids = sorted(int(p.name) for p in (results / "working_directories").iterdir())
    rows = {int(r["_id"]): r for r in all_data(results)}
    best = max(ids, key=lambda i: float(rows[i]["mean_eprewmean"]))
    others = [i for i in ids if i != best]
    running, gave_up, half_written = others[0], others[1], others[2]
    # first optimisation iteration not finished: no CSVs of the server yet
    for name in ("all_data.csv", "reduced_data.csv"):
        (results / name).unlink()
    shutil.rmtree(results / "best_jobs")
    # a job in its second run, preempted twice so far
    wd = results / "working_directories" / str(running)
    (wd / "metrics.csv").unlink()
    state = json.loads((wd / "restarts.json").read_text())
    second = state["runs"][1]
    second.update(done=False, reward=None, reward_source="", iteration=1, resumes=2)
    shutil.rmtree(wd / "run_1.1-0" / "logs")
    (wd / "restarts.json").write_text(json.dumps(state))
    # a job whose second run used up its attempts
    wd = results / "working_directories" / str(gave_up)
    (wd / "metrics.csv").unlink()
    state = json.loads((wd / "restarts.json").read_text())
    state["runs"][1].update(done=False, reward=None, reward_source="")
    state["runs"][1]["failures"] = [
        {
            "attempt": a,
            "iteration": 0,
            "seed": 1,
            "reason": "exited with code 1",
            "run_dir": f"/gone/working_directories/{gave_up}/run_1.0-{a}",
        }
        for a in range(state["plan"]["max_attempts"])
    ]
    (wd / "restarts.json").write_text(json.dumps(state))
    with open(results / "cluster_run.log", "a") as log:  # as cluster_utils 3.0 logs it
        log.write(
            f"2026-01-01 00:00:00,000 - cluster_utils - WARNING - Job {gave_up} died with error"
            " ['learning run 1 failed 2 time(s)\\n  attempt 0: exited with code 1'].\n"
        )
    # metrics.csv caught while being written
    wd = results / "working_directories" / str(half_written)
    (wd / "metrics.csv").write_text("mean_eprewmean,std_eprewmean\n")
    # a job that has just started: settings.json only
    fresh = results / "working_directories" / "17"
    fresh.mkdir()
    shutil.copy(results / "working_directories" / str(best) / "settings.json", fresh)
    return {"best": best, "running": running, "gave_up": gave_up, "half": half_written}


@pytest.mark.slow  # shares one ~7 s local HPO
def test_report_of_a_running_hpo(
    hpo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = copy_results(hpo, tmp_path)
    best_row = max(all_data(results), key=lambda r: float(r["mean_eprewmean"]))
    ids = make_running(results)
    out = tmp_path / "elsewhere"
    code, printed = report(str(results.parent), "--out", str(out), capsys=capsys)
    assert code == 0 and str(out / "index.html") in printed
    text = text_of((out / "index.html").read_text())
    assert "all_data.csv is missing or holds no job yet" in text
    mean = float(best_row["mean_eprewmean"])
    assert f"Best: job {ids['best']}, mean_eprewmean = {mean:.4g}" in text
    # results: the best job and any beyond the four that make_running uses;
    # running: the preempted, half-written and fresh ones
    jobs = len(all_data(hpo))
    assert f"Jobs: {jobs + 1} — {jobs - 3} with results, 3 running or waiting, 1 failed" in text
    assert f"{ids['running']} running (run 1, iteration 1, attempt 0)" in text
    assert "preemption resumes" in text and " 2 preemption resumes" in text
    assert "learning run 1 failed 2 time(s) attempt 0: exited with code 1" in text
    assert_valid_pngs(out / "index.html")
    # hyperparameters come from the jobs' settings.json when reduced_data.csv is missing
    assert "rl_config.learning_rate" in text


@pytest.mark.slow  # shares one ~7 s local HPO
def test_truncated_all_data_is_read_up_to_the_cut(
    hpo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = copy_results(hpo, tmp_path)
    *complete, last = (results / "all_data.csv").read_text().splitlines()
    (results / "all_data.csv").write_text("\n".join(complete) + "\n" + last[: len(last) // 3])
    for metrics in (results / "working_directories").glob("*/metrics.csv"):
        metrics.unlink()
    code, _ = report(str(results), capsys=capsys)
    assert code == 0
    text = text_of((results / "report" / "index.html").read_text())
    assert f"{len(all_data(hpo)) - 1} with results" in text


def test_not_a_results_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    code, _ = report(str(tmp_path), capsys=capsys)
    assert code == 1
    assert "holds no cluster_utils results" in caplog.text


def test_report_module_imports_no_plotting_until_it_writes() -> None:
    code = (
        "import sys, rl_relay.report.command;"
        " print('matplotlib' in sys.modules, 'pandas' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    assert proc.stdout.strip() == "False False", proc.stderr


def test_env_steps_saved_by_stopping_are_counted_over_all_planned_runs() -> None:
    from rl_relay.report.stopping_section import env_steps_used

    def job(job_id: int, **metrics: float) -> JobInfo:
        return JobInfo(job_id, None, metrics=metrics, planned_iterations=4)

    stopped = job(1, env_steps=2_000.0, iterations_done=2.0, learning_runs=2.0)  # 1 of 4 each
    finished = job(2, env_steps=8_000.0, iterations_done=8.0, learning_runs=2.0)
    results = Results(Path("."), "reward", False, [], [stopped, finished])
    assert env_steps_used(results) == (10_000, 16_000)
    # a job whose run count all_data.csv left empty (NaN): the full plan is unknown, no crash
    unknown = job(3, env_steps=1_000.0, iterations_done=1.0, learning_runs=math.nan)
    assert unknown.iterations_planned is None
    with_unknown = Results(Path("."), "reward", False, [], [stopped, finished, unknown])
    assert env_steps_used(with_unknown) == (11_000, None)
