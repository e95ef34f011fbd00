"""The job loop: state -> next step -> learning command -> state, reported to cluster_utils.

One cluster job runs one step (a training iteration of one attempt of one learning run)
and exits for resume, so long trainings become chains of short jobs; run by hand, the same
loop runs every step in one process. The state is saved after every step in one place
(``run``), and the loop talks to cluster_utils only through the ``Server`` protocol, so
tests drive it in-process with a fake server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from rl_relay import exit_codes
from rl_relay.job import preemption, retention
from rl_relay.job.boundary import Action
from rl_relay.job.client import Server
from rl_relay.job.config import ConfigError, JobConfig
from rl_relay.job.outcome import apply
from rl_relay.job.reward import NoRewardError, RewardColumnError, read_reward
from rl_relay.job.state import State, StateError
from rl_relay.job.state_file import load_state, save_state
from rl_relay.job.step import run_step
from rl_relay.layout import StepPaths
from rl_relay.metrics import MEAN_REWARD, STD_REWARD, job_metrics

logger = logging.getLogger("rl_relay.job.run_learning")


def fill_missing_rewards(job: JobConfig, state: State) -> State:
    """Read rewards of runs that finished while reward_column was wrong (now fixed)."""
    for run in state.runs:
        if run.done and run.reward is None:
            if not run.reward_source:
                raise StateError(
                    f"{job.paths.state}: run {run.run} is done but its reward_source is"
                    " empty, so its reward cannot be read; move the file away to start the"
                    " job over"
                )
            try:
                reward = read_reward(
                    Path(run.reward_source),
                    job.params.reward_column,
                    job.params.reward_window,
                    run.earlier_progress,
                )
            except (NoRewardError, RewardColumnError) as err:
                raise ConfigError(str(err)) from None
            state = state.with_reward(run.run, reward)
    return state


def give_up_message(job: JobConfig, state: State) -> str:
    run = state.gave_up()
    assert run is not None
    lines = [
        f"learning run {run.run} failed {len(run.failures)} time(s) (max_attempts="
        f"{job.plan.max_attempts}); the job gives up:"
    ]
    for f in run.failures:
        lines.append(
            f"  attempt {f.attempt} (seed {f.seed}), iteration {f.iteration}: {f.reason};"
            f" logs: {StepPaths(Path(f.run_dir)).stderr}"
        )
    lines.append(
        f"Raise max_attempts and start the job again to retry; {job.paths.state} keeps"
        " the finished runs."
    )
    return "\n".join(lines)


def _give_up(server: Server, job: JobConfig, state: State) -> int:
    message = give_up_message(job, state)
    if job.boundary is not None:  # e.g. the rest of a PBT population stops waiting for it
        job.boundary.give_up(state, message.splitlines()[0])
    return fail(server, message)


def _prune(job: JobConfig, state: State) -> None:
    """Remove the checkpoints the saved ``state`` no longer needs (``keep_checkpoints``)."""
    if job.params.keep_checkpoints != retention.LATEST:
        return
    if job.boundary is not None and job.boundary.keeps_checkpoints:
        return
    retention.prune(job.paths, state)


def fail(server: Server, message: str) -> int:
    logger.error("%s", message)
    server.report_error(message)
    return exit_codes.FAILURE


def _resume(server: Server, job: JobConfig, why: str) -> int:
    """Exit for resume: cluster_utils starts the job again; by hand, the user does."""
    if server.connected:
        logger.info("%s; exiting for resume, cluster_utils starts the next step", why)
        server.exit_for_resume()
    else:
        logger.warning(
            "%s; %s keeps the progress, run the same command again to continue",
            why,
            job.paths.state,
        )
    return exit_codes.RESUME


def run(job: JobConfig, server: Server, stop: Callable[[], bool] = preemption.requested) -> int:
    """Run steps until the job is done, must resume in a new cluster job, or fails.

    ``stop`` says whether a preemption signal came while no step was running.
    """
    try:
        state = load_state(job.paths.state, job.plan, job.identity())
        state = fill_missing_rewards(job, state)
    except (StateError, ConfigError) as err:
        return fail(server, str(err))
    save_state(job.paths.state, state)  # the job's identity, from the first start on
    while True:
        if state.gave_up() is not None:
            return _give_up(server, job, state)
        step = state.next_step()
        if step is None:
            break
        if stop():
            return _resume(server, job, "stopped by a signal before the next step")
        if job.boundary is not None:
            state, action = job.boundary.before_step(state, step)
            save_state(job.paths.state, state)  # the decision, before anything acts on it
            _prune(job, state)
            if action is Action.WAIT:
                if server.connected:
                    return _resume(server, job, "waiting at an iteration boundary")
                continue  # by hand: look again (before_step polls a few seconds first)
            if action is Action.STOPPED:
                continue
            step = state.next_step()
            assert step is not None
        run_state = state.current()
        assert run_state is not None
        replayed = job.replayed_hyperparameters(step.iteration)
        if job.replay and not step.continuing and replayed != run_state.hyperparameters:
            # a replayed PBT schedule: this iteration's hyperparameters, set before it starts
            state = state.decided_start(step.iteration, replayed, step.load_path)
            save_state(job.paths.state, state)
            step, run_state = state.next_step(), state.current()
            assert step is not None and run_state is not None
        try:
            done = run_step(job, run_state, step)
        except ConfigError as err:
            return fail(server, str(err))
        state = apply(state, step, done.outcome, done.record)
        save_state(job.paths.state, state)
        _prune(job, state)
        server.announce_fraction_finished(state.fraction_finished())
        if done.outcome.config_error is not None:
            return fail(server, done.outcome.config_error)
        if state.gave_up() is not None:
            return _give_up(server, job, state)
        if state.finished:
            break
        if server.connected:
            return _resume(server, job, f"{step.dir_name} is over")
        if done.result.preempted or stop():
            return _resume(server, job, "stopped by a signal")
    if job.boundary is not None:
        job.boundary.finish(state)
    result = job_metrics(
        state.rewards(),
        state.failed_attempts,
        state.resumes,
        env_steps=state.env_steps,
        iterations_done=state.iterations_done,
        stopped_early=state.stopped,
    )
    logger.info(
        "all %d learning runs done: mean %s = %g, std %g, %d failed attempt(s)",
        job.plan.runs,
        job.params.reward_column,
        result[MEAN_REWARD],
        result[STD_REWARD],
        state.failed_attempts,
    )
    server.finalize(result)
    return exit_codes.SUCCESS
