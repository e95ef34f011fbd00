"""``python -m rl_relay.learner MAIN_CONFIG.json``: one training iteration, see docs/CONTRACT.md.

Signal handlers are installed before the heavy imports, so a preemption signal that comes
while torch loads is not lost: it stops the training at its first safe point.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence

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
        format="%(asctime)s learner %(levelname)s: %(message)s",
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

    from rl_relay.job.resources import job_resources
    from rl_relay.learner.train import train

    resources = job_resources()
    torch.set_num_threads(resources.cpus)
    logging.getLogger("rl_relay.learner").info(
        "%d CPU(s), %d GPU(s) given (%s)", resources.cpus, resources.gpus, resources.source
    )
    try:
        return train(configs, _stop, resources.cpus)
    except CheckpointError as err:
        logging.getLogger("rl_relay.learner").error("%s", err)
        return exit_codes.FAILURE
    except LearnerConfigError as err:  # e.g. a hyperparameter that cannot change on resume
        logging.getLogger("rl_relay.learner").error("configuration error:\n%s", err)
        return exit_codes.CONFIG_ERROR


if __name__ == "__main__":
    sys.exit(main())
