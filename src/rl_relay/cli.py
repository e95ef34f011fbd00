"""``rl-relay``: the commands a user runs around an HPO (not the job scripts themselves).

- ``rl-relay hpo SETTINGS.json ['key=value' ...] [--local] [--fresh]``: run or continue an HPO.
- ``rl-relay check SETTINGS.json ['key=value' ...]``: find configuration errors before
  anything is submitted.
- ``rl-relay report RESULTS_DIR``: an HTML page with figures of a finished or running HPO.
- ``rl-relay reevaluate RESULTS_DIR [--top K] [--runs M] [--fresh]``: the best configurations again,
  on fresh seeds.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args)``.
A subcommand's arguments are parsed intermixed: its ``'key=value'`` strings may come before
or after its options (``--`` ends the options, for a value that starts with a dash).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

SUBCOMMANDS = {
    "hpo": (
        "rl_relay.hpo.command",
        "run (or continue) an HPO: cluster_utils' hp_optimization plus more",
    ),
    "check": ("rl_relay.check.command", "check an HPO settings file before submitting it"),
    "report": ("rl_relay.report.command", "write an HTML report of an HPO's results"),
    "reevaluate": (
        "rl_relay.reevaluate.command",
        "re-run an HPO's best configurations on fresh seeds: the honest score",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="rl-relay", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    # Import only the chosen subcommand: `check` must not pay for the report's matplotlib.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    modules = {}
    chosen_parser = None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            sub_parser.description = module.__doc__
            sub_parser.formatter_class = argparse.RawDescriptionHelpFormatter
            module.add_arguments(sub_parser)
            modules[name] = module
            chosen_parser = sub_parser
    if chosen_parser is not None and argv[:1] == [chosen]:
        # A subparser parses in one pass, so `DIR --runs 2 k=v` would leave k=v unrecognised
        # (the positionals were taken before the options); intermixed parsing takes them all.
        args = chosen_parser.parse_intermixed_args(argv[1:])
        args.command = chosen
    else:  # no subcommand, or options before it (-h): argparse's own messages
        args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    return int(modules[args.command].run(args))


if __name__ == "__main__":
    sys.exit(main())
