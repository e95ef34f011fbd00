"""run_learning: the job script's process around the job loop (``rl_relay.job.loop``).

Reads the job's parameters through cluster_utils' ``initialize_job`` (which registers the
job with the server), checks them (``job.config.prepare``), takes the working directory's
lock, logs into ``run_learning.log`` and runs the loop; every failure on the way is one
message and exit code 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rl_relay import exit_codes
from rl_relay.job import locks, preemption
from rl_relay.job.client import ClusterUtilsServer
from rl_relay.job.config import ConfigError, prepare
from rl_relay.job.loop import fail, run
from rl_relay.override_strings import unreadable_override

logger = logging.getLogger("rl_relay.job.run_learning")

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


def _positionals(argv: Sequence[str]) -> list[str]:
    """The job script's positional arguments as cluster_utils' parser takes them: the
    parameter file (or ``--parameter-dict``'s dict), then the ``key=value`` overrides."""
    positionals: list[str] = []
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in ("--job-id", "--cluster-utils-server"):
            skip = True
        elif not arg.startswith("-"):
            positionals.append(arg)
    return positionals


def _source_of(argv: Sequence[str]) -> str:
    """How errors name the parameters: the parameter file (the first positional argument,
    whatever its path holds), or the ``--parameter-dict``."""
    if "--parameter-dict" in argv:
        return "the job's --parameter-dict"
    return next(iter(_positionals(argv)), "the job parameters")


def read_params(argv: Sequence[str]) -> Any:
    """The job's parameters via cluster_utils' ``initialize_job`` (which registers the
    job with the server); raise ValueError with a message saying what is wrong.

    Read as they are (``dynamic=False``): smart_settings' dynamic values would evaluate
    every string as a Python f-string a second time (the driver did when it read the
    settings file), so ``{...}``, backslashes and quotes in a value would change or run."""
    from cluster_utils.client import initialize_job

    source = _source_of(argv)
    if bad := [what for o in _positionals(argv)[1:] if (what := unreadable_override(o))]:
        raise ValueError(f"cannot read the job's arguments ({source}): {'; '.join(bad)}")
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
        return initialize_job(list(argv), verbose=False, dynamic=False)
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
        return fail(server, f"configuration error, nothing was started:\n{err}")
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
        return fail(
            server,
            os_error_message(err, "write the job's files")
            + f"; nothing done so far is lost ({job.paths.state} keeps it): start the job"
            " again once this is fixed",
        )
