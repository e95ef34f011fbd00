"""A member that died without giving up: the driver records its failure for it.

A member that fails for good records that itself (``MemberBoundary.give_up``), so the
others stop waiting for it at the next boundary. One that is killed (``kill -9``, the
out-of-memory killer, ``scancel``, a lost node) cannot; the driver, which sees the job end
without a word (``hpo.job_ends``), calls ``record_dead`` with the job's parameters. The
record is the same write-once FAILED record a member writes, so a member that did record
its failure keeps its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rl_relay.job.state import StateError
from rl_relay.job.state_file import read_state
from rl_relay.layout import JobPaths
from rl_relay.metrics import DEFAULT_REWARD_COLUMN
from rl_relay.paramtree import lookup, subtree
from rl_relay.pbt import records as rec
from rl_relay.pbt.member import record_failure
from rl_relay.pbt.spec import PARAM, MemberSpec


def is_member(params: Mapping[str, Any]) -> bool:
    return bool(subtree(params, PARAM))


def where_it_was(
    working_dir: Path | None, sampled: Mapping[str, Any]
) -> tuple[int, Mapping[str, Any]]:
    """The training iteration the member was in and its hyperparameters then, from its
    ``restarts.json``; (0, ``sampled``) when there is none to read."""
    if working_dir is None:
        return 0, sampled
    try:
        state = read_state(JobPaths(working_dir).state)
    except (StateError, OSError, ValueError, KeyError, TypeError):
        return 0, sampled
    run = state.current() or (state.runs[0] if state.runs else None)
    if run is None:
        return 0, sampled
    return run.iteration, run.hyperparameters or sampled


def record_dead(params: Mapping[str, Any], reason: str) -> rec.Record | None:
    """Record the member whose job parameters are ``params`` as failed (None when the job is
    no PBT member)."""
    if not is_member(params):
        return None
    spec = MemberSpec.from_job_params(
        params,
        int(lookup(params, "training_iterations", 1)),
        str(lookup(params, "reward_column", DEFAULT_REWARD_COLUMN)),
    )
    sampled = {s.param: lookup(params, s.param) for s in spec.space}
    working_dir = lookup(params, "working_dir")
    iteration, hyperparameters = where_it_was(Path(working_dir) if working_dir else None, sampled)
    return record_failure(spec, iteration, f"the member's job died: {reason}", hyperparameters)
