"""Early stopping's records in the results directory: one write-once file per decision.

    <results_dir>/early_stopping/rung_0001/job_000012.json   job 12 after 1 iteration
    <results_dir>/early_stopping/finished/job_000012.json    job 12 trained to the end

A decision is taken once and for all when its file is created (``write_once_json``: of two
racing writers exactly one wins): a job killed after that acts on the recorded decision
when it starts again, never on a second one, and the report reads what was decided, from
which scores. Jobs on different nodes share nothing but these files.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_relay.atomic import write_once_json

logger = logging.getLogger(__name__)

FINISHED_DIR = "finished"
_RUNG_DIR = re.compile(r"^rung_(\d+)$")
_JOB_FILE = re.compile(r"^job_(\d+)\.json$")


def rung_dir(records_dir: Path, rung: int) -> Path:
    return Path(records_dir) / f"rung_{rung:04d}"


def job_file(directory: Path, job: int) -> Path:
    return directory / f"job_{job:06d}.json"


@dataclass(frozen=True)
class RungRecord:
    """One job's score and the decision taken at one rung (immutable once written)."""

    job: int
    rung: int
    rule: str
    #: the job's score (the mean of its runs' scores); None when no run logged one
    score: float | None
    decision: str
    reason: str
    #: each learning run's score at the rung (None: it logged none)
    run_scores: tuple[float | None, ...] = ()
    cutoff: float | None = None
    #: the other jobs' scores the decision compared against, by job id
    compared: Mapping[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "rung": self.rung,
            "rule": self.rule,
            "score": self.score,
            "run_scores": list(self.run_scores),
            "decision": self.decision,
            "reason": self.reason,
            "cutoff": self.cutoff,
            "compared": {str(job): s for job, s in sorted(self.compared.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RungRecord:
        score, cutoff = data.get("score"), data.get("cutoff")
        return cls(
            job=int(data["job"]),
            rung=int(data["rung"]),
            rule=str(data["rule"]),
            score=None if score is None else float(score),
            decision=str(data["decision"]),
            reason=str(data.get("reason", "")),
            run_scores=tuple(None if s is None else float(s) for s in data.get("run_scores", ())),
            cutoff=None if cutoff is None else float(cutoff),
            compared={int(job): float(s) for job, s in (data.get("compared") or {}).items()},
        )


def _read(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        logger.warning("skipping %s: %s", path, err)
        return None


def _record(path: Path) -> RungRecord | None:
    data = _read(path)
    if not isinstance(data, dict):
        return None
    try:
        return RungRecord.from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        logger.warning("skipping %s: %s", path, err)
        return None


def decision_of(records_dir: Path, job: int, rung: int) -> RungRecord | None:
    """The decision recorded for ``job`` at ``rung``, if one was taken."""
    return _record(job_file(rung_dir(records_dir, rung), job))


def write_decision(records_dir: Path, record: RungRecord) -> RungRecord:
    """Record ``record`` unless a decision for its job and rung exists; return the kept one."""
    directory = rung_dir(records_dir, record.rung)
    directory.mkdir(parents=True, exist_ok=True)
    path = job_file(directory, record.job)
    if write_once_json(path, record.to_dict()):
        return record
    kept = _record(path)
    if kept is None:  # unreadable: the one written is the only decision there is
        raise OSError(f"{path} exists but cannot be read; move it away to decide again")
    return kept


def scores_at(records_dir: Path, rung: int, exclude: int | None = None) -> dict[int, float]:
    """The finite scores recorded at ``rung`` so far, by job (``exclude``: leave one out)."""
    directory = rung_dir(records_dir, rung)
    found: dict[int, float] = {}
    if not directory.is_dir():
        return found
    for path in directory.iterdir():
        match = _JOB_FILE.match(path.name)
        if match is None or int(match[1]) == exclude:
            continue
        record = _record(path)
        if record is not None and record.score is not None and math.isfinite(record.score):
            found[record.job] = record.score
    return found


def mark_finished(records_dir: Path, job: int, score: float | None) -> None:
    """``job`` trained every iteration (the median rule counts such jobs before it acts)."""
    directory = Path(records_dir) / FINISHED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    write_once_json(job_file(directory, job), {"job": job, "score": score})


def finished_jobs(records_dir: Path) -> int:
    """How many jobs trained every iteration."""
    directory = Path(records_dir) / FINISHED_DIR
    if not directory.is_dir():
        return 0
    return sum(1 for p in directory.iterdir() if _JOB_FILE.match(p.name))


def all_records(records_dir: Path) -> list[RungRecord]:
    """Every decision recorded, by rung then job (for the report)."""
    found = []
    root = Path(records_dir)
    if not root.is_dir():
        return found
    for directory in sorted(root.iterdir()):
        if not (_RUNG_DIR.match(directory.name) and directory.is_dir()):
            continue
        for path in sorted(directory.iterdir()):
            if _JOB_FILE.match(path.name) and (record := _record(path)) is not None:
                found.append(record)
    return sorted(found, key=lambda r: (r.rung, r.job))
