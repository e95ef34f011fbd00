"""One search's outcome, and reading what a search left behind: its choice, env steps, rewards.

Pure readers of files, kept apart from the subprocesses so that they are tested without
training anything (tests/test_bench_*.py).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rl_relay.job.state_file import read_state
from rl_relay.layout import JobPaths, StepPaths
from rl_relay.metrics import ENV_STEPS, ITERATIONS_DONE, STOPPED_EARLY, TIMESTEPS_COLUMN
from rl_relay.report.files import scalar
from rl_relay.stopping.records import all_records

from .space import Param, zoo_native_overrides
from .zoo import ENV_STEPS_ATTR

#: the column of Optuna's trials dataframe (the zoo's report) with ``ENV_STEPS_ATTR``
ZOO_STEPS_COLUMN = "user_attrs_" + ENV_STEPS_ATTR

SEARCH_SEED = 100  # repeat r searches with seed SEARCH_SEED + r

#: the status of a search saved before its re-evaluation: run again, only that is done
SEARCHED = "searched"
#: ``Outcome.failed_in`` of a search that finished and whose re-evaluation failed: run
#: again, only the re-evaluation is done again (the search would choose the same)
IN_REEVALUATION = "re-evaluation"
#: ``Outcome.failed_in`` of a search that failed: run again, it is searched again
IN_SEARCH = "search"


#: the CPU features that decide which kernels torch (and its oneDNN) run, so which float
#: path a training takes
KERNEL_FEATURES = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_of(cpuinfo: str) -> dict[str, Any]:
    """The CPU model and its ``KERNEL_FEATURES`` from the text of ``/proc/cpuinfo``."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, colon, value = line.partition(":")
        if not colon:
            if fields:
                break  # the first processor's block is enough
            continue
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {
        "cpu": fields.get("model name", ""),
        "features": [f for f in KERNEL_FEATURES if f in flags],
    }


