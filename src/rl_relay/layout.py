"""Every file and directory name of a job and of an HPO's results, in one place.

A job's working directory (``working_dir``) and cluster_utils' results directory have a
fixed layout that the job runner, the container wrapper, the checks, the report, PBT and
the re-evaluation all read or write. ``JobPaths`` and ``StepPaths`` (after submitit's
``JobPaths``: one object that knows every path of a job) and ``ResultsPaths`` own those
names; nothing else spells them. Standard library only (``run_singularity`` runs on the
host).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# -- a job's working directory -------------------------------------------------------------
STATE_FILE = "restarts.json"
LOCK_FILE = ".rl-relay.lock"
JOB_LOG = "run_learning.log"
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
#: A PBT member's hyperparameter schedule, written when it stops.
PBT_SCHEDULE = "pbt_schedule.json"
#: The job's parameters as ``rl-relay hpo`` hands them over: written by the driver before the
#: job is submitted, its path the job script's only parameter (``hpo.patches.job_script``).
JOB_PARAMETERS = "job_parameters.json"
# -- one step (run_{run}.{iteration}-{attempt}) ----------------------------------------------
MAIN_CONFIG = "config.json"
CONFIG_DIR = "config"
MODEL_NAME = "model"
LOG_DIR = "logs"
PROGRESS_FILE = "progress.csv"
#: Beside ``save_path``: the default learner's checkpoint summary (its timestep counter).
RESUME_INFO_SUFFIX = ".resume.json"
#: Beside ``save_path``: SB3's own model file (``model.save``), loadable without rl-relay.
MODEL_ZIP_SUFFIX = ".zip"
#: Beside ``save_path``: the default learner's resume checkpoint and VecNormalize statistics.
RESUME_STATE_SUFFIX = ".resume.pkl"
VECNORMALIZE_SUFFIX = "_vecnormalize.pkl"
#: In a PBT member's next step: where a donor's checkpoint is copied (the learner never
#: writes there).
DONOR_DIR = "pbt_donor"

_STEP_DIR = "run_{run}.{iteration}-{attempt}"
STEP_DIR_RE = re.compile(r"^run_(\d+)\.(\d+)-(\d+)$")


def step_dir_name(run: int, iteration: int, attempt: int) -> str:
    """``run_{learning_run}.{training_iteration}-{attempt}``, the original's layout."""
    return _STEP_DIR.format(run=run, iteration=iteration, attempt=attempt)


def parse_step_dir_name(name: str) -> tuple[int, int, int] | None:
    """``(run, iteration, attempt)`` of a step directory's name, or None for other names."""
    match = STEP_DIR_RE.match(name)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


@dataclass(frozen=True)
class StepPaths:
    """The files of one step: one training iteration of one attempt of one learning run."""

    dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def main_config(self) -> Path:
        """What the learning command gets: config name -> merged config file."""
        return self.dir / MAIN_CONFIG

    @property
    def config_dir(self) -> Path:
        return self.dir / CONFIG_DIR

    def config(self, name: str) -> Path:
        return self.config_dir / f"{name}.json"

    @property
    def save_path(self) -> Path:
        """``rl_config.save_path``: the learner writes its model files with this prefix."""
        return self.dir / MODEL_NAME

    @property
    def resume_info(self) -> Path:
        return Path(str(self.save_path) + RESUME_INFO_SUFFIX)

    @property
    def model_zip(self) -> Path:
        return Path(str(self.save_path) + MODEL_ZIP_SUFFIX)

    @property
    def log_dir(self) -> Path:
        """``rl_config.log_path``."""
        return self.dir / LOG_DIR

    @property
    def progress(self) -> Path:
        return self.log_dir / PROGRESS_FILE

    @property
    def stdout(self) -> Path:
        return self.dir / STDOUT_FILE

    @property
    def stderr(self) -> Path:
        return self.dir / STDERR_FILE


