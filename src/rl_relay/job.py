"""run_learning: state -> next step -> learning command -> state, then report to cluster_utils.

One cluster job runs one step (a training iteration of one attempt of one learning run)
and exits for resume, so long trainings become chains of short jobs; run by hand with a
parameter file, the same loop runs every step in one process. Everything a restarted job
needs is in ``working_dir/restarts.json``, written after every step.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rl_relay import exit_codes
from rl_relay.job_params import JobParams, ParamsError
from rl_relay.overrides import Override, OverrideError, collect_overrides, merge
from rl_relay.reward import PROGRESS_FILE, NoRewardError, RewardColumnError, read_reward
from rl_relay.state import STATE_FILE, Plan, State, StateError, Step, load_state, save_state
from rl_relay.supervise import ChildResult, run_supervised
from rl_relay.templates import TemplateError, Templates, load_templates, write_configs

logger = logging.getLogger("rl_relay.run_learning")

RL_CONFIG = "rl_config"
RL_COMMON_CONFIG = "rl_common_config"
#: Keys of rl_config the job sets for every attempt (see docs/CONTRACT.md).
MANAGED_RL_KEYS = ("load_path", "save_path", "log_path")
#: Keys of rl_common_config the job sets, where the template has them.
MANAGED_COMMON_KEYS = ("seed", "training_iteration", "training_iterations")
MODEL_NAME = "model"
LOG_DIR = "logs"
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
JOB_LOG = "run_learning.log"


class ConfigError(ValueError):
    """Wrong settings: reported at once with exit code 1 and never retried."""


class Server(Protocol):
    """The cluster_utils calls a job makes; a no-op stand-in when run by hand."""

    connected: bool

    def announce_fraction_finished(self, fraction: float) -> None: ...
    def exit_for_resume(self) -> None: ...
    def finalize(self, metrics: dict[str, float]) -> None: ...
    def report_error(self, message: str) -> None: ...


@dataclass(frozen=True)
class Job:
    """A job's checked settings: everything decided before the first step runs."""

    params: JobParams
    templates: Templates
    overrides: tuple[Override, ...]
    #: The templates with every override applied, before the per-attempt keys are set.
    merged: dict[str, Any]

    @property
    def state_path(self) -> Path:
        return self.params.working_dir / STATE_FILE

    @property
    def plan(self) -> Plan:
        p = self.params
        return Plan(p.learning_runs_per_job, p.training_iterations, p.max_attempts, p.seed)


def prepare(params: Mapping[str, Any], source: str, default_working_dir: Path) -> Job:
    """Check everything that can be checked before training; raise ConfigError with all of it."""
    try:
        job_params = JobParams.from_params(params, source, default_working_dir)
        templates = load_templates(job_params.config_templates)
        overrides = tuple(collect_overrides(params))
        merged = merge(templates.documents, list(overrides), templates.sources)
    except (ParamsError, TemplateError, OverrideError) as err:
        raise ConfigError(str(err)) from None
    problems = []
    if RL_CONFIG not in merged:
        problems.append(
            f"the template index {templates.index_path} has no {RL_CONFIG!r}; the job needs"
            f" one with the keys {', '.join(MANAGED_RL_KEYS)}"
        )
    elif not isinstance(merged[RL_CONFIG], dict) or not all(
        k in merged[RL_CONFIG] for k in MANAGED_RL_KEYS
    ):
        missing = [k for k in MANAGED_RL_KEYS if k not in (merged[RL_CONFIG] or {})]
        problems.append(
            f"{templates.source(RL_CONFIG)} lacks {', '.join(map(repr, missing))}; add them"
            ' (value "") so the job can set them per run'
        )
    for override in overrides:
        top = override.path[0].key
        if (override.template == RL_CONFIG and top in MANAGED_RL_KEYS) or (
            override.template == RL_COMMON_CONFIG and top in MANAGED_COMMON_KEYS
        ):
            setting = {"seed": "seed", "training_iterations": "training_iterations"}.get(
                str(top), "nothing (the job sets it per run)"
            )
            problems.append(
                f"parameter {override.param!r}: {override.template}.{top} is set by the job"
                f" for every run; set the fixed parameter {setting} instead"
            )
    command = job_params.learning_command
    if shutil.which(command[0]) is None:
        problems.append(
            f"learning_command {list(command)!r}: {command[0]!r} is not an executable on PATH"
            " or a path to one"
        )
    if problems:
        raise ConfigError("\n".join(problems))
    return Job(job_params, templates, overrides, merged)


def step_configs(job: Job, step: Step, run_dir: Path) -> dict[str, Any]:
    """The merged configs of one step, with the per-attempt keys set."""
    configs = {
        name: dict(doc) if isinstance(doc, dict) else doc for name, doc in job.merged.items()
    }
    rl = configs[RL_CONFIG]
    rl["load_path"] = step.load_path
    rl["save_path"] = str(run_dir / MODEL_NAME)
    rl["log_path"] = str(run_dir / LOG_DIR)
    common = configs.get(RL_COMMON_CONFIG)
    if isinstance(common, dict):
        managed = {
            "seed": step.seed,
            "training_iteration": step.iteration,
            "training_iterations": job.params.training_iterations,
        }
        for key, value in managed.items():
            if key in common:
                common[key] = value
    return configs


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return "\n    ".join(text[-lines:])