def host() -> dict[str, Any]:
    """This machine as far as a training's floats go: the CPU and torch's kernel level."""
    try:
        found = cpu_of(Path("/proc/cpuinfo").read_text())
    except OSError:
        found = {"cpu": "", "features": []}
    try:
        import torch

        found["torch"] = torch.__version__
        found["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        pass
    return found


@dataclass
class Outcome:
    """One search (a method in one repeat) and the re-evaluation of what it chose."""

    task: str
    method: str  # as typed: the compact syntax (methods.py)
    repeat: int
    #: "ok", "missing" (not on this checkout), "not run", "failed" or ``SEARCHED``
    status: str = "ok"
    detail: str = ""
    trials: int = 0
    env_steps: int = 0
    wall_seconds: float = 0.0
    estimate: float = math.nan
    overrides: dict[str, Any] = field(default_factory=dict)
    reeval_rewards: list[float] = field(default_factory=list)
    reeval_env_steps: int = 0
    #: the machine the re-evaluation trained on (``host()``): the same configuration and
    #: seeds give the same rewards on one machine but not across CPUs of another kind
    host: dict[str, Any] = field(default_factory=dict)
    #: the search's own jobs (``search_jobs``), not ``+KxM``'s re-runs: what each scored,
    #: trained and whether it stopped early, so a stopping rule's decisions can be looked
    #: at (or replayed) after the search's directory is gone
    jobs: list[dict[str, Any]] = field(default_factory=list)
    #: with status "failed": ``IN_SEARCH`` or ``IN_REEVALUATION`` (the search's fields kept)
    failed_in: str = ""

    @property
    def resumable(self) -> bool:
        """Whether a run started again only re-evaluates this one (its search is kept)."""
        return self.status == SEARCHED or (
            self.status == "failed" and self.failed_in == IN_REEVALUATION
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class ZooSearch:
    """The best trial of an rl_zoo3 study and the env steps all its trials used."""

    best_value: float
    best_params: dict[str, str]
    trials: int
    env_steps: int | None  # None: the report has no env_steps attribute


def read_zoo_report(path: Path) -> ZooSearch:
    """Parse the ``report_*.csv`` that ``rl_zoo3.train -optimize`` writes (Optuna's dataframe)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    complete = [
        r for r in rows if r.get("state") == "COMPLETE" and r.get("value") not in ("", None)
    ]
    if not complete:
        states = sorted({r.get("state", "?") for r in rows}) or ["no trials"]
        raise ValueError(f"{path}: no complete trial ({', '.join(states)})")
    best = max(complete, key=lambda r: float(r["value"]))
    params = {k[len("params_") :]: v for k, v in best.items() if k.startswith("params_")}
    steps = [r.get(ZOO_STEPS_COLUMN, "") for r in rows]
    env_steps = sum(int(float(s)) for s in steps if s) if any(steps) else None
    return ZooSearch(float(best["value"]), params, len(rows), env_steps)


def zoo_overrides(
    search: ZooSearch, space: Sequence[Param], native_algo: str | None = None
) -> dict[str, Any]:
    """The best zoo trial as rl-relay overrides (shared space, or the zoo's own with native)."""
    if native_algo is not None:
        return zoo_native_overrides(
            native_algo, {k: scalar(v) for k, v in search.best_params.items()}
        )
    by_name = {p.name: p for p in space}
    missing = sorted(set(by_name) - set(search.best_params))
    if missing:
        raise ValueError(f"the zoo's best trial lacks {', '.join(missing)}")
    return {name: p.coerce(search.best_params[name]) for name, p in by_name.items()}


def progress_env_steps(path: Path) -> int:
    """The largest ``time/total_timesteps`` in an SB3 progress.csv (0 when there is none)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            values = [row.get(TIMESTEPS_COLUMN) or "" for row in csv.DictReader(f)]
    except FileNotFoundError:
        return 0
    return max((int(float(v)) for v in values if v), default=0)


def step_env_steps(step_dir: Path) -> int:
    """Env steps one step trained for: the learner's checkpoint info, else its progress.csv.

    ``model.resume.json`` has ``num_timesteps`` at the end of the step; progress.csv alone
    undercounts off-policy runs, which log every 4 episodes (SAC on Pendulum: every 800
    steps), where a run has no evaluation row with its step count (a learner before
    ``evaluations``, or ``eval_episodes`` 0).
    """
    paths = StepPaths(step_dir)
    steps = progress_env_steps(paths.progress)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # absent or torn
        info = json.loads(paths.resume_info.read_text(encoding="utf-8"))
        steps = max(steps, int(info["num_timesteps"]))
    return steps


def job_env_steps(working_dir: Path) -> int:
    """Env steps a job trained for: every attempt of every run, over all its iterations.

    A chained iteration's counter continues the previous one, so each (run, attempt) counts
    its largest value; failed attempts count too (they used the steps).
    """
    per_attempt: dict[tuple[int, int], int] = {}
    for (run, _iteration, attempt), step_dir in JobPaths(working_dir).step_dirs():
        steps = step_env_steps(step_dir)
        per_attempt[run, attempt] = max(per_attempt.get((run, attempt), 0), steps)
    return sum(per_attempt.values())


def job_rewards(working_dir: Path) -> list[float]:
    """The rewards of a job's finished learning runs (its ``restarts.json``)."""
    return read_state(JobPaths(working_dir).state).rewards()


def _number(row: Mapping[str, str], column: str) -> float | None:
    """A numeric cell of cluster_utils' ``all_data.csv``; None when empty, missing or nan."""
    value = row.get(column)
    return None if value in ("", None, "nan") else float(value)


def _stopped_early(row: Mapping[str, str]) -> bool | None:
    """The row's ``stopped_early`` (written 0/1, by cluster_utils as 0.0/1.0 or a bool's
    text); None when the row has none."""
    value = row.get(STOPPED_EARLY)
    if value in ("True", "False"):
        return value == "True"
    number = _number(row, STOPPED_EARLY)
    return None if number is None else number != 0


def _choice(row: Mapping[str, str], space: Sequence[Param]) -> dict[str, Any]:
    return {p.name: p.coerce(row[p.name]) for p in space}


def read_best_job(
    all_data: Path, space: Sequence[Param], metric: str, full_only: bool = False
) -> tuple[float, dict]:
    """(the metric, the overrides) of the best job in cluster_utils' ``all_data.csv``;
    ``full_only``: among jobs not stopped early (as the zoo chooses among complete trials)."""
    with open(all_data, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if _number(r, metric) is not None]
    if full_only:
        rows = [r for r in rows if _stopped_early(r) is False]  # unknown: not full
    if not rows:
        raise ValueError(f"{all_data}: no job reported {metric}")
    return float(rows[0][metric]), _choice(rows[0], space)  # cluster_utils writes it best first


def search_jobs(
    all_data: Path,
    metric: str,
    stopping_records: Path | None = None,
    space: Sequence[Param] = (),
) -> list[dict[str, Any]]:
    """Every job of cluster_utils' ``all_data.csv`` by id: its ``metric`` (None when it
    reported none), env steps, iterations done, whether it stopped early, from early
    stopping's records its score at each rung it reached (``{"1": score, ...}``), and its
    configuration (the ``space``'s overrides), so that another way of choosing among the
    jobs can be tried on a saved search and its choice re-evaluated."""
    rungs: dict[int, dict[str, float | None]] = {}
    for record in all_records(stopping_records) if stopping_records else []:
        rungs.setdefault(record.job, {})[str(record.rung)] = record.score
    with open(all_data, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    jobs = []
    for row in rows:
        if row.get("_id") in ("", None):
            continue
        job = int(float(row["_id"]))
        jobs.append(
            {
                "id": job,
                "score": _number(row, metric),
                "env_steps": int(_number(row, ENV_STEPS) or 0),
                "iterations_done": int(_number(row, ITERATIONS_DONE) or 0),
                "stopped_early": bool(_stopped_early(row)),
                "rungs": rungs.get(job, {}),
                "overrides": _choice(row, space),
            }
        )
    return sorted(jobs, key=lambda job: job["id"])


def read_pick(summary: Path, space: Sequence[Param]) -> tuple[float, dict]:
    """(re-evaluated mean, overrides) of the best configuration in ``rl-relay reevaluate``'s
    ``summary.csv``: the highest mean over its fresh runs (the search's own run not counted).
    """
    with open(summary, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r.get("runs") or 0) > 0]
    if not rows:
        raise ValueError(f"{summary}: no configuration has a finished re-evaluation run")
    best = max(rows, key=lambda r: float(r["reevaluated_mean"]))
    return float(best["reevaluated_mean"]), _choice(best, space)
