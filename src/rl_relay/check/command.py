"""Find what would go wrong with an HPO settings file before anything is submitted.

Reads the settings with cluster_utils' own loader and the same ``key=value`` override
strings as ``python -m cluster_utils.hp_optimization``, then checks what a week of cluster
time should not be lost to: the shape of every section and keys nothing reads, override
targets and types against the templates, parameter names nothing reads, sampled bounds
against the learner's schemas, the metric, the cluster requirements of the engine
cluster_utils will pick, the job script and container, and anything that would make
cluster_utils wait for the keyboard. The rules are ``rules``; ``rl-relay hpo`` runs the same
before it starts.
"""

from __future__ import annotations

import argparse
import sys

from rl_relay.check.rules import check_settings_file
from rl_relay.settings_file import add_local_argument, add_settings_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    add_local_argument(
        parser, "check for a local run with rl-relay hpo --local (ignore sbatch/condor_q)"
    )
    parser.add_argument(
        "--cluster-utils",
        action="store_true",
        help="check for plain python -m cluster_utils.hp_optimization instead of rl-relay hpo"
        " (which continues an existing results directory and adds rl-relay's optimisers)",
    )


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    verdict = check_settings_file(
        args.settings_file,
        args.overrides,
        local=args.local,
        plain_cluster_utils=getattr(args, "cluster_utils", False),
    )
    if verdict.settings is None:  # unreadable: nothing else could be checked
        for problem in verdict.errors:
            print(f"FAIL {problem.where}: {problem.what}", file=out)
        return 1
    print(f"rl-relay check {args.settings_file} (engine: {verdict.engine})", file=out)
    for name in verdict.passed:
        print(f"  ok    {name}", file=out)
    for name in verdict.skipped:
        print(f"  skip  {name} (fix the problems above first)", file=out)
    for problem in verdict.warnings:
        print(f"  WARN  {problem.where}: {problem.what}", file=out)
    for problem in verdict.errors:
        print(f"  FAIL  {problem.where}: {problem.what}", file=out)
    if verdict.errors:
        print(f"{len(verdict.errors)} problem(s); nothing was submitted.", file=out)
        return 1
    print("All checks passed" + (" (see the warnings)." if verdict.warnings else "."), file=out)
    return 0
