"""run_singularity's process: check, start the container, pass signals on, return its code."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rl_relay import exit_codes
from rl_relay.container import ContainerError, command, environment, parse_job_args, resolve

logger = logging.getLogger("rl_relay.run_singularity")

STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"


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
    from rl_relay.cluster import job_resources
    from rl_relay.supervise import run_supervised

    cwd = Path.cwd()
    try:
        job = parse_job_args(argv)
        spec = resolve(job.params, job.source, cwd, gpus=job_resources().gpus)
    except (ContainerError, ValueError, SyntaxError) as err:
        logger.error("configuration error, the container was not started:\n%s", err)
        return exit_codes.FAILURE
    working_dir = Path(str(job.params.get("working_dir") or job.default_working_dir)).resolve()
    working_dir.mkdir(parents=True, exist_ok=True)
    cmd = command(spec, working_dir, cwd, job.argv)
    logger.info("starting %s", " ".join(cmd))
    result = run_supervised(
        cmd,
        stdout_path=working_dir / STDOUT_FILE,
        stderr_path=working_dir / STDERR_FILE,
        env=environment(spec, os.environ),
    )
    if result.returncode < 0:
        logger.error("the container runtime was killed by signal %d", -result.returncode)
        return exit_codes.FAILURE
    logger.info("the container exited with code %d", result.returncode)
    return result.returncode
