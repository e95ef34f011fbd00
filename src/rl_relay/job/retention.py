"""Checkpoints that do not pile up: which files of a job's finished steps can go.

Every training iteration leaves a checkpoint in its step directory (for the default
learner: ``model.zip``, ``model.resume.pkl`` with the environments and, for SAC, the replay
buffer, ``model.resume.json``, ``model_vecnormalize.pkl``). Only the latest one of a run is
ever loaded again: the next iteration continues it, a preempted step continues its own, and
a failed attempt starts its run over from scratch. With ``keep_checkpoints: "latest"`` (the
default) the checkpoints of a run's older iterations and of its failed attempts are removed
once the state that no longer needs them is on disk (``restarts.json`` records the newer
checkpoint first), so a job killed at any moment still resumes; the last one, the run's
final model, stays. Logs, configs and outputs stay. ``"all"`` keeps every checkpoint.
A boundary that loads older checkpoints (a PBT member's exploit copies another member's)
keeps them all (``Boundary.keeps_checkpoints``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path

from rl_relay.job.state import RunState, State
from rl_relay.layout import JobPaths, StepPaths

logger = logging.getLogger("rl_relay.job.run_learning")

#: ``keep_checkpoints`` values
LATEST, ALL = "latest", "all"


def needed(state: State) -> set[str]:
    """The checkpoints (``save_path`` prefixes) some step may still load: each unfinished
    run's load path, resume path and retry point."""
    keep = set()
    for run in state.runs:
        if not run.done:
            keep.update(p for p in (run.load_path, run.resume_path, run.retry_load_path) if p)
    return keep


def removable(state: State, steps: Iterable[tuple[tuple[int, int, int], Path]]) -> list[Path]:
    """The step directories whose checkpoint no step will load again.

    A run keeps its current attempt's step in progress (and its directory's checkpoint) and,
    once done, its last trained iteration: the final model. Everything else of the run goes:
    its older iterations (the next one continued them) and its failed attempts (a retry
    starts over). Whatever the state still names (``needed``) stays in any case.
    """
    keep = needed(state)
    found = []
    for (run_index, iteration, attempt), directory in steps:
        if run_index >= len(state.runs) or str(StepPaths(directory).save_path) in keep:
            continue
        if not _kept(state.runs[run_index], iteration, attempt, state.plan.iterations):
            found.append(directory)
    return found


def _kept(run: RunState, iteration: int, attempt: int, iterations: int) -> bool:
    if attempt != run.attempt:
        return False
    if run.done:  # its final model: the last iteration, or the last before it stopped
        return iteration == (run.iteration - 1 if run.stopped else iterations - 1)
    return iteration >= run.iteration


def checkpoint_files(directory: Path) -> list[Path]:
    """The files of the checkpoint in a step directory (names starting with its save path's)."""
    save_path = StepPaths(directory).save_path
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir() if p.name.startswith(save_path.name) and p.is_file()]


def prune(paths: JobPaths, state: State) -> int:
    """Remove the checkpoints ``state`` no longer needs; returns the bytes freed.

    Call it only after ``state`` is saved: then a kill during the removal leaves files that
    the next call removes, and never a state that needs a removed file.
    """
    freed = 0
    for directory in removable(state, paths.step_dirs()):
        for path in checkpoint_files(directory):
            with contextlib.suppress(FileNotFoundError):
                size = path.stat().st_size
                path.unlink()
                freed += size
    if freed:
        logger.info("removed %.1f MB of checkpoints no step will load again", freed / 1e6)
    return freed