@dataclass(frozen=True)
class JobPaths:
    """The files of one job's working directory."""

    working_dir: Path

    @property
    def state(self) -> Path:
        """``restarts.json``: where the job stands, rewritten atomically after every step."""
        return self.working_dir / STATE_FILE

    @property
    def lock(self) -> Path:
        """Held (flock) for the lifetime of a job process: one process per working dir."""
        return self.working_dir / LOCK_FILE

    @property
    def log(self) -> Path:
        """``run_learning.log``: every start, step and exit of the job, with timestamps."""
        return self.working_dir / JOB_LOG

    @property
    def stdout(self) -> Path:
        """The container's output (run_singularity), appended over all cluster jobs."""
        return self.working_dir / STDOUT_FILE

    @property
    def stderr(self) -> Path:
        return self.working_dir / STDERR_FILE

    @property
    def parameters(self) -> Path:
        """``job_parameters.json``: the parameters ``rl-relay hpo`` gave the job (JSON)."""
        return self.working_dir / JOB_PARAMETERS

    @property
    def pbt_schedule(self) -> Path:
        return self.working_dir / PBT_SCHEDULE

    def step(self, run: int, iteration: int, attempt: int) -> StepPaths:
        return StepPaths(self.working_dir / step_dir_name(run, iteration, attempt))

    def step_dirs(self) -> list[tuple[tuple[int, int, int], Path]]:
        """Every step directory present, as ``((run, iteration, attempt), path)``, sorted."""
        found = []
        if self.working_dir.is_dir():
            for child in self.working_dir.iterdir():
                key = parse_step_dir_name(child.name)
                if key is not None and child.is_dir():
                    found.append((key, child))
        return sorted(found)


# -- cluster_utils' results directory ------------------------------------------------------
# cluster_utils 3 file names (cluster_utils.base.constants), spelt out so that reading
# results needs no cluster_utils import.
ALL_DATA = "all_data.csv"
REDUCED_DATA = "reduced_data.csv"
METADATA = "metadata.json"
SERVER_LOG = "cluster_run.log"
STATUS_PICKLE = "status.pickle"
WORKING_DIRS = "working_directories"
BEST_JOBS = "best_jobs"
#: cluster_utils names a kept best job ``directories_<id>`` (the part of
#: ``working_directories/<id>`` after the last underscore, "/" replaced by "_").
BEST_JOB_PREFIX = "directories_"
#: What ``rl-relay hpo`` was started with (settings after overrides, backend), for
#: ``rl-relay reevaluate``: cluster_utils keeps no copy of the settings.
HPO_RECORD = "rl_relay_hpo.json"
#: Held (flock) by the ``rl-relay hpo`` driver: one driver per results directory.
DRIVER_LOCK = ".rl-relay-hpo.lock"
#: ``dgd``'s best configuration after every result (beside ``all_data.csv``).
DGD_HISTORY = "dgd_best_history.csv"
#: Where ``rl-relay reevaluate`` runs its grid search and writes its summary: the first
#: request in ``reevaluation/``, each other request beside it in ``reevaluation-2/``, ...
REEVALUATION = "reevaluation"
REEVALUATION_DIR_RE = re.compile(r"^reevaluation(?:-([2-9]|[1-9]\d+))?$")
REEVALUATION_SUMMARY = "summary.csv"
REEVALUATION_SETTINGS = "grid_search_settings.json"
RECOMMENDATION_FILE = "recommendation.txt"
#: What a re-evaluation was asked (configurations, runs, overrides): only the same request
#: continues it.
REEVALUATION_REQUEST = "request.json"
#: PBT's records and decisions (one write-once file each), in the results directory.
POPULATION = "population"
#: What every PBT member knows about its population, in ``population/``.
PBT_SPEC = "pbt.json"
#: Early stopping's decisions (one write-once file per job and rung), in the results dir.
EARLY_STOPPING = "early_stopping"
#: The tpe search's Optuna study when Optuna's pruners stop jobs (``optuna-dashboard`` opens it).
OPTUNA_JOURNAL = "optuna_journal.log"
#: ``rl-relay report``'s page and figures (``report/index.html``).
REPORT_DIR = "report"
REPORT_INDEX = "index.html"
#: Files cluster_utils' client writes into a job's working directory.
JOB_SETTINGS = "settings.json"
JOB_METRICS = "metrics.csv"
JOB_PARAM_CHOICE = "param_choice.csv"


def reevaluation_dir_name(number: int) -> str:
    """``reevaluation`` for the first re-evaluation, ``reevaluation-<number>`` after it."""
    return REEVALUATION if number == 1 else f"{REEVALUATION}-{number}"


def parse_reevaluation_dir_name(name: str) -> int | None:
    """The number of a re-evaluation directory's name, or None for other names (a
    re-evaluation moved aside by ``--fresh`` has a timestamp suffix and is none)."""
    match = REEVALUATION_DIR_RE.match(name)
    return None if match is None else int(match[1] or 1)


