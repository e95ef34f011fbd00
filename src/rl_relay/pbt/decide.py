"""The exploit/explore decision of one member at one boundary (pure, deterministic).

Ray Tune's ``PopulationBasedTraining`` rules: rank the members that reached the boundary by
score; the bottom ``quantile_fraction`` copies a member of the top ``quantile_fraction``
(model and hyperparameters) and explores; everyone else keeps going. Each quantile holds
``ceil(n * quantile_fraction)`` members, at most ``floor(n / 2)``, so with two or more
members and a positive fraction each holds at least one and they never overlap (a member in
both would not be exploited).

Determinism: ties in score are broken by member id (the lower id ranks higher), and every
random draw (the donor, then the explore step) comes from a generator seeded by ``(seed,
boundary, member)`` alone. The same records give the same decision in any process, in any
order, at any time, which makes a synchronous PBT reproducible bit for bit on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rl_relay.pbt.explore import DECIDE_STREAM, ParamSpace, explore, rng_for
from rl_relay.pbt.records import Record
from rl_relay.pbt.settings import PBTSettings

KEEP = "keep"
EXPLOIT = "exploit"


@dataclass(frozen=True)
class Decision:
    """What ``member`` does after ``boundary`` (finished training iterations)."""

    member: int
    boundary: int
    action: str  # KEEP or EXPLOIT
    #: the hyperparameters of the next segment (the member's own on KEEP)
    hyperparameters: Mapping[str, Any]
    donor: int | None = None
    #: the donor's checkpoint (save_path prefix) to continue from, on EXPLOIT
    donor_checkpoint: str | None = None
    #: the member ids ranked best first, and the two quantiles (for the records and report)
    ranking: tuple[int, ...] = field(default_factory=tuple)
    top: tuple[int, ...] = field(default_factory=tuple)
    bottom: tuple[int, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "boundary": self.boundary,
            "action": self.action,
            "hyperparameters": dict(self.hyperparameters),
            "donor": self.donor,
            "donor_checkpoint": self.donor_checkpoint,
            "ranking": list(self.ranking),
            "top": list(self.top),
            "bottom": list(self.bottom),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            member=int(data["member"]),
            boundary=int(data["boundary"]),
            action=str(data["action"]),
            hyperparameters=dict(data["hyperparameters"]),
            donor=None if data.get("donor") is None else int(data["donor"]),
            donor_checkpoint=data.get("donor_checkpoint"),
            ranking=tuple(data.get("ranking", ())),
            top=tuple(data.get("top", ())),
            bottom=tuple(data.get("bottom", ())),
        )


def rank(records: Iterable[Record], minimize: bool = False) -> list[Record]:
    """The records that take part (ok or stopped, with a finite score), best first."""
    usable = [
        r
        for r in records
        if r.status != "failed" and r.score is not None and math.isfinite(r.score)
    ]
    return sorted(usable, key=lambda r: (r.score if minimize else -r.score, r.member))


def quantiles(ranked: Sequence[Record], fraction: float) -> tuple[list[Record], list[Record]]:
    """(top, bottom) of a best-first ranking, Ray's sizes."""
    n = len(ranked)
    if n < 2:
        return [], []
    size = math.ceil(n * fraction)
    if size > n / 2:
        size = n // 2
    if size == 0:
        return [], []
    return list(ranked[:size]), list(ranked[n - size :])


def _ids(records: Iterable[Record]) -> tuple[int, ...]:
    return tuple(r.member for r in records)


def decide(
    records_of_boundary: Iterable[Record],
    member: int,
    settings: PBTSettings,
    space: Sequence[ParamSpace],
    minimize: bool = False,
) -> Decision:
    """Keep, or exploit a top member and explore its hyperparameters.

    ``records_of_boundary``: the records of one boundary (other boundaries' are an error);
    failed members take no part. A member without a usable record of its own keeps going.
    """
    records = list(records_of_boundary)
    boundaries = {r.boundary for r in records}
    own = [r for r in records if r.member == member]
    if len(boundaries) > 1 or not own:
        raise ValueError(
            f"decide() for member {member} needs its own record and those of one boundary,"
            f" got boundaries {sorted(boundaries)}"
        )
    boundary = own[0].boundary
    ranked = rank(records, minimize)
    top, bottom = quantiles(ranked, settings.quantile_fraction)
    common = {
        "member": member,
        "boundary": boundary,
        "ranking": _ids(ranked),
        "top": _ids(top),
        "bottom": _ids(bottom),
    }
    if member not in _ids(bottom) or member in _ids(top):
        return Decision(action=KEEP, hyperparameters=dict(own[0].hyperparameters), **common)
    rng = rng_for(settings.seed, DECIDE_STREAM, boundary, member)
    donor = top[int(rng.integers(len(top)))]
    hyperparameters = explore(
        donor.hyperparameters,
        space,
        rng,
        settings.resample_probability,
        settings.perturbation_factors,
    )
    return Decision(
        action=EXPLOIT,
        hyperparameters=hyperparameters,
        donor=donor.member,
        donor_checkpoint=donor.checkpoint,
        **common,
    )
