"""ASHA's and the median rule's decision at one rung, from the scores recorded there (pure).

A rung is the boundary after ``rung`` trained iterations. ``score`` is the deciding job's
score there; ``others`` the scores other jobs recorded at the same rung so far (whatever
finished, stopped or still running), by job id. Larger is better unless ``minimize``.

- ``asha`` (Li et al., "A System for Massively Parallel Hyperparameter Tuning", in Ray
  Tune's stopping variant): the job goes on when its score is in the top
  ``1/reduction_factor`` of the rung's scores, its own included; no job stops before
  ``grace_iterations`` trained iterations, nor at a rung holding fewer than
  ``min_jobs_per_rung`` scores. A job below the cut-off stops at once: it is not kept
  waiting for a promotion that may never come, so it holds no slot and no disk.
- ``median`` (Golovin et al., Google Vizier; Optuna's ``MedianPruner``): the job stops when
  its score is worse than the median of the other jobs' scores at the rung, once
  ``startup_jobs`` jobs have trained to the end and from ``warmup_iterations`` trained
  iterations on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

CONTINUE = "continue"
STOP = "stop"


@dataclass(frozen=True)
class Decision:
    """What a rule decided, and everything it decided from (for the record and the report)."""

    decision: str
    reason: str
    #: the score the job was measured against (ASHA's cut-off, the median), when there was one
    cutoff: float | None = None
    compared: Mapping[int, float] = field(default_factory=dict)

    @property
    def stops(self) -> bool:
        return self.decision == STOP


def _finite(scores: Mapping[int, float]) -> dict[int, float]:
    return {job: float(s) for job, s in scores.items() if s is not None and math.isfinite(s)}


def asha(
    score: float,
    others: Mapping[int, float],
    rung: int,
    minimize: bool,
    reduction_factor: int,
    grace_iterations: int,
    min_jobs_per_rung: int,
) -> Decision:
    """ASHA (stopping variant) at ``rung``; see the module docstring."""
    compared = _finite(others)
    if rung < grace_iterations:
        return Decision(
            CONTINUE, f"within the grace of {grace_iterations} iteration(s)", None, compared
        )
    scores = [*compared.values(), score]
    if len(scores) < min_jobs_per_rung:
        return Decision(
            CONTINUE,
            f"{len(scores)} score(s) at this rung, fewer than min_jobs_per_rung"
            f" ({min_jobs_per_rung})",
            None,
            compared,
        )
    keep = 100.0 / reduction_factor
    cutoff = float(np.percentile(scores, keep if minimize else 100.0 - keep))
    better = score <= cutoff if minimize else score >= cutoff
    where = f"top 1/{reduction_factor} of {len(scores)} scores"
    if better:
        return Decision(CONTINUE, f"in the {where} (cut-off {cutoff:g})", cutoff, compared)
    return Decision(STOP, f"not in the {where} (cut-off {cutoff:g})", cutoff, compared)


def median(
    score: float,
    others: Mapping[int, float],
    rung: int,
    minimize: bool,
    finished_jobs: int,
    startup_jobs: int,
    warmup_iterations: int,
) -> Decision:
    """The median stopping rule at ``rung``; see the module docstring."""
    compared = _finite(others)
    if finished_jobs < startup_jobs:
        return Decision(
            CONTINUE,
            f"{finished_jobs} job(s) trained to the end, fewer than startup_jobs ({startup_jobs})",
            None,
            compared,
        )
    if rung < warmup_iterations:
        return Decision(
            CONTINUE, f"within the warm-up of {warmup_iterations} iteration(s)", None, compared
        )
    if not compared:
        return Decision(CONTINUE, "no other job's score at this rung yet", None, compared)
    middle = statistics.median(compared.values())
    worse = score > middle if minimize else score < middle
    where = f"the median of {len(compared)} other job(s) ({middle:g})"
    if worse:
        return Decision(STOP, f"worse than {where}", middle, compared)
    return Decision(CONTINUE, f"not worse than {where}", middle, compared)
