#!/usr/bin/env python3
"""How an HPO's driver, report and re-evaluation scale with the number of jobs.

Runs ``rl-relay hpo --local`` (cluster_utils' CEM, ``--per-iteration`` jobs per optimiser
iteration, 2 at a time on 2 cores) with a trivial learner (the tests' stand-in: the real
job script ``wrappers/run_learning.py``, whose learning command counts to 1 and writes a
reward; no training) at each of ``--sizes`` jobs (working directories kept; cluster_utils'
default, ``--remove-working-dirs``, removes them after each iteration), then ``rl-relay
report`` and ``rl-relay reevaluate --dry-run`` (the selection, everything before jobs are
submitted) on its results, and prints per size:

- the driver's wall time per job, and its own CPU time per job (the jobs' CPU excluded:
  what grows if the driver does more per job as the search grows; want flat), beside the
  jobs' CPU time per job (on 2 cores the wall time per job cannot be below half of it);
- the driver's peak resident memory (want at most 500 MB);
- ``rl-relay report``'s and the re-evaluation's selection wall time (want the report
  within 10 s at 1,000 jobs);
- the sizes of ``status.pickle``, ``all_data.csv`` and a job's ``restarts.json``.

The table is Markdown (docs/scale.md quotes it); ``--out DIR`` also draws the curves into
``DIR/scale.png``; ``--profile DIR`` writes a cProfile of the driver at each size
(``DIR/driver_<n>.prof``). Run from the repo root:
``python bench/scale.py [--sizes 50 200 1000] [--out docs]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from stand_in_hpo import local_settings, stand_in_fixed  # noqa: E402

from rl_relay.layout import ResultsPaths  # noqa: E402

#: Runs the driver in-process and records its own CPU time and peak memory at exit
#: (resource's RUSAGE_SELF: the driver alone, not the jobs it starts).
DRIVER = """
import atexit, cProfile, json, resource, sys
record, profile = sys.argv[1], sys.argv[2]
sys.argv = ["rl-relay", *sys.argv[3:]]
profiler = cProfile.Profile() if profile else None

