"""Run one step: prepare its directory, write its configs, run the learning command, judge it.

A step that is run again after a kill or a preemption without checkpoint starts from clean
outputs, and one that continues its own checkpoint has its ``progress.csv`` cut back to
where that checkpoint was taken, so every log a job leaves is what an uninterrupted run
writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import rl_relay
from rl_relay import exit_codes
from rl_relay.job.config import ConfigError, JobConfig, step_configs, with_overrides
from rl_relay.job.outcome import Facts, Outcome, StepRecord, Verdict, classify, describe_exit
from rl_relay.job.overrides import collect_overrides
from rl_relay.job.reward import NoRewardError, RewardColumnError, last_number, read_reward
from rl_relay.job.state import RunState, Step
from rl_relay.job.supervise import ChildResult, run_supervised
from rl_relay.job.templates import write_configs
from rl_relay.layout import RESUME_INFO_SUFFIX, StepPaths
from rl_relay.metrics import TIMESTEPS_COLUMN

logger = logging.getLogger("rl_relay.job.run_learning")


def checkpoint_files(save_path: Path) -> list[Path]:
    """Every file of the checkpoint ``save_path``: names starting with its basename."""
    if not save_path.parent.is_dir():
        return []
    return sorted(
        p for p in save_path.parent.iterdir() if p.name.startswith(save_path.name) and p.is_file()
    )


_AT_TIMESTEPS = re.compile(r"^at (\d+) timesteps$")


def marker_timesteps(marker: str | None) -> int | None:
    """The timestep counter a checkpoint marker names (``at N timesteps``), if it does."""
    match = _AT_TIMESTEPS.match(marker or "")
    return int(match[1]) if match else None


def timesteps_at(marker: str | None, progress: Path) -> int | None:
    """The learner's timestep counter at a checkpoint: what its marker says (the default
    learner's), else the last ``time/total_timesteps`` logged in ``progress``."""
    found = marker_timesteps(marker)
    if found is None:
        logged = last_number(progress, TIMESTEPS_COLUMN)
        found = int(logged) if logged is not None else None
    return found


def trained_env_steps(start: int | None, marker_after: str | None, progress: Path) -> int:
    """Env steps one step trained: the learner's counter at its end minus ``start``, the
    counter of the checkpoint it loaded (None: from scratch); 0 when it logs no counter."""
    end = timesteps_at(marker_after, progress)
    return 0 if end is None else max(end - (start or 0), 0)


def checkpoint_marker(save_path: Path) -> str | None:
    """What the checkpoint at ``save_path`` has reached, to tell whether a resume advanced.

    The learner's timestep counter where it says (the default learner's ``.resume.json``),
    else a digest of the checkpoint's files; None when there are none.
    """
    info = Path(str(save_path) + RESUME_INFO_SUFFIX)
    try:
        timesteps = json.loads(info.read_text(encoding="utf-8"))["num_timesteps"]
        return f"at {int(timesteps)} timesteps"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    files = checkpoint_files(save_path)
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return f"files {digest.hexdigest()[:16]}"


def prepare_step_dir(paths: StepPaths, step: Step, run: RunState) -> None:
    """Clean outputs for a step run from its start; a continued one's log cut back."""
    if step.continuing:
        limit = run.resume_log_bytes
        if limit is not None and paths.progress.exists() and paths.progress.stat().st_size > limit:
            logger.info("cutting %s back to its checkpoint", paths.progress)
            with open(paths.progress, "r+b") as f:
                f.truncate(limit)
        return
    if paths.dir.exists():
        stale = [p for p in paths.dir.iterdir() if not _holds(p, step.load_path)]
        if stale:
            logger.info(
                "%s ran before without finishing: starting it from clean outputs", paths.name
            )
        for path in stale:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    paths.dir.mkdir(parents=True, exist_ok=True)


def _holds(entry: Path, load_path: str) -> bool:
    """Whether ``entry`` of a step directory holds the checkpoint the step starts from
    (PBT copies a donor's checkpoint into the next step's directory before it runs)."""
    if not load_path:
        return False
    load = Path(load_path)
    if entry.is_dir() and load.is_relative_to(entry):
        return True
    return entry.parent == load.parent and entry.name.startswith(load.name)


