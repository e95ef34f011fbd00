"""run_learning: state -> next step -> learning command -> state, then report to cluster_utils.

One cluster job runs one step (a training iteration of one attempt of one learning run)
and exits for resume, so long trainings become chains of short jobs; run by hand with a
parameter file, the same loop runs every step in one process. Everything a restarted job
needs is in ``working_dir/restarts.json``, saved after every step in one place (``run``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rl_relay import exit_codes, locks, preemption
from rl_relay.job_config import ConfigError, JobConfig, prepare
from rl_relay.layout import StepPaths
from rl_relay.metrics import MEAN_REWARD, STD_REWARD, job_metrics
from rl_relay.outcome import apply
from rl_relay.reward import NoRewardError, RewardColumnError, read_reward
from rl_relay.server import ClusterUtilsServer, Server
from rl_relay.state import State, StateError, load_state, save_state
from rl_relay.step import run_step

logger = logging.getLogger("rl_relay.run_learning")


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
                reward = read_reward(Path(run.reward_source), job.params.reward_column)
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
    if job.pbt is not None:  # the rest of the population stops waiting for this member
        from rl_relay.pbt import job as member

        member.give_up(job, state, message.splitlines()[0])
    return _fail(server, message)


def _fail(server: Server, message: str) -> int:
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
        return _fail(server, str(err))
    save_state(job.paths.state, state)  # the job's identity, from the first start on
    while True:
        if state.gave_up() is not None:
            return _give_up(server, job, state)
        step = state.next_step()
        if step is None:
            break
        if stop():
            return _resume(server, job, "stopped by a signal before the next step")
        if job.pbt is not None:
            from rl_relay.pbt import job as member

            state, action = member.before_step(job, state, step, member.WAIT_SECONDS)
            save_state(job.paths.state, state)
            if action is member.Action.WAIT:
                if server.connected:
                    return _resume(server, job, "waiting for the rest of the PBT population")
                continue  # by hand: look again (before_step polls a few seconds first)
            if action is member.Action.STOPPED:
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
            return _fail(server, str(err))
        state = apply(state, step, done.outcome, done.record)
        save_state(job.paths.state, state)
        server.announce_fraction_finished(state.fraction_finished())
        if done.outcome.config_error is not None:
            return _fail(server, done.outcome.config_error)
        if state.gave_up() is not None:
            return _give_up(server, job, state)
        if state.finished:
            break
        if server.connected:
            return _resume(server, job, f"{step.dir_name} is over")
        if done.result.preempted or stop():
            return _resume(server, job, "stopped by a signal")
    if job.pbt is not None:
        from rl_relay.pbt import job as member

        member.finish(job, state)
    result = job_metrics(state.rewards(), state.failed_attempts, state.resumes)
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


# -- the process: arguments, logging, errors ----------------------------------------------

_OS_HINTS = {
    errno.ENOSPC: "free disk space",
    errno.EDQUOT: "free space within your disk quota",
    errno.EACCES: "make it writable, or set working_dir to a writable directory",
    errno.EPERM: "make it writable, or set working_dir to a writable directory",
    errno.EROFS: "the filesystem is read-only: set working_dir to a writable directory",
}


def os_error_message(err: OSError, doing: str) -> str:
    """``cannot <doing>: <what> (<file>); <what to do>`` for a failed file operation."""
    where = f" ({err.filename})" if err.filename else ""
    hint = _OS_HINTS.get(err.errno or 0, "")
    return f"cannot {doing}: {err.strerror or err}{where}" + (f"; {hint}" if hint else "")


def _source_of(argv: Sequence[str]) -> str:
    """How errors name the parameters."""
    if "--parameter-dict" in argv:
        return "the job's --parameter-dict"
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in ("--job-id", "--cluster-utils-server"):
            skip = True
        elif not arg.startswith("-") and "=" not in arg:
            return arg
    return "the job parameters"


def read_params(argv: Sequence[str]) -> Any:
    """The job's parameters via cluster_utils' ``initialize_job`` (which registers the
    job with the server); raise ValueError with a message saying what is wrong."""
    from cluster_utils.client import initialize_job

    source = _source_of(argv)
    if "--parameter-dict" not in argv and Path(source).is_file():
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read the job parameters from {source}: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(
                f'{source} must hold a JSON object of parameters ({{"key": value, ...}}),'
                f" not a {type(data).__name__}"
            )
        working_dir = data.get("working_dir")
        if "working_dir" in data and not (isinstance(working_dir, str) and working_dir):
            raise ValueError(
                f"{source}: parameter 'working_dir' = {working_dir!r} is invalid: the directory"
                " the job writes into, a non-empty path"
            )
    try:
        return initialize_job(list(argv), verbose=False)
    except OSError as err:
        if err.filename is not None and str(err.filename) != source:
            raise ValueError(
                f"{source}: " + os_error_message(err, "write the job's settings (working_dir)")
            ) from None
        raise ValueError(f"cannot read the job parameters: {err}") from None
    except Exception as err:  # cluster_utils' settings errors, bad override strings
        raise ValueError(
            f"cannot read the job parameters ({source}): {err}; override strings are"
            " key=value with a Python literal as value, e.g. learning_runs_per_job=2"
        ) from None


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """Also log into ``run_learning.log``: the record of every start, step and exit of the
    job across all its cluster jobs, with full timestamps (bench/quickstart.py reads it)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def _setup_stderr_logging() -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not any(type(h) is logging.StreamHandler for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s run_learning %(levelname)s: %(message)s", "%H:%M:%S")
        )
        root.addHandler(handler)
    # A full disk must not turn every log line into a traceback on stderr.
    logging.raiseExceptions = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``wrappers/run_learning.py``; returns the exit code."""
    preemption.install()  # the wrapper did so already; for callers that did not
    argv = list(sys.argv if argv is None else argv)
    _setup_stderr_logging()
    try:
        params = read_params(argv)
    except SystemExit as err:  # argparse: bad arguments, usage printed
        return exit_codes.FAILURE if err.code else exit_codes.SUCCESS
    except ValueError as err:
        logger.error("%s", err)
        return exit_codes.FAILURE
    server = ClusterUtilsServer(params)
    try:
        job = prepare(params, _source_of(argv), Path.cwd())
    except ConfigError as err:
        return _fail(server, f"configuration error, nothing was started:\n{err}")
    try:
        with locks.hold(job.paths.lock), _log_to(job.paths.log):
            logger.info("job started (pid %d, host %s)", os.getpid(), socket.gethostname())
            code = run(job, server)
            logger.info("job ends with exit code %d", code)
            return code
    except locks.LockedError as err:
        # not sent to the server: the other process is this very job
        logger.error(
            "%s is in use by another process of this job (%s); two processes would run"
            " every step twice over the same files. Wait for it to end, or end it, then"
            " start this job again",
            job.paths.working_dir,
            err.holder,
        )
        return exit_codes.FAILURE
    except OSError as err:
        return _fail(
            server,
            os_error_message(err, "write the job's files")
            + f"; nothing done so far is lost ({job.paths.state} keeps it): start the job"
            " again once this is fixed",
        )
