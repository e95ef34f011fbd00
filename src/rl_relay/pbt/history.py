"""What happened in a population, read from its records and decisions (pure).

For the report and the re-evaluation: scores over the boundaries, who copied whom, the
final population, the best member and its hyperparameter schedule. A member that
exploited a donor at boundary ``b`` continued the donor's training, so its schedule is the
donor's schedule up to ``b`` followed by its own (Ray's ``PopulationBasedTrainingReplay``
replays the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rl_relay.pbt.records import FAILED, Record


@dataclass(frozen=True)
class Segment:
    """Training iterations ``start`` to ``end - 1`` (0-based), trained by ``member``."""

    start: int
    end: int
    member: int
    hyperparameters: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_iteration": self.start,
            "end_iteration": self.end,
            "member": self.member,
            "hyperparameters": dict(self.hyperparameters),
        }


@dataclass(frozen=True)
class ExploitEvent:
    boundary: int
    member: int
    donor: int


def _by_member(records: Iterable[Record]) -> dict[int, list[Record]]:
    found: dict[int, list[Record]] = {}
    for record in sorted(records, key=lambda r: (r.member, r.boundary)):
        found.setdefault(record.member, []).append(record)
    return found


def score_table(records: Iterable[Record]) -> dict[int, list[tuple[int, float | None, str]]]:
    """member -> ``(boundary, score, status)`` in boundary order."""
    return {
        member: [(r.boundary, r.score, r.status) for r in rs]
        for member, rs in _by_member(records).items()
    }


def exploit_events(decisions: Iterable[Mapping[str, Any]]) -> list[ExploitEvent]:
    """Every exploit, by boundary then member."""
    events = [
        ExploitEvent(int(d["boundary"]), int(d["member"]), int(d["donor"]))
        for d in decisions
        if d.get("action") == "exploit" and d.get("donor") is not None
    ]
    return sorted(events, key=lambda e: (e.boundary, e.member))


def final_population(records: Iterable[Record]) -> dict[int, Record]:
    """Each member's latest record."""
    return {member: rs[-1] for member, rs in _by_member(records).items()}


def best_member(records: Iterable[Record], minimize: bool = False) -> int | None:
    """The member whose latest record scores best (failed members excluded; ties: lower id)."""
    final = [r for r in final_population(records).values() if r.status != FAILED]
    if not final:
        return None
    best = min(final, key=lambda r: (r.score if minimize else -r.score, r.member))  # type: ignore[operator]
    return best.member


def schedule(
    records: Iterable[Record],
    decisions: Iterable[Mapping[str, Any]],
    member: int,
    until: int | None = None,
) -> list[Segment]:
    """The hyperparameters that produced ``member``'s model at boundary ``until`` (default:
    its latest record), following its exploits back through the donors."""
    records = list(records)
    exploits = {(e.member, e.boundary): e.donor for e in exploit_events(decisions)}
    own = [r for r in _by_member(records).get(member, []) if r.status != FAILED]
    if until is not None:
        own = [r for r in own if r.boundary <= until]
    segments: list[Segment] = []
    for i in range(len(own) - 1, -1, -1):
        start = own[i - 1].boundary if i > 0 else 0
        segments.insert(0, Segment(start, own[i].boundary, member, own[i].hyperparameters))
        donor = exploits.get((member, start))
        if start > 0 and donor is not None:
            return schedule(records, decisions, donor, until=start) + segments
    return segments


def per_iteration(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    """The hyperparameters of every training iteration, 0 to the schedule's end."""
    return [dict(s.hyperparameters) for s in segments for _ in range(s.start, s.end)]