def learning_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The learning command's environment: unbuffered output, and this rl_relay first on
    the path, so the default learner runs the code of the checkout the job runs (the
    wrappers import the checkout's ``src/``), not an older copy installed in an image."""
    package_root = str(Path(rl_relay.__file__).resolve().parent.parent)
    path = [package_root, *(p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {**environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}


def _refusal(stderr: Path) -> str:
    """What the learner wrote after "configuration error:" (the default learner's words), or
    the last lines of its stderr."""
    text = stderr.read_text(encoding="utf-8", errors="replace") if stderr.exists() else ""
    head, found, rest = text.rpartition("configuration error:")
    return (rest if found else text).strip()[-2000:] or _tail(stderr)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return "\n    ".join(text[-lines:])


@dataclass(frozen=True)
class StepRun:
    """A finished step: its verdict, where its files are, how its process ended."""

    outcome: Outcome
    record: StepRecord
    result: ChildResult


def run_step(job: JobConfig, run: RunState, step: Step) -> StepRun:
    """Run one step to its end and judge it (the state is the caller's to update).

    Raises ConfigError when the learning command cannot be started at all, and OSError
    when the step's files cannot be written (disk full, read-only working directory).
    """
    paths = job.paths.step(step.run, step.iteration, step.attempt)
    if step.hyperparameters:  # PBT's explored values for this part of the run
        job = with_overrides(job, collect_overrides(step.hyperparameters))
    marker_before = run.checkpoint_marker if step.continuing else ""
    if step.load_path and not step.continuing:
        marker_before = checkpoint_marker(Path(step.load_path)) or ""
    start = None  # the counter the step starts from, read before its log grows
    if step.load_path:
        start = timesteps_at(marker_before, StepPaths(Path(step.load_path).parent).progress)
    prepare_step_dir(paths, step, run)
    main_config = write_configs(paths, step_configs(job, step, paths))
    logger.info(
        "%s %s (run %d/%d, iteration %d/%d, attempt %d, seed %d)",
        "continuing" if step.continuing else "starting",
        step.dir_name,
        step.run + 1,
        job.plan.runs,
        step.iteration + 1,
        job.plan.iterations,
        step.attempt + 1,
        step.seed,
    )
    # Opened here, before the command starts: a disk that is full is not a bad command.
    for log in (paths.stdout, paths.stderr):
        with open(log, "ab"):
            pass
    timeout = job.params.learning_timeout
    try:
        result = run_supervised(
            [*job.params.learning_command, str(main_config)],
            stdout_path=paths.stdout,
            stderr_path=paths.stderr,
            timeout=timeout,
            env=learning_environment(os.environ),
        )
    except OSError as err:
        raise ConfigError(
            f"learning_command {list(job.params.learning_command)!r} cannot be started: {err}"
        ) from None
    logger.info(
        "%s %s after %.1f s",
        step.dir_name,
        describe_exit(result.returncode, result.timed_out, timeout),
        result.duration,
    )
    last = step.iteration + 1 >= job.plan.iterations
    facts = Facts(
        returncode=result.returncode,
        timed_out=result.timed_out,
        forwarded=result.forwarded,
        timeout=timeout,
        last_iteration=last,
        checkpoint_marker=checkpoint_marker(paths.save_path),
        marker_before=marker_before,
        stalled_resumes=run.stalled_resumes,
    )
    if result.returncode == exit_codes.CONFIG_ERROR:
        facts = replace(facts, refusal=_refusal(paths.stderr))
    if result.returncode == 0 and not result.timed_out and last:
        try:
            facts = _with_reward(
                facts,
                paths,
                job.params.reward_column,
                job.params.reward_window,
                run.earlier_progress[: step.iteration],
            )
        except RewardColumnError as err:
            facts = replace(facts, column_problem=str(err))
    outcome = classify(facts)
    record = StepRecord(
        save_path=str(paths.save_path),
        progress=str(paths.progress),
        run_dir=str(paths.dir),
        log_bytes=paths.progress.stat().st_size if paths.progress.exists() else None,
        checkpoint_marker=facts.checkpoint_marker or "",
        env_steps=trained_env_steps(start, facts.checkpoint_marker, paths.progress),
    )
    _log_outcome(step, outcome, paths, result)
    return StepRun(outcome, record, result)


def _with_reward(
    facts: Facts, paths: StepPaths, column: str, window: int, earlier: Sequence[str]
) -> Facts:
    try:
        reward = read_reward(paths.progress, column, window, earlier)
    except NoRewardError as err:
        return replace(facts, reward_problem=str(err))
    return replace(facts, reward=reward)


def _log_outcome(step: Step, outcome: Outcome, paths: StepPaths, result: ChildResult) -> None:
    if result.ended:
        logger.warning(
            "%s left %d process(es) behind, ended: %s",
            step.dir_name,
            len(result.ended),
            ", ".join(result.ended),
        )
    if outcome.verdict is Verdict.FAILED:
        tail = _tail(paths.stderr)
        logger.error(
            "attempt failed: %s %s%s",
            step.dir_name,
            outcome.reason,
            f"; last lines of its stderr:\n    {tail}" if tail else "",
        )
    elif outcome.verdict is Verdict.PREEMPTED:
        if outcome.checkpoint:
            logger.info("%s checkpointed to resume later", step.dir_name)
        else:
            logger.warning(
                "%s was stopped by a preemption signal without a checkpoint", step.dir_name
            )
    elif outcome.reward is not None:
        logger.info("learning run %d finished with reward %g", step.run, outcome.reward)