@dataclass(frozen=True)
class ReevaluationPaths:
    """The files of one re-evaluation (one request) in a results directory."""

    dir: Path

    @property
    def number(self) -> int | None:
        return parse_reevaluation_dir_name(self.dir.name)

    @property
    def summary(self) -> Path:
        return self.dir / REEVALUATION_SUMMARY

    @property
    def settings(self) -> Path:
        """The cluster_utils grid search settings it runs."""
        return self.dir / REEVALUATION_SETTINGS

    @property
    def recommendation(self) -> Path:
        return self.dir / RECOMMENDATION_FILE

    @property
    def request(self) -> Path:
        return self.dir / REEVALUATION_REQUEST

    @property
    def working_dirs(self) -> Path:
        return self.dir / WORKING_DIRS


_JOB_NUMBER_RE = re.compile(r"[0-9]+")


def parse_job_number(name: str) -> int | None:
    """The job id a working directory (or the suffix of a ``best_jobs`` copy) is named by,
    or None for other names. ASCII digits only: ``"²".isdigit()`` is true, ``int("²")`` fails."""
    return int(name) if _JOB_NUMBER_RE.fullmatch(name) else None


def numbered_dirs(parent: Path, prefix: str = "") -> Iterator[tuple[int, Path]]:
    """(job id, directory) for each subdirectory of ``parent`` named ``<prefix><job id>``
    (none when ``parent`` is missing): ``working_directories/N`` and
    ``best_jobs/directories_N``, which both the continuation and the report look for. Pairs,
    not a dict: ``7`` and ``007`` name the same job, and the report keeps both places."""
    if not parent.is_dir():
        return
    for child in parent.iterdir():
        if not child.name.startswith(prefix):
            continue
        number = parse_job_number(child.name[len(prefix) :])
        if number is not None and child.is_dir():
            yield number, child


def results_root(settings: Mapping[str, Any]) -> Path:
    """``results_dir/optimization_procedure_name`` as cluster_utils 3.0 joins them: onto
    the home directory, so an absolute ``results_dir`` wins."""
    return Path.home() / str(settings["results_dir"]) / str(settings["optimization_procedure_name"])


@dataclass(frozen=True)
class ResultsPaths:
    """The files of one HPO's results directory (``results_dir/optimization_procedure_name``)."""

    root: Path

    @property
    def all_data(self) -> Path:
        return self.root / ALL_DATA

    @property
    def reduced_data(self) -> Path:
        return self.root / REDUCED_DATA

    @property
    def metadata(self) -> Path:
        return self.root / METADATA

    @property
    def server_log(self) -> Path:
        return self.root / SERVER_LOG

    @property
    def status_pickle(self) -> Path:
        return self.root / STATUS_PICKLE

    @property
    def working_dirs(self) -> Path:
        return self.root / WORKING_DIRS

    @property
    def best_jobs(self) -> Path:
        return self.root / BEST_JOBS

    @property
    def hpo_record(self) -> Path:
        return self.root / HPO_RECORD

    @property
    def early_stopping(self) -> Path:
        return self.root / EARLY_STOPPING

    @property
    def optuna_journal(self) -> Path:
        return self.root / OPTUNA_JOURNAL

    @property
    def driver_lock(self) -> Path:
        return self.root / DRIVER_LOCK

    @property
    def dgd_history(self) -> Path:
        return self.root / DGD_HISTORY

    @property
    def report_dir(self) -> Path:
        return self.root / REPORT_DIR

    @property
    def population(self) -> Path:
        return self.root / POPULATION

    def reevaluation(self, number: int = 1) -> ReevaluationPaths:
        """The ``number``-th re-evaluation (``reevaluation/``, ``reevaluation-2/``, ...)."""
        return ReevaluationPaths(self.root / reevaluation_dir_name(number))

    def reevaluations(self) -> list[ReevaluationPaths]:
        """Every re-evaluation directory present, by number."""
        found = []
        if self.root.is_dir():
            for child in self.root.iterdir():
                number = parse_reevaluation_dir_name(child.name)
                if number is not None and child.is_dir():
                    found.append((number, ReevaluationPaths(child)))
        return [paths for _, paths in sorted(found, key=lambda item: item[0])]

    def job(self, job_id: int) -> JobPaths:
        return JobPaths(self.working_dirs / str(job_id))
