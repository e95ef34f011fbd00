"""Read one optimisation procedure, finished or still running, into the report's model.

The job working directories (``settings.json``, ``metrics.csv``, ``restarts.json``) are read
whether or not the CSV files mention them. Paths stored in ``all_data.csv`` and
``restarts.json`` are absolute; they are used only for their last component, resolved
inside the directory that was given, so a moved or copied results directory still reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from rl_relay.job.params import DEFAULTS as JOB_DEFAULTS
from rl_relay.job.state import FIXED_PLAN
from rl_relay.layout import (
    ALL_DATA,
    BEST_JOB_PREFIX,
    BEST_JOBS,
    JOB_METRICS,
    JOB_SETTINGS,
    METADATA,
    REDUCED_DATA,
    STATE_FILE,
    WORKING_DIRS,
    JobPaths,
    numbered_dirs,
)
from rl_relay.metrics import DEFAULT_METRIC, REPORTED, STD_SUFFIX, TIMESTEPS_COLUMN
from rl_relay.paramtree import flatten
from rl_relay.report.files import (
    number,
    read_csv_rows,
    read_json,
    read_metrics,
    scalar,
    server_events,
)
from rl_relay.report.model import (
    DONE,
    FAILED,
    RUNNING,
    Curve,
    FailureInfo,
    JobInfo,
    NoResultsError,
    Results,
    RunInfo,
)

logger = logging.getLogger("rl_relay.report.command")

RESTARTS_COLUMN = "job_restarts"
#: Columns of all_data.csv that are not hyperparameters.
NOT_HYPERPARAMETERS = {"_id", "_iteration", "id", "working_dir", RESTARTS_COLUMN, ""}


def _is_procedure_dir(path: Path) -> bool:
    return any((path / name).exists() for name in (ALL_DATA, WORKING_DIRS, BEST_JOBS))


def find_procedure_dir(path: Path) -> Path:
    """The ``results_dir/<optimization_procedure_name>`` directory meant by ``path``.

    Accepts that directory or the ``results_dir`` above it when it holds exactly one
    procedure, because both are what a user thinks of as "the results".
    """
    if not path.is_dir():
        raise NoResultsError(f"{path} is not a directory")
    if _is_procedure_dir(path):
        return path
    candidates = sorted(p for p in path.iterdir() if p.is_dir() and _is_procedure_dir(p))
    if len(candidates) == 1:
        logger.info("reading the optimisation procedure in %s", candidates[0])
        return candidates[0]
    if candidates:
        names = ", ".join(str(c) for c in candidates)
        raise NoResultsError(f"{path} holds several optimisation procedures; pick one of: {names}")
    raise NoResultsError(
        f"{path} holds no cluster_utils results (no {ALL_DATA}, {WORKING_DIRS}/ or"
        f" {BEST_JOBS}/); give results_dir/<optimization_procedure_name>"
    )


def _job_dirs(procedure: Path) -> dict[int, list[Path]]:
    """Candidate working directories per job id, in order of preference."""
    found: dict[int, list[Path]] = {}
    places = ((procedure / WORKING_DIRS, ""), (procedure / BEST_JOBS, BEST_JOB_PREFIX))
    for parent, prefix in places:
        for job_id, child in numbered_dirs(parent, prefix):
            found.setdefault(job_id, []).append(child)
    return found


def _pick_dir(candidates: Iterable[Path]) -> Path | None:
    """The candidate that knows most: with metrics, else with a state, else any existing."""
    existing = [c for c in candidates if c.is_dir()]
    for wanted in (JOB_METRICS, STATE_FILE, JOB_SETTINGS):
        for c in existing:
            if (c / wanted).exists():
                return c
    return existing[0] if existing else None


def disk_bytes(directory: Path) -> int:
    """Bytes of the files under ``directory`` (0 when it is gone)."""
    total = 0
    for path in directory.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:  # removed while we looked
            continue
    return total


def _read_state(job: JobInfo) -> None:
    """Fill ``job.runs`` from restarts.json, or from the run directories without one."""
    wd = job.working_dir
    if wd is None:
        return
    job.disk_bytes = disk_bytes(wd)
    data = read_json(JobPaths(wd).state)
    if isinstance(data, dict) and isinstance(data.get("runs"), list):
        plan = data.get("plan") or {}
        job.planned_runs = plan.get("runs")
        job.planned_iterations = plan.get("iterations")
        job.max_attempts = plan.get("max_attempts")
        for raw in data["runs"]:
            try:
                failures = [
                    FailureInfo(
                        run=int(raw["run"]),
                        attempt=int(f["attempt"]),
                        iteration=int(f["iteration"]),
                        reason=str(f["reason"]),
                        # absolute when written; resolve here in case the dir was moved
                        run_dir=wd / Path(str(f["run_dir"])).name,
                    )
                    for f in raw.get("failures", [])
                ]
                job.runs.append(
                    RunInfo(
                        run=int(raw["run"]),
                        attempt=len(raw["seeds"]) - 1,
                        iteration=int(raw.get("iteration", 0)),
                        done=bool(raw.get("done")),
                        reward=number(raw.get("reward")),
                        resumes=int(raw.get("resumes", 0)),
                        failures=failures,
                    )
                )
            except (KeyError, TypeError, ValueError) as err:
                logger.warning("%s: skipping a run it cannot read (%s)", wd / STATE_FILE, err)
        return
    # No state yet (first step still running) or an rl-relay-less job: the directories.
    latest: dict[int, tuple[int, int]] = {}
    for (run, iteration, attempt), _ in JobPaths(wd).step_dirs():
        latest[run] = max(latest.get(run, (-1, -1)), (attempt, iteration))
    for run, (attempt, iteration) in sorted(latest.items()):
        job.runs.append(RunInfo(run, attempt, iteration, done=False, reward=None))


def _status(job: JobInfo, metric: str) -> str:
    if job.value(metric) is not None:
        return DONE
    if job.server_errors:
        return FAILED
    if job.max_attempts is not None:
        for run in job.runs:
            if not run.done and len(run.failures) >= job.max_attempts:
                return FAILED
    return RUNNING


def _infer_minimize(rows: list[dict[str, str]], metric: str) -> bool:
    """cluster_utils sorts all_data.csv best first: ascending values mean "minimize"."""
    values = [v for v in (number(r.get(metric)) for r in rows) if v is not None]
    pairs = list(zip(values, values[1:], strict=False))
    ascending = all(a <= b for a, b in pairs)
    descending = all(a >= b for a, b in pairs)
    return ascending and not descending


def load_results(path: Path, metric: str = DEFAULT_METRIC, minimize: bool | None = None) -> Results:
    """Read one optimisation procedure, finished or still running.

    ``minimize`` None infers the direction from the order of all_data.csv (maximise when
    it cannot tell: rl-relay's metric is a reward).
    """
    procedure = find_procedure_dir(path)
    notes: list[str] = []

    header, raw_rows = read_csv_rows(procedure / ALL_DATA)
    rows = [dict(zip(header, r, strict=True)) for r in raw_rows]
    if not any(header):  # cluster_utils writes a lone "" when no job sent results
        header = []
        notes.append(
            f"{ALL_DATA} is missing or holds no job yet (the first optimisation iteration has"
            " not finished, or no job sent results): everything below comes from the job"
            " working directories."
        )
    elif metric not in header:
        notes.append(f"{ALL_DATA} has no column {metric!r}; its columns: {', '.join(header)}")

    by_id: dict[int, dict[str, str]] = {}
    for row in rows:
        job_id = number(row.get("_id"))
        if job_id is not None:
            by_id[int(job_id)] = row

    dirs = _job_dirs(procedure)
    errors, resumed = server_events(procedure)
    jobs: list[JobInfo] = []
    for job_id in sorted(set(by_id) | set(dirs)):
        row = by_id.get(job_id, {})
        candidates = list(dirs.get(job_id, []))
        if row.get("working_dir"):
            candidates.append(Path(row["working_dir"]))
        job = JobInfo(job_id=job_id, working_dir=_pick_dir(candidates))
        if job.working_dir is not None:
            settings = read_json(job.working_dir / JOB_SETTINGS)
            if isinstance(settings, dict):
                job.settings = dict(flatten(settings))
            job.metrics = read_metrics(job.working_dir / JOB_METRICS)
            _read_state(job)
        if not job.settings and row:
            job.settings = {k: scalar(v) for k, v in row.items() if k not in (metric, *REPORTED)}
        _plan_from_settings(job)
        if metric not in job.metrics and row:
            for name in (metric, *REPORTED):
                value = number(row.get(name))
                if value is not None:
                    job.metrics[name] = value
        job.server_errors = errors.get(job_id, [])
        job.exits_for_resume = resumed.get(job_id, 0)
        job.status = _status(job, metric)
        jobs.append(job)

    if minimize is None:
        minimize = _infer_minimize(rows, metric)
    hyperparameters = _hyperparameters(procedure, metric, jobs)
    metadata = read_json(procedure / METADATA)
    start = metadata.get("start_time", "") if isinstance(metadata, dict) else ""
    logger.info(
        "read %d jobs from %s (%d with results)",
        len(jobs),
        procedure,
        sum(j.status == DONE for j in jobs),
    )
    return Results(procedure, metric, minimize, hyperparameters, jobs, str(start), notes)


def _plan_from_settings(job: JobInfo) -> None:
    """Without restarts.json (``remove_working_dirs`` deleted the finished jobs' directories)
    the plan is what the job read from its parameters: ``learning_runs_per_job`` runs of
    ``training_iterations`` iterations, the job's defaults where its settings leave one out
    (as the job itself did). Left unknown when nothing of the job's settings is known."""
    if not job.settings:
        return
    for field, plan_field in (("planned_runs", "runs"), ("planned_iterations", "iterations")):
        name = FIXED_PLAN[plan_field]
        value = job.settings.get(name, JOB_DEFAULTS[name])
        whole = isinstance(value, int | float) and not isinstance(value, bool)
        if getattr(job, field) is None and whole and value >= 1 and float(value).is_integer():
            setattr(job, field, int(value))


def _hyperparameters(procedure: Path, metric: str, jobs: list[JobInfo]) -> list[str]:
    """The optimised parameters: reduced_data.csv's columns, else what differs between jobs."""
    header, _ = read_csv_rows(procedure / REDUCED_DATA)
    skip = NOT_HYPERPARAMETERS | {metric, metric + STD_SUFFIX}
    names = [h for h in header if h not in skip and not h.endswith(STD_SUFFIX)]
    if names:
        return names
    skip |= set(REPORTED)
    values: dict[str, set[str]] = {}
    for job in jobs:
        for key, value in job.settings.items():
            if key not in skip:
                values.setdefault(key, set()).add(json.dumps(value, sort_keys=True, default=str))
    keys = [k for k, v in values.items() if len(v) > 1]
    # Parameters of the learner first: that is what an HPO usually varies.
    return sorted(keys, key=lambda k: (not k.startswith("config."), k))


def read_curve(job: JobInfo, run: RunInfo, reward_column: str | None = None) -> Curve | None:
    """Rewards over the chain ``run_{r}.0-{a}``, ``run_{r}.1-{a}``, ... of the last attempt.

    x is ``time/total_timesteps`` when every iteration's progress.csv has it, else the row
    number counted across the chain. None if no progress.csv has a value yet.
    """
    if job.working_dir is None:
        return None
    column = reward_column or job.reward_column()
    files: list[tuple[list[str], list[list[str]]]] = []
    paths = JobPaths(job.working_dir)
    iteration = 0
    while (step := paths.step(run.run, iteration, run.attempt)).dir.is_dir():
        files.append(read_csv_rows(step.progress))
        iteration += 1
    with_rows = [f for f in files if f[1]]
    if not with_rows:
        return None
    use_steps = all(TIMESTEPS_COLUMN in header for header, _ in with_rows)
    x: list[float] = []
    y: list[float] = []
    boundaries: list[float] = []
    offset = 0
    last_steps: float | None = None
    for i, (header, rows) in enumerate(files):
        if i > 0 and rows:
            # where the previous iteration stopped (its target), else where this one starts
            start = float(offset)
            if use_steps:
                steps_column = header.index(TIMESTEPS_COLUMN)
                start = number(rows[0][steps_column]) or start
                if last_steps is not None:
                    start = last_steps
            boundaries.append(start)
        if use_steps and rows:
            last_steps = number(rows[-1][header.index(TIMESTEPS_COLUMN)])
        if column not in header:
            offset += len(rows)
            continue
        yi = header.index(column)
        xi = header.index(TIMESTEPS_COLUMN) if use_steps else -1
        for n, row in enumerate(rows):
            value = number(row[yi])
            where = number(row[xi]) if use_steps else float(offset + n)
            if value is not None and where is not None:
                x.append(where)
                y.append(value)
        offset += len(rows)
    if not y:
        return None
    label = TIMESTEPS_COLUMN if use_steps else "progress.csv row (all iterations)"
    return Curve(run.run, run.attempt, x, y, label, boundaries)
