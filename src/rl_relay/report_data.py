"""Read what an HPO wrote into plain records for ``rl-relay report`` (no figures, no pandas).

Everything here tolerates an HPO that is still running: cluster_utils rewrites
``all_data.csv`` only after each optimisation iteration, jobs have no ``metrics.csv`` until
they finish, and any file may be caught half written. So each source is optional, and the
job working directories (``settings.json``, ``metrics.csv``, ``restarts.json``) are read
whether or not the CSV files mention them. Paths stored in ``all_data.csv`` and
``restarts.json`` are absolute; they are used only for their last component, resolved
inside the directory that was given, so a moved or copied results directory still reads.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_relay.layout import PROGRESS_FILE, STATE_FILE

logger = logging.getLogger("rl_relay.report")

# cluster_utils 3 file names (cluster_utils.base.constants), spelt out so reading them
# needs no cluster_utils import.
ALL_DATA = "all_data.csv"
REDUCED_DATA = "reduced_data.csv"
METADATA = "metadata.json"
SERVER_LOG = "cluster_run.log"
WORKING_DIRS = "working_directories"
BEST_JOBS = "best_jobs"
#: cluster_utils names a kept best job ``directories_<id>`` (the part of
#: ``working_directories/<id>`` after the last underscore, "/" replaced by "_").
BEST_JOB_PREFIX = "directories_"
METRICS_FILE = "metrics.csv"
SETTINGS_FILE = "settings.json"
STD_ENDING = "__std"
RESTARTS_COLUMN = "job_restarts"

DEFAULT_METRIC = "mean_eprewmean"
DEFAULT_REWARD_COLUMN = "rollout/ep_rew_mean"
TIMESTEPS_COLUMN = "time/total_timesteps"
#: What run_learning reports besides the metric (rl_relay.job.metrics) and what
#: cluster_utils adds; none of them is a hyperparameter.
REPORTED = ("std_eprewmean", "learning_runs", "failed_attempts", "resumes", "time_elapsed")
NOT_HYPERPARAMETERS = {"_id", "_iteration", "id", "working_dir", RESTARTS_COLUMN, ""}

RUN_DIR_RE = re.compile(r"^run_(\d+)\.(\d+)-(\d+)$")
_SERVER_LINE_RE = re.compile(
    r"Job (\d+) (died with error|exited to be resumed|has concluded, but has not sent results)(.*)"
)

DONE, RUNNING, FAILED = "done", "running", "failed"


class NoResultsError(ValueError):
    """The directory holds no cluster_utils results."""


@dataclass(frozen=True)
class FailureInfo:
    """A failed attempt of one learning run, with the directory its logs are in."""

    run: int
    attempt: int
    iteration: int
    reason: str
    run_dir: Path


@dataclass
class RunInfo:
    """Where one learning run of a job stands (from restarts.json or its directories)."""

    run: int
    #: The last attempt: the one that succeeded when ``done``, else the current one.
    attempt: int
    iteration: int
    done: bool
    reward: float | None
    resumes: int = 0
    failures: list[FailureInfo] = field(default_factory=list)


@dataclass
class Curve:
    """A learning run's rewards over all its chained iterations (successful attempt)."""

    run: int
    attempt: int
    x: list[float]
    y: list[float]
    #: ``time/total_timesteps`` or ``progress.csv row``.
    x_label: str
    #: x where iteration 1, 2, ... begin.
    boundaries: list[float]


@dataclass
class JobInfo:
    """One cluster_utils job: its hyperparameters, results and the state of its runs."""

    job_id: int
    working_dir: Path | None
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    runs: list[RunInfo] = field(default_factory=list)
    planned_runs: int | None = None
    planned_iterations: int | None = None
    max_attempts: int | None = None
    #: Error messages the server logged for this job ("died with error").
    server_errors: list[str] = field(default_factory=list)
    #: How often the job exited for resume (one cluster job per step, plus preemptions).
    exits_for_resume: int = 0
    status: str = RUNNING

    @property
    def failures(self) -> list[FailureInfo]:
        return [f for r in self.runs for f in r.failures]

    @property
    def failed_attempts(self) -> int:
        if self.runs or "failed_attempts" not in self.metrics:
            return len(self.failures)
        return int(self.metrics["failed_attempts"])

    @property
    def resumes(self) -> int:
        if self.runs or "resumes" not in self.metrics:
            return sum(r.resumes for r in self.runs)
        return int(self.metrics["resumes"])

    @property
    def rewards(self) -> list[float]:
        """Rewards of the runs finished so far."""
        return [r.reward for r in self.runs if r.done and r.reward is not None]

    @property
    def runs_done(self) -> int:
        return sum(r.done for r in self.runs)

    def value(self, metric: str) -> float | None:
        """The job's objective, or None while it has none."""
        v = self.metrics.get(metric)
        return v if v is not None and math.isfinite(v) else None

    def reward_column(self) -> str:
        column = self.settings.get("reward_column")
        return column if isinstance(column, str) and column else DEFAULT_REWARD_COLUMN