def _describe_exit(result: ChildResult, timeout: float | None) -> str:
    if result.timed_out:
        return f"ran over learning_timeout ({timeout} s) and was ended"
    if result.returncode < 0:
        return f"was killed by signal {signal.Signals(-result.returncode).name}"
    return f"exited with code {result.returncode}"


def _failed_attempt(
    state: State, step: Step, run_dir: Path, result: ChildResult, timeout: float | None
) -> tuple[State, bool]:
    reason = _describe_exit(result, timeout)
    tail = _tail(run_dir / STDERR_FILE)
    logger.error(
        "attempt failed: %s %s%s",
        step.dir_name,
        reason,
        f"; last lines of its stderr:\n    {tail}" if tail else "",
    )
    return state.failed(step, reason, str(run_dir)), result.preempted


def run_step(job: Job, state: State, step: Step) -> tuple[State, bool]:
    """Run one step and return the new state and whether a preemption signal came.

    Raises ConfigError for problems no retry can fix (the reward column does not exist,
    the command cannot be started); the state returned before that is already saved.
    """
    run_dir = job.params.working_dir / step.dir_name
    run_dir.mkdir(parents=True, exist_ok=True)
    main_config = write_configs(run_dir, step_configs(job, step, run_dir))
    save_path = str(run_dir / MODEL_NAME)
    what = "continuing" if step.continuing else "starting"
    logger.info(
        "%s %s (run %d/%d, iteration %d/%d, attempt %d, seed %d)",
        what,
        step.dir_name,
        step.run + 1,
        job.plan.runs,
        step.iteration + 1,
        job.plan.iterations,
        step.attempt + 1,
        step.seed,
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        result = run_supervised(
            [*job.params.learning_command, str(main_config)],
            stdout_path=run_dir / STDOUT_FILE,
            stderr_path=run_dir / STDERR_FILE,
            timeout=job.params.learning_timeout,
            env=env,
        )
    except OSError as err:
        raise ConfigError(
            f"learning_command {list(job.params.learning_command)!r} cannot be started: {err}"
        ) from None
    logger.info(
        "%s %s after %.1f s",
        step.dir_name,
        _describe_exit(result, job.params.learning_timeout),
        result.duration,
    )

    if result.timed_out:  # whatever the learner did when its time was up
        return _failed_attempt(state, step, run_dir, result, job.params.learning_timeout)
    if result.returncode == exit_codes.RESUME:
        logger.info("%s checkpointed to resume later", step.dir_name)
        return state.preempted(step, checkpoint=save_path), True
    if result.preempted and result.returncode in [-s for s in result.forwarded]:
        logger.warning("%s was stopped by a preemption signal without a checkpoint", step.dir_name)
        return state.preempted(step, checkpoint=None), True
    if result.returncode != 0:
        return _failed_attempt(state, step, run_dir, result, job.params.learning_timeout)

    progress = run_dir / LOG_DIR / PROGRESS_FILE
    last_iteration = step.iteration + 1 >= job.plan.iterations
    if last_iteration:
        try:
            reward = read_reward(progress, job.params.reward_column)
        except NoRewardError as err:
            logger.error("attempt failed: %s: %s", step.dir_name, err)
            return state.failed(step, str(err), str(run_dir)), result.preempted
        except RewardColumnError:
            # Keep the finished training; only the column needs fixing before a restart.
            save_state(job.state_path, state.succeeded(step, save_path, str(progress)))
            raise
        new = state.succeeded(step, save_path, str(progress)).with_reward(step.run, reward)
        logger.info("learning run %d finished with reward %g", step.run, reward)
        return new, result.preempted
    return state.succeeded(step, save_path, str(progress)), result.preempted


def fill_missing_rewards(job: Job, state: State) -> State:
    """Read rewards of runs that finished while reward_column was wrong (now fixed)."""
    for run in state.runs:
        if run.done and run.reward is None:
            try:
                reward = read_reward(Path(run.reward_source), job.params.reward_column)
            except NoRewardError as err:
                raise ConfigError(str(err)) from None
            state = state.with_reward(run.run, reward)
    return state


def metrics(state: State) -> dict[str, float]:
    """What the job reports: mean and population std (as numpy.std) of the runs' rewards."""
    rewards = state.rewards()
    return {
        "mean_eprewmean": statistics.fmean(rewards),
        "std_eprewmean": statistics.pstdev(rewards),
        "learning_runs": len(rewards),
        "failed_attempts": state.failed_attempts,
        "resumes": sum(r.resumes for r in state.runs),
    }


def give_up_message(job: Job, state: State) -> str:
    run = state.gave_up()
    assert run is not None
    lines = [
        f"learning run {run.run} failed {len(run.failures)} time(s) (max_attempts="
        f"{job.plan.max_attempts}); the job gives up:"
    ]
    for f in run.failures:
        lines.append(
            f"  attempt {f.attempt} (seed {f.seed}), iteration {f.iteration}: {f.reason};"
            f" logs: {Path(f.run_dir) / STDERR_FILE}"
        )
    lines.append(
        f"Raise max_attempts and start the job again to retry; {job.state_path} keeps"
        " the finished runs."
    )
    return "\n".join(lines)


def run(job: Job, server: Server) -> int:
    """Run steps until the job is done, must resume in a new cluster job, or fails."""
    try:
        state = fill_missing_rewards(job, load_state(job.state_path, job.plan))
    except (StateError, ConfigError) as err:
        return _fail(server, str(err))
    while True:
        step = state.next_step()
        if step is None:
            break
        try:
            state, signalled = run_step(job, state, step)
        except (ConfigError, RewardColumnError) as err:
            return _fail(server, str(err))
        save_state(job.state_path, state)
        server.announce_fraction_finished(state.fraction_finished())
        if state.gave_up() is not None:
            return _fail(server, give_up_message(job, state))
        if state.finished:
            break
        if server.connected:
            logger.info("exiting for resume; cluster_utils starts the next step as a new job")
            server.exit_for_resume()
            return exit_codes.RESUME
        if signalled:
            logger.warning(
                "stopped by a signal; %s keeps the progress, run the same command again to"
                " continue",
                job.state_path,
            )
            return exit_codes.RESUME
    if state.gave_up() is not None:
        return _fail(server, give_up_message(job, state))
    result = metrics(state)
    logger.info(
        "all %d learning runs done: mean %s = %g, std %g, %d failed attempt(s)",
        job.plan.runs,
        job.params.reward_column,
        result["mean_eprewmean"],
        result["std_eprewmean"],
        result["failed_attempts"],
    )
    server.finalize(result)
    return exit_codes.SUCCESS


def _fail(server: Server, message: str) -> int:
    logger.error("%s", message)
    server.report_error(message)
    return exit_codes.FAILURE


class ClusterUtilsServer:
    """The real cluster_utils client calls (no-ops when the job was started by hand)."""

    def __init__(self, params: Any) -> None:
        from cluster_utils.client import submission_state

        self._params = params
        self.connected = bool(submission_state.connection_active)

    def announce_fraction_finished(self, fraction: float) -> None:
        from cluster_utils.client import announce_fraction_finished

        announce_fraction_finished(fraction)

    def exit_for_resume(self) -> None:
        from cluster_utils.client import exit_for_resume

        exit_for_resume()

    def finalize(self, metrics: dict[str, float]) -> None:
        from cluster_utils.client import finalize_job

        finalize_job(metrics, self._params)

    def report_error(self, message: str) -> None:
        if not self.connected:
            return
        from cluster_utils.base.communication import MessageTypes
        from cluster_utils.client import server_communication, submission_state

        server_communication.send_message(
            MessageTypes.ERROR_ENCOUNTERED, message=(submission_state.job_id, [message])
        )


def _setup_logging(working_dir: Path | None) -> None:
    """Log to stderr and, once the working dir is known, to ``run_learning.log`` in it.

    The file gets full timestamps: it is the record of every start, step and exit of the
    job across all its cluster jobs (bench/quickstart.py reads it).
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not any(type(h) is logging.StreamHandler for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s run_learning %(levelname)s: %(message)s", "%H:%M:%S")
        )
        root.addHandler(handler)
    if working_dir is not None:
        working_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(working_dir / JOB_LOG, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
        root.addHandler(file_handler)


def _source_of(argv: Sequence[str]) -> tuple[str, Path]:
    """How errors name the parameters, and the working dir to use if none is given."""
    if "--parameter-dict" in argv:
        return "the job's --parameter-dict", Path.cwd()
    positional = [a for a in argv[1:] if not a.startswith("-") and "=" not in a]
    if positional:
        path = Path(positional[0])
        return str(path), path.resolve().parent
    return "the job parameters", Path.cwd()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``wrappers/run_learning.py``; returns the exit code."""
    argv = list(sys.argv if argv is None else argv)
    _setup_logging(None)
    from cluster_utils.client import initialize_job

    try:
        params = initialize_job(argv, verbose=False)
    except SystemExit as err:  # argparse: bad arguments
        return exit_codes.FAILURE if err.code else exit_codes.SUCCESS
    except (OSError, ValueError, SyntaxError) as err:
        logger.error("cannot read the job parameters: %s", err)
        return exit_codes.FAILURE
    server = ClusterUtilsServer(params)
    source, default_wd = _source_of(argv)
    try:
        job = prepare(params, source, default_wd)
    except ConfigError as err:
        return _fail(server, f"configuration error, nothing was started:\n{err}")
    _setup_logging(job.params.working_dir)
    logger.info("job started (pid %d, host %s)", os.getpid(), socket.gethostname())
    code = exit_codes.RESUME
    try:
        code = run(job, server)
    except KeyboardInterrupt:
        logger.warning("interrupted; run the same command again to continue")
    except SystemExit as exit_:  # exit_for_resume
        code = exit_.code if isinstance(exit_.code, int) else exit_codes.FAILURE
        raise
    finally:
        logger.info("job ends with exit code %d", code)
    return code
