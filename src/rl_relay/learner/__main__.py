"""``python -m rl_relay.learner MAIN_CONFIG.json``: one training iteration, see docs/CONTRACT.md.

Signal handlers are installed before the heavy imports, so a preemption signal that comes
while torch loads is not lost: it stops the training at its first safe point.

Every training iteration is a process of its own, so its fixed costs count once per chained
iteration: torch's optimizers are kept from importing ``torch._dynamo`` (``eager``; set
``RL_RELAY_EAGER_OPTIMIZERS=0`` to run them as torch ships them), and the process ends
without the interpreter's teardown once every file is closed (``exit_now``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from rl_relay import exit_codes

_stop: list[int] = []


def _on_signal(signum: int, _frame: object) -> None:
    _stop.append(signum)


def main(argv: Sequence[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(sig, _on_signal)
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d learner %(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m rl_relay.learner MAIN_CONFIG.json", file=sys.stderr)
        return exit_codes.FAILURE
    from rl_relay.learner.checkpoint import CheckpointError
    from rl_relay.learner.config import LearnerConfigError, load_main_config, validate_configs

    try:
        configs, sources = load_main_config(argv[0])
        problems = validate_configs(configs, sources)
        if problems:
            raise LearnerConfigError("\n".join(problems))
    except LearnerConfigError as err:
        logging.getLogger("rl_relay.learner").error("configuration error:\n%s", err)
        return exit_codes.CONFIG_ERROR

    import torch

    from rl_relay.job.resources import job_resources, torch_threads
    from rl_relay.learner import eager
    from rl_relay.learner.train import train

    if os.environ.get("RL_RELAY_EAGER_OPTIMIZERS", "1") != "0":
        eager.install()
    resources = job_resources()
    threads = torch_threads(resources.cpus)
    torch.set_num_threads(threads)
    logging.getLogger("rl_relay.learner").info(
        "%d CPU(s), %d GPU(s) given (%s); %d torch thread(s)",
        resources.cpus,
        resources.gpus,
        resources.source,
        threads,
    )
    try:
        return train(configs, _stop, resources.cpus)
    except CheckpointError as err:
        logging.getLogger("rl_relay.learner").error("%s", err)
        return exit_codes.FAILURE
    except LearnerConfigError as err:  # e.g. a hyperparameter that cannot change on resume
        logging.getLogger("rl_relay.learner").error("configuration error:\n%s", err)
        return exit_codes.CONFIG_ERROR


def exit_now(code: int) -> NoReturn:
    """End the process with ``code``, skipping the interpreter's teardown.

    The teardown garbage-collects torch's ~1,400 modules, the model and its environments:
    0.2-0.3 s of every chained iteration (more on a busy machine), for nothing, as every
    file the learner writes is closed by then. The exit handlers still run (logging's
    flush among them), then the standard streams are flushed.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def run() -> NoReturn:
    """``rl-relay-learn`` and ``python -m rl_relay.learner``."""
    exit_now(main())


if __name__ == "__main__":
    run()
