"""run_singularity's process: check, start the container, pass signals on, return its code."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rl_relay import exit_codes
from rl_relay.container.argv import parse_job_args
from rl_relay.container.runtime import ContainerError, command, environment, job_binds, resolve
from rl_relay.layout import JobPaths

logger = logging.getLogger("rl_relay.container.run_singularity")


def _files_to_show(params_file: Path | None) -> list[Path]:
    """Host files the job inside reads by path: its parameter file and the HTCondor job ad."""
    files = [params_file] if params_file is not None else []
    ad = os.environ.get("_CONDOR_JOB_AD")
    if ad and Path(ad).is_file():
        files.append(Path(ad).absolute())
    return files


def _working_dir(given: object, default: Path) -> Path:
    """Absolute, but not resolved: bound at the path the job inside is given."""
    return Path(os.path.abspath(Path(str(given or default)).expanduser()))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``wrappers/run_singularity.py``; returns the exit code for cluster_utils.

    The container's exit code passes through unchanged (0 done, 1 failed, 3 resume me). A
    runtime killed by a signal exits 1: nothing inside it asked to be resumed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s run_singularity %(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    from rl_relay.job.resources import job_resources
    from rl_relay.job.supervise import run_supervised

    cwd = Path.cwd()
    try:
        job = parse_job_args(argv)
        resources = job_resources()
        spec = resolve(job.params, job.source, cwd, gpus=resources.gpus)
        working_dir = _working_dir(job.params.get("working_dir"), job.default_working_dir)
        try:
            binds = job_binds(spec, working_dir, cwd, _files_to_show(job.params_file))
        except ContainerError as err:
            raise ContainerError(f"{job.source}: {err}") from None
    except (ContainerError, ValueError, SyntaxError) as err:
        logger.error("configuration error, the container was not started:\n%s", err)
        return exit_codes.FAILURE
    working_dir.mkdir(parents=True, exist_ok=True)
    cmd = command(spec, binds, cwd, job.argv)
    logger.info("starting %s", " ".join(cmd))
    paths = JobPaths(working_dir)
    result = run_supervised(
        cmd,
        stdout_path=paths.stdout,
        stderr_path=paths.stderr,
        env=environment(spec, os.environ, resources.cpus),
    )
    if result.returncode < 0:
        logger.error("the container runtime was killed by signal %d", -result.returncode)
        return exit_codes.FAILURE
    logger.info("the container exited with code %d", result.returncode)
    return result.returncode
