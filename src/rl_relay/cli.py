"""``rl-relay``: the commands a user runs around an HPO (not the job scripts themselves).

- ``rl-relay check SETTINGS.json ['key=value' ...]``: find configuration errors before
  anything is submitted.
- ``rl-relay report RESULTS_DIR``: an HTML page with figures of a finished or running HPO.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

SUBCOMMANDS = {
    "check": ("rl_relay.check", "check an HPO settings file before submitting it"),
    "report": ("rl_relay.report", "write an HTML report of an HPO's results"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rl-relay", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=help_text, description=module.__doc__))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    return int(modules[args.command].run(args))


if __name__ == "__main__":
    sys.exit(main())