@dataclass
class Results:
    """Everything the report shows about one optimisation procedure."""

    directory: Path
    metric: str
    minimize: bool
    hyperparameters: list[str]
    jobs: list[JobInfo]
    start_time: str = ""
    #: What was missing or unreadable, for the reader of the report.
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.directory.name

    def std_metric(self) -> str:
        return std_name(self.metric)

    def finished(self) -> list[JobInfo]:
        """Jobs with a value of the metric, best first."""
        done = [j for j in self.jobs if j.value(self.metric) is not None]
        return sorted(
            done,
            key=lambda j: (j.value(self.metric) or 0.0) * (1 if self.minimize else -1),
        )

    def by_status(self, status: str) -> list[JobInfo]:
        return [j for j in self.jobs if j.status == status]


def std_name(metric: str) -> str:
    """The spread reported with ``metric`` (``mean_x`` -> ``std_x``), as run_learning names it."""
    return "std_" + metric[len("mean_") :] if metric.startswith("mean_") else metric + STD_ENDING


# -- small readers ---------------------------------------------------------------------


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _scalar(text: str) -> Any:
    """A CSV cell as int, float or the string itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and complete rows of a CSV file that may be half written.

    Rows with another number of fields than the header (a line cut off mid-write) are
    dropped. Returns ``([], [])`` if the file is missing, empty or unreadable.
    """
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                return [], []
            rows = []
            try:
                for row in reader:
                    if len(row) == len(header):
                        rows.append(row)
            except csv.Error as err:  # e.g. a quote cut off at the end
                logger.debug("%s: stopped reading at %s", path, err)
            return header, rows
    except OSError:
        return [], []


def read_json(path: Path) -> Any:
    """Parsed JSON, or None if the file is missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def flatten(settings: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``("a.b", 1)``: cluster_utils' names of nested parameters."""
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten(value, name + ".")
        else:
            yield name, value


def read_metrics(path: Path) -> dict[str, float]:
    """The one-row ``metrics.csv`` cluster_utils' ``finalize_job`` writes; {} if incomplete."""
    header, rows = read_csv_rows(path)
    if not rows:
        return {}
    values = {k: _number(v) for k, v in zip(header, rows[0], strict=True)}
    return {k: v for k, v in values.items() if v is not None}


# -- results directory -----------------------------------------------------------------


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
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            suffix = child.name[len(prefix) :] if child.name.startswith(prefix) else ""
            if child.is_dir() and suffix.isdigit():
                found.setdefault(int(suffix), []).append(child)
    return found


def _pick_dir(candidates: Iterable[Path]) -> Path | None:
    """The candidate that knows most: with metrics, else with a state, else any existing."""
    existing = [c for c in candidates if c.is_dir()]
    for wanted in (METRICS_FILE, STATE_FILE, SETTINGS_FILE):
        for c in existing:
            if (c / wanted).exists():
                return c
    return existing[0] if existing else None


def _error_message(logged: str) -> str:
    """The message of a "died with error ['...']." line: cluster_utils logs a list's repr."""
    text = logged.strip().removesuffix(".")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    return str(value)


def _server_events(procedure: Path) -> tuple[dict[int, list[str]], dict[int, int]]:
    """Errors and exits for resume per job id, from the server's ``cluster_run.log``."""
    errors: dict[int, list[str]] = {}
    resumed: dict[int, int] = {}
    try:
        text = (procedure / SERVER_LOG).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return errors, resumed
    for match in _SERVER_LINE_RE.finditer(text):
        job_id, event, rest = int(match.group(1)), match.group(2), match.group(3)
        if event == "died with error":
            errors.setdefault(job_id, []).append(_error_message(rest))
        elif event.startswith("has concluded") and job_id not in errors:
            errors[job_id] = ["ended without sending results (cluster_utils considers it failed)"]
        elif event == "exited to be resumed":
            resumed[job_id] = resumed.get(job_id, 0) + 1
    return errors, resumed