def save():
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(record, "w") as f:
        json.dump({"cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss}, f)

atexit.register(save)
from rl_relay.cli import main
if profiler is not None:
    profiler.enable()
sys.exit(main())
"""


@dataclass
class Figures:
    jobs: int
    driver_wall: float
    driver_cpu: float
    driver_rss_mb: float
    #: CPU time of the jobs (job script, learner, shell), all processes the driver waited for
    jobs_cpu: float
    report_wall: float
    reevaluate_wall: float
    status_pickle_kb: float
    all_data_kb: float
    restarts_kb: float
    load: float

    @property
    def wall_per_job(self) -> float:
        return self.driver_wall / self.jobs

    @property
    def cpu_per_job(self) -> float:
        return self.driver_cpu / self.jobs


def write_settings(tmp: Path, jobs: int, per_iteration: int, remove_working_dirs: bool) -> Path:
    """The tests' stand-in HPO (tests/stand_in_hpo.py) at this scale."""
    fixed = stand_in_fixed(
        tmp, {"ticks": 1}, learning_runs_per_job=1, max_attempts=1, training_iterations=1
    )
    return local_settings(
        tmp,
        fixed,
        samples=jobs,
        optimization_procedure_name="scale",
        remove_jobs_dir=True,
        remove_working_dirs=remove_working_dirs,
        cluster_requirements={"max_cpus": 2},
        optimizer_settings={"num_jobs_in_elite": 5},
        optimization_setting={"n_jobs_per_iteration": per_iteration},
        num_best_jobs_whose_data_is_kept=3,
    )


def environment(tmp: Path) -> dict[str, str]:
    cache = tmp / "cu_cache"
    cache.mkdir(exist_ok=True)
    return dict(os.environ, PYTHONPATH=str(REPO / "src"), CLUSTER_UTILS_CACHE_DIR=str(cache))


def timed(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    """Wall time of ``argv`` run to its end (output into ``log``); fails loudly."""
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.run(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{argv[2:5]} exited {proc.returncode}; its output ends:\n{tail}")
    return seconds


def children_cpu() -> float:
    """CPU seconds of every process this one waited for, their descendants included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def kib(path: Path) -> float:
    return path.stat().st_size / 1024 if path.exists() else 0.0


def measure(
    jobs: int,
    per_iteration: int,
    profile_dir: Path | None,
    keep: Path | None,
    remove_working_dirs: bool = False,
) -> Figures:
    with tempfile.TemporaryDirectory(prefix=f"rl-relay-scale-{jobs}-") as name:
        tmp = keep / str(jobs) if keep else Path(name)
        tmp.mkdir(parents=True, exist_ok=not keep)
        env = environment(tmp)
        settings = write_settings(tmp, jobs, per_iteration, remove_working_dirs)
        record = tmp / "driver.json"
        profile = str(profile_dir / f"driver_{jobs}.prof") if profile_dir else ""
        load = os.getloadavg()[0]
        driver = [sys.executable, "-c", DRIVER, str(record), profile]
        before = children_cpu()
        wall = timed([*driver, "hpo", "--local", str(settings)], env, REPO, tmp / "hpo.log")
        usage = json.loads(record.read_text())
        jobs_cpu = children_cpu() - before - usage["cpu"]
        results = ResultsPaths(tmp / "results" / "scale")
        cli = [sys.executable, "-m", "rl_relay.cli"]
        report = timed([*cli, "report", str(results.root)], env, REPO, tmp / "report.log")
        reevaluate = timed(
            [*cli, "reevaluate", str(results.root), "--dry-run"], env, REPO, tmp / "reeval.log"
        )
        restarts = [
            kib(p)
            for parent in (results.working_dirs, results.best_jobs)
            for p in parent.glob("*/restarts.json")
        ]
        return Figures(
            jobs=jobs,
            driver_wall=wall,
            driver_cpu=usage["cpu"],
            driver_rss_mb=usage["maxrss_kb"] / 1024,
            jobs_cpu=jobs_cpu,
            report_wall=report,
            reevaluate_wall=reevaluate,
            status_pickle_kb=kib(results.status_pickle),
            all_data_kb=kib(results.all_data),
            restarts_kb=statistics.median(restarts) if restarts else 0.0,
            load=(load + os.getloadavg()[0]) / 2,
        )


HEADER = (
    "| jobs | driver wall per job | driver CPU per job | jobs' CPU per job | driver peak RSS"
    " | report | reevaluate selection | status.pickle | all_data.csv | restarts.json (a job)"
    " | load |"
)


def row(f: Figures) -> str:
    return (
        f"| {f.jobs} | {f.wall_per_job:.2f} s | {1000 * f.cpu_per_job:.0f} ms"
        f" | {f.jobs_cpu / f.jobs:.2f} s | {f.driver_rss_mb:.0f} MB"
        f" | {f.report_wall:.1f} s | {f.reevaluate_wall:.1f} s"
        f" | {f.status_pickle_kb:.0f} kB | {f.all_data_kb:.0f} kB | {f.restarts_kb:.1f} kB"
        f" | {f.load:.1f} |"
    )


def plot(figures: list[Figures], path: Path, before: list[Figures] | None = None) -> None:
    """The curves of ``figures``, and dashed those of an earlier run (``before``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    runs = [(figures, "-", "")] + ([(before, "--", " (before)")] if before else [])
    curves: list[tuple[int, str, str, str, Any]] = [
        (0, "o", "driver wall per job", "tab:blue", lambda f: f.wall_per_job),
        (0, "^", "jobs' CPU per job / 2 cores", "tab:green", lambda f: f.jobs_cpu / f.jobs / 2),
        (1, "s", "driver CPU per job", "tab:red", lambda f: 1000 * f.cpu_per_job),
        (2, "o", "driver peak RSS", "tab:blue", lambda f: f.driver_rss_mb),
        (3, "o", "rl-relay report", "tab:blue", lambda f: f.report_wall),
        (3, "s", "reevaluate selection", "tab:red", lambda f: f.reevaluate_wall),
    ]
    for run, style, suffix in runs:
        n = [f.jobs for f in run]
        for panel, marker, label, color, value in curves:
            ys = [value(f) for f in run]
            axes[panel].plot(n, ys, marker + style, color=color, label=label + suffix)
    axes[0].axhline(0.5, color="grey", ls=":", label="target 0.5 s/job")
    axes[0].set_ylabel("seconds per job")
    axes[1].set_ylabel("ms per job (the driver's own CPU time)")
    axes[2].axhline(500, color="grey", ls=":", label="target 500 MB")
    axes[2].set_ylabel("MB")
    axes[3].axhline(10, color="grey", ls=":", label="target 10 s (report)")
    axes[3].set_ylabel("seconds")
    for ax in axes:
        ax.set_xlabel("jobs in the search")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--per-iteration", type=int, default=20, help="n_jobs_per_iteration")
    parser.add_argument("--out", type=Path, help="draw the curves into DIR/scale.png")
    parser.add_argument("--save", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--before", type=Path, help="a --save of an earlier run: its curves dashed in the PNG"
    )
    parser.add_argument("--replot", type=Path, help="measure nothing: plot this --save")
    parser.add_argument("--profile", type=Path, help="write cProfiles of the driver here")
    parser.add_argument("--keep", type=Path, help="run in (and keep) DIR/<jobs>/")
    parser.add_argument(
        "--remove-working-dirs",
        action="store_true",
        help="cluster_utils' default: working directories removed after each iteration (the"
        " best jobs' kept in best_jobs/)",
    )
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    started = datetime.date.today().isoformat()
    figures = []
    if args.replot:
        figures = [Figures(**item) for item in json.loads(args.replot.read_text())]
        args.sizes = []
    print(HEADER)
    print("|" + "---|" * (HEADER.count(" | ") + 1))
    for row_figures in figures:
        print(row(row_figures))
    for jobs in args.sizes:
        figures.append(
            measure(jobs, args.per_iteration, args.profile, args.keep, args.remove_working_dirs)
        )
        print(row(figures[-1]), flush=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"(CPU time of everything run: {usage.ru_utime + usage.ru_stime:.0f} s)")
    print(f"({started}, {os.cpu_count()} cores; load: the load average during each size)")
    if args.save:
        args.save.write_text(json.dumps([dataclasses.asdict(f) for f in figures], indent=1))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        before = None
        if args.before:
            before = [Figures(**item) for item in json.loads(args.before.read_text())]
        plot(figures, args.out / "scale.png", before)
        print(f"wrote {args.out / 'scale.png'}")


if __name__ == "__main__":
    main()
