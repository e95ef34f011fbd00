"""The population directory: one write-once JSON file per member per boundary.

Members are separate cluster jobs that may run on different nodes and be killed at any
moment, so they share nothing but files, and no file is ever written by two jobs or
rewritten: member ``m`` writes ``record_b<boundary>_m<m>.json`` (its score, hyperparameters,
checkpoint and lineage after ``boundary`` finished training iterations) and
``decision_b<boundary>_m<m>.json`` (what it decided there). Each is created atomically and
only if absent (temporary file, fsync, rename to a staging name, then a hard link to the
final name, which fails when the name exists): a restarted or duplicated member finds its
first record or decision and keeps it, so it takes the same decision again.

Readers skip temporary and staging files (their names start with ``.``) and any file that
does not parse, so a population directory can be read at any moment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_relay.atomic import write_once_json
from rl_relay.paramtree import plain

logger = logging.getLogger(__name__)

OK, STOPPED, FAILED = "ok", "stopped", "failed"
STATUSES = (OK, STOPPED, FAILED)
_NAME = re.compile(r"^(record|decision)_b(\d+)_m(\d+)\.json$")


def record_name(boundary: int, member: int) -> str:
    return f"record_b{boundary:06d}_m{member:04d}.json"


def decision_name(boundary: int, member: int) -> str:
    return f"decision_b{boundary:06d}_m{member:04d}.json"


@dataclass(frozen=True)
class Record:
    """A member after ``boundary`` finished training iterations (immutable once written)."""

    member: int
    #: finished training iterations (1-based: the record after iteration 0 has boundary 1)
    boundary: int
    #: OK (reached the boundary, goes on), STOPPED (reached a stop threshold or the last
    #: iteration), FAILED (gave up on its way to this boundary; no score)
    status: str
    score: float | None
    #: the hyperparameters it trained with since its previous boundary
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    #: the save_path prefix of the checkpoint at this boundary (None when failed)
    checkpoint: str | None = None
    #: ``(boundary, donor)`` of every exploit this member made before this boundary
    lineage: tuple[tuple[int, int], ...] = ()
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, not {self.status!r}")
        if self.status != FAILED and (self.score is None or not math.isfinite(self.score)):
            raise ValueError(f"a {self.status} record needs a finite score, not {self.score!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "boundary": self.boundary,
            "status": self.status,
            "score": self.score,
            "hyperparameters": plain(dict(self.hyperparameters)),
            "checkpoint": self.checkpoint,
            "lineage": [list(event) for event in self.lineage],
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        score = data.get("score")
        return cls(
            member=int(data["member"]),
            boundary=int(data["boundary"]),
            status=str(data["status"]),
            score=None if score is None else float(score),
            hyperparameters=dict(data.get("hyperparameters") or {}),
            checkpoint=data.get("checkpoint"),
            lineage=tuple((int(b), int(d)) for b, d in data.get("lineage") or ()),
            reason=data.get("reason"),
        )


def read_json(path: Path) -> Any | None:
    """The parsed file, or None (and a warning) when it is unreadable or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        logger.warning("skipping %s: %s", path, err)
        return None


def write_record(population_dir: Path, record: Record) -> Record:
    """Write ``record`` unless this member already has one at this boundary; return the kept one."""
    path = Path(population_dir) / record_name(record.boundary, record.member)
    if not write_once_json(path, record.to_dict()):
        kept = read_record(population_dir, record.boundary, record.member)
        if kept is not None:
            if kept != record:
                logger.info(
                    "member %d already has a record at boundary %d; keeping it (%s)",
                    record.member,
                    record.boundary,
                    path,
                )
            return kept
    return record


def read_record(population_dir: Path, boundary: int, member: int) -> Record | None:
    data = read_json(Path(population_dir) / record_name(boundary, member))
    return _record(data, population_dir)


def _record(data: Any, where: Path) -> Record | None:
    if data is None:
        return None
    try:
        return Record.from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        logger.warning("skipping a malformed record in %s: %s", where, err)
        return None


def _files(population_dir: Path, kind: str) -> list[tuple[int, int, Path]]:
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(population_dir):
            match = _NAME.match(entry.name)
            if match and match[1] == kind:
                found.append((int(match[2]), int(match[3]), Path(entry.path)))
    return sorted(found)


def read_records(population_dir: Path) -> list[Record]:
    """Every readable record, by boundary then member."""
    records = []
    for _, _, path in _files(Path(population_dir), "record"):
        record = _record(read_json(path), path)
        if record is not None:
            records.append(record)
    return records


def write_decision(population_dir: Path, member: int, boundary: int, data: Mapping) -> Mapping:
    """Write a decision unless one exists; return the one on disk (the first one made)."""
    path = Path(population_dir) / decision_name(boundary, member)
    if write_once_json(path, plain(dict(data))):
        return data
    kept = read_json(path)
    return kept if isinstance(kept, dict) else data


def read_decision(population_dir: Path, member: int, boundary: int) -> dict[str, Any] | None:
    path = Path(population_dir) / decision_name(boundary, member)
    if not path.exists():
        return None
    data = read_json(path)
    return data if isinstance(data, dict) else None


def read_decisions(population_dir: Path) -> list[dict[str, Any]]:
    """Every readable decision, by boundary then member."""
    found = []
    for _, _, path in _files(Path(population_dir), "decision"):
        data = read_json(path)
        if isinstance(data, dict):
            found.append(data)
    return found


def at_boundary(records: Iterable[Record], boundary: int) -> list[Record]:
    return [r for r in records if r.boundary == boundary]


def finished_before(records: Iterable[Record], boundary: int) -> set[int]:
    """Members that stopped or failed at or before ``boundary``: nobody waits for them there."""
    return {r.member for r in records if r.status != OK and r.boundary <= boundary}


def missing_members(records: Iterable[Record], boundary: int, population_size: int) -> list[int]:
    """The living members that have not reached ``boundary`` yet (synch waits for these).

    A member is living at ``boundary`` unless it has a STOPPED or FAILED record at or
    before it; it has reached it when it has a record there.
    """
    records = list(records)
    reached = {r.member for r in records if r.boundary == boundary}
    done = finished_before(records, boundary)
    return [m for m in range(population_size) if m not in reached and m not in done]
