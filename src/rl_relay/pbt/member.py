"""The boundary step of a PBT member job: record, wait or decide, copy, continue or stop.

Contract for the job loop (one learning run per member; ``spec = MemberSpec.from_job_params(
params, training_iterations, reward_column)``):

1. Train iteration ``i`` with the hyperparameters and ``load_path`` of the current segment
   (initially: the sampled hyperparameters and a fresh start; the member's seed should be
   distinct per member, e.g. from ``member_seed``).
2. After it succeeds, call ``boundary_step(spec, IterationResult(i, score, hyperparameters,
   checkpoint, progress_csv), target_dir)``, where ``checkpoint`` is the iteration's
   ``save_path`` and ``target_dir`` a directory of the next step that the learner does not
   write into (e.g. ``<next step dir>/pbt_donor``). It returns
   - ``Continue``: train iteration ``i + 1`` with ``.hyperparameters`` from ``.load_path``
     (the member's own checkpoint, or the donor's files copied into ``target_dir``);
     store both in the job's state *before* starting the learner, and do not call
     ``boundary_step`` for this iteration again;
   - ``Wait``: other living members have not reached this boundary (``synch``): exit for
     resume without holding a slot, and call ``boundary_step`` with the same arguments when
     started again (``wait_seconds`` polls a little first, the back-off);
   - ``Stop``: the member is done (last iteration or a ``stop`` threshold): report
     ``.score`` and ``.schedule`` and finish.
3. When a run fails for good (``max_attempts`` used up), call ``record_failure`` so that the
   others stop waiting for it.

Everything ``boundary_step`` writes is write-once (``records``): called again after a kill
at any point, with the same arguments, it returns the same outcome (the copy is redone,
file by file atomically, from the same donor checkpoint).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_relay.atomic import atomic_path, write_once_json
from rl_relay.layout import PBT_SPEC
from rl_relay.paramtree import plain
from rl_relay.pbt import records as rec
from rl_relay.pbt.decide import EXPLOIT, Decision, decide
from rl_relay.pbt.history import Segment, schedule
from rl_relay.pbt.spec import PARAM, MemberError, MemberSpec, encode_job_params, member_seed

__all__ = [
    "PARAM",
    "Continue",
    "IterationResult",
    "MemberError",
    "MemberSpec",
    "Outcome",
    "Stop",
    "Wait",
    "boundary_step",
    "copy_checkpoint",
    "encode_job_params",
    "hyperparameters_for",
    "member_seed",
    "record_failure",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IterationResult:
    """A finished training iteration of a member."""

    #: 0-based training iteration that just finished
    iteration: int
    #: the last ``reward_column`` value of this iteration
    score: float
    #: the hyperparameters (cluster_utils names) it trained with
    hyperparameters: Mapping[str, Any]
    #: its save_path prefix
    checkpoint: str
    #: its progress.csv (read for ``stop`` columns other than the reward column)
    progress_csv: Path | None = None


@dataclass(frozen=True)
class Continue:
    boundary: int
    hyperparameters: Mapping[str, Any]
    load_path: str
    donor: int | None = None
    decision: Decision | None = None


@dataclass(frozen=True)
class Wait:
    boundary: int
    missing: tuple[int, ...]


@dataclass(frozen=True)
class Stop:
    boundary: int
    reason: str
    score: float
    schedule: list[Segment] = field(default_factory=list)


Outcome = Continue | Wait | Stop


def stop_reason(spec: MemberSpec, result: IterationResult) -> str | None:
    """Why the member stops after this iteration, or None."""
    if result.iteration + 1 >= spec.training_iterations:
        return f"last training iteration ({spec.training_iterations})"
    from rl_relay.job.reward import NoRewardError, RewardColumnError, read_reward

    for column, threshold in spec.settings.stop.items():
        if column == spec.reward_column:
            value = result.score
            reached = value <= threshold if spec.minimize else value >= threshold
        else:
            if result.progress_csv is None:
                continue
            try:
                value = read_reward(result.progress_csv, column)
            except (NoRewardError, RewardColumnError) as err:
                logger.warning("stop criterion %s not checked: %s", column, err)
                continue
            reached = value >= threshold
        if reached:
            return f"{column} = {value} reached the stop threshold {threshold}"
    return None


def _lineage(spec: MemberSpec, before: int) -> tuple[tuple[int, int], ...]:
    events = []
    for data in rec.read_decisions(spec.population_dir):
        if (
            data.get("member") == spec.member
            and data.get("boundary", before) < before
            and data.get("action") == EXPLOIT
        ):
            events.append((int(data["boundary"]), int(data["donor"])))
    return tuple(sorted(events))


def write_spec(spec: MemberSpec) -> None:
    write_once_json(spec.population_dir / PBT_SPEC, spec.to_dict())


def copy_checkpoint(checkpoint: str, target_dir: Path) -> str:
    """Copy (never link) every file whose name starts with the checkpoint's basename.

    ``remove_working_dirs`` may delete the donor's directory later, and the donor keeps
    training; a copy is the member's own. Each file is copied to a temporary name and
    renamed, so a kill leaves whole files. Returns the copied prefix (the new load_path).
    """
    source = Path(checkpoint)
    files = (
        sorted(p for p in source.parent.iterdir() if p.name.startswith(source.name) and p.is_file())
        if source.parent.is_dir()
        else []
    )
    if not files:
        raise MemberError(
            f"the donor checkpoint {checkpoint} has no files (was its working directory"
            " removed?); the exploit cannot be done"
        )
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    for path in files:
        with atomic_path(target_dir / path.name) as tmp:
            shutil.copy2(path, tmp)
    logger.info("copied %d files of %s into %s", len(files), checkpoint, target_dir)
    return str(target_dir / source.name)


def boundary_step(
    spec: MemberSpec,
    result: IterationResult,
    target_dir: Path,
    *,
    wait_seconds: float = 0.0,
    poll_seconds: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """What the member does after training iteration ``result.iteration`` (see the module doc).

    ``wait_seconds``: how long to poll for missing members before returning ``Wait``.
    """
    finished = result.iteration + 1
    reason = stop_reason(spec, result)
    hyperparameters = plain(dict(result.hyperparameters))
    if reason is None and not spec.settings.is_boundary(finished, spec.training_iterations):
        return Continue(finished, hyperparameters, result.checkpoint)
    spec.population_dir.mkdir(parents=True, exist_ok=True)
    write_spec(spec)
    record = rec.write_record(
        spec.population_dir,
        rec.Record(
            member=spec.member,
            boundary=finished,
            status=rec.STOPPED if reason else rec.OK,
            score=float(result.score),
            hyperparameters=hyperparameters,
            checkpoint=result.checkpoint,
            lineage=_lineage(spec, finished),
            reason=reason,
        ),
    )
    if record.status == rec.STOPPED:
        return Stop(
            finished, record.reason or "stopped", float(record.score or 0.0), _schedule(spec)
        )
    kept = rec.read_decision(spec.population_dir, spec.member, finished)
    if kept is None:
        deadline = clock() + wait_seconds
        while True:
            records = rec.read_records(spec.population_dir)
            missing = rec.missing_members(records, finished, spec.settings.population_size)
            if not spec.settings.synch or not missing:
                break
            if clock() >= deadline:
                logger.info("boundary %d: waiting for members %s", finished, missing)
                return Wait(finished, tuple(missing))
            sleep(poll_seconds)
        made = decide(
            rec.at_boundary(records, finished),
            spec.member,
            spec.settings,
            spec.space,
            spec.minimize,
        )
        kept = dict(rec.write_decision(spec.population_dir, spec.member, finished, made.to_dict()))
    decision = Decision.from_dict(kept)
    if decision.action == EXPLOIT:
        load_path = copy_checkpoint(str(decision.donor_checkpoint), target_dir)
        logger.info(
            "boundary %d: member %d exploits member %d: %s",
            finished,
            spec.member,
            decision.donor,
            decision.hyperparameters,
        )
    else:
        load_path = record.checkpoint or result.checkpoint
    return Continue(finished, dict(decision.hyperparameters), load_path, decision.donor, decision)


def record_failure(
    spec: MemberSpec, iteration: int, reason: str, hyperparameters: Mapping[str, Any]
) -> rec.Record:
    """Record that the member gave up in training iteration ``iteration``: nobody waits for it."""
    own = [r for r in rec.read_records(spec.population_dir) if r.member == spec.member]
    for record in own:
        if record.status == rec.FAILED:  # called again after a kill: already recorded
            return record
    boundary = max([iteration + 1, *(r.boundary + 1 for r in own)])
    return rec.write_record(
        spec.population_dir,
        rec.Record(
            member=spec.member,
            boundary=boundary,
            status=rec.FAILED,
            score=None,
            hyperparameters=plain(dict(hyperparameters)),
            lineage=_lineage(spec, boundary),
            reason=reason,
        ),
    )


def hyperparameters_for(
    spec: MemberSpec, iteration: int, initial: Mapping[str, Any]
) -> dict[str, Any]:
    """The hyperparameters of training iteration ``iteration``: the latest decision before it."""
    current = plain(dict(initial))
    for data in rec.read_decisions(spec.population_dir):
        if data.get("member") == spec.member and int(data["boundary"]) <= iteration:
            current = dict(data["hyperparameters"])
    return current


def _schedule(spec: MemberSpec) -> list[Segment]:
    return schedule(
        rec.read_records(spec.population_dir), rec.read_decisions(spec.population_dir), spec.member
    )