def _read_state(job: JobInfo) -> None:
    """Fill ``job.runs`` from restarts.json, or from the run directories without one."""
    wd = job.working_dir
    if wd is None:
        return
    data = read_json(wd / STATE_FILE)
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
                        reward=_number(raw.get("reward")),
                        resumes=int(raw.get("resumes", 0)),
                        failures=failures,
                    )
                )
            except (KeyError, TypeError, ValueError) as err:
                logger.warning("%s: skipping a run it cannot read (%s)", wd / STATE_FILE, err)
        return
    # No state yet (first step still running) or an rl-relay-less job: the directories.
    latest: dict[int, tuple[int, int]] = {}
    for child in wd.iterdir() if wd.is_dir() else ():
        m = RUN_DIR_RE.match(child.name)
        if m and child.is_dir():
            run, iteration, attempt = (int(g) for g in m.groups())
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
    values = [v for v in (_number(r.get(metric)) for r in rows) if v is not None]
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
        job_id = _number(row.get("_id"))
        if job_id is not None:
            by_id[int(job_id)] = row

    dirs = _job_dirs(procedure)
    errors, resumed = _server_events(procedure)
    jobs: list[JobInfo] = []
    for job_id in sorted(set(by_id) | set(dirs)):
        row = by_id.get(job_id, {})
        candidates = list(dirs.get(job_id, []))
        if row.get("working_dir"):
            candidates.append(Path(row["working_dir"]))
        job = JobInfo(job_id=job_id, working_dir=_pick_dir(candidates))
        if job.working_dir is not None:
            settings = read_json(job.working_dir / SETTINGS_FILE)
            if isinstance(settings, dict):
                job.settings = dict(flatten(settings))
            job.metrics = read_metrics(job.working_dir / METRICS_FILE)
            _read_state(job)
        if not job.settings and row:
            job.settings = {k: _scalar(v) for k, v in row.items() if k not in (metric, *REPORTED)}
        if metric not in job.metrics and row:
            for name in (metric, *REPORTED):
                value = _number(row.get(name))
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


def _hyperparameters(procedure: Path, metric: str, jobs: list[JobInfo]) -> list[str]:
    """The optimised parameters: reduced_data.csv's columns, else what differs between jobs."""
    header, _ = read_csv_rows(procedure / REDUCED_DATA)
    skip = NOT_HYPERPARAMETERS | {metric, metric + STD_ENDING}
    names = [h for h in header if h not in skip and not h.endswith(STD_ENDING)]
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


# -- learning curves -------------------------------------------------------------------


def _progress_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    return read_csv_rows(path)


def read_curve(job: JobInfo, run: RunInfo, reward_column: str | None = None) -> Curve | None:
    """Rewards over the chain ``run_{r}.0-{a}``, ``run_{r}.1-{a}``, ... of the last attempt.

    x is ``time/total_timesteps`` when every iteration's progress.csv has it, else the row
    number counted across the chain. None if no progress.csv has a value yet.
    """
    if job.working_dir is None:
        return None
    column = reward_column or job.reward_column()
    files: list[tuple[list[str], list[list[str]]]] = []
    iteration = 0
    while True:
        run_dir = job.working_dir / f"run_{run.run}.{iteration}-{run.attempt}"
        if not run_dir.is_dir():
            break
        files.append(_progress_rows(run_dir / "logs" / PROGRESS_FILE))
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
                start = _number(rows[0][steps_column]) or start
                if last_steps is not None:
                    start = last_steps
            boundaries.append(start)
        if use_steps and rows:
            last_steps = _number(rows[-1][header.index(TIMESTEPS_COLUMN)])
        if column not in header:
            offset += len(rows)
            continue
        yi = header.index(column)
        xi = header.index(TIMESTEPS_COLUMN) if use_steps else -1
        for n, row in enumerate(rows):
            value = _number(row[yi])
            where = _number(row[xi]) if use_steps else float(offset + n)
            if value is not None and where is not None:
                x.append(where)
                y.append(value)
        offset += len(rows)
    if not y:
        return None
    label = TIMESTEPS_COLUMN if use_steps else "progress.csv row (all iterations)"
    return Curve(run.run, run.attempt, x, y, label, boundaries)
