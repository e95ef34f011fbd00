"""Run cluster_utils' hp_optimization with rl-relay's optimisers, and continue a dead one.

    rl-relay hpo SETTINGS.json ['key=value' ...] [--local] [--fresh]

Runs cluster_utils' own ``hp_optimization`` on the same settings file and override
strings, with these additions:

- ``"optimizer_str": "genetic"``, ``"dgd"`` and ``"tpe"`` (see docs/hpo.md) next to cluster_utils'
  ``cem_metaoptimizer`` and ``nevergrad``;
- ``--local``: cluster_utils' local backend even where sbatch/condor_q are installed;
- continuing: started again on a results directory that exists, it goes on where the HPO
  stood (results kept, only the missing jobs run, the optimiser from its saved state,
  which is written soon after every result); ``--fresh`` first moves the old directory aside
  (renamed with a timestamp, nothing deleted) and starts over;
- job scripts no shell misreads: each job's parameters in a JSON file, every path quoted
  (``patches.job_script``).

Before anything is moved, locked or written, the settings pass the rules of ``rl-relay
check`` (``rl_relay.check.rules``): an error refuses the start with the same message, a
warning is printed.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rl_relay.atomic import atomic_write_json
from rl_relay.check.rules import check_settings_file
from rl_relay.hpo.continuation import DirectoryBusy, move_aside, release_driver_lock
from rl_relay.hpo.leftovers import take_over
from rl_relay.layout import ResultsPaths, results_root
from rl_relay.paramtree import plain
from rl_relay.settings_file import add_local_argument, add_settings_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    add_local_argument(
        parser, "run jobs with cluster_utils' local backend even where sbatch/condor_q exist"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start over: move an existing results directory aside (timestamp suffix) first",
    )


def run(args: argparse.Namespace) -> int:
    from rl_relay.hpo.patches import UnsupportedClusterUtils, install, require_supported
    from rl_relay.optimizers.persist import ContinueError

    try:
        require_supported()  # before anything is moved, locked or written
    except UnsupportedClusterUtils as err:
        print(f"rl-relay hpo: {err}", file=sys.stderr)
        return 1
    # the rules of rl-relay check, before anything is moved, locked or written
    verdict = check_settings_file(args.settings_file, args.overrides, local=args.local)
    for problem in verdict.warnings:
        print(f"rl-relay hpo: warning: {problem.where}: {problem.what}", file=sys.stderr)
    if verdict.errors or verdict.settings is None:
        for problem in verdict.errors:
            print(f"rl-relay hpo: {problem.where}: {problem.what}", file=sys.stderr)
        print(
            f"Nothing was started: {len(verdict.errors)} problem(s), the same that"
            " `rl-relay check` reports.",
            file=sys.stderr,
        )
        return 1
    settings = dict(verdict.settings)
    result_dir = results_root(settings)
    try:
        if args.fresh and result_dir.exists():
            lock, ended = take_over(result_dir)  # not while another driver runs
            _say_ended(ended)
            release_driver_lock(lock)
            print(f"Moved the old results to {move_aside(result_dir)}; starting over.")
        lock, ended = take_over(result_dir)
        _say_ended(ended)
    except (DirectoryBusy, OSError) as err:
        print(f"rl-relay hpo: {err}", file=sys.stderr)
        return 1
    try:
        from cluster_utils import hp_optimization

        install(
            local=args.local,
            settings=settings,
            # only once the saved state fits the settings: a refused start changes nothing
            on_accept=lambda: record_start(result_dir, args, settings),
        )
        _quiet_console_log()
        sys.argv = ["rl-relay hpo", str(args.settings_file), *args.overrides]
        return int(hp_optimization.main() or 0)
    except ContinueError as err:
        print(f"rl-relay hpo: cannot continue: {err}", file=sys.stderr)
        return 1
    finally:
        release_driver_lock(lock)


def _say_ended(ended: list) -> None:
    """Name what a dead driver of this HPO left running and this one ended."""
    if ended:
        print(
            f"Ended {len(ended)} processes a dead driver of this HPO left running: "
            + ", ".join(f"{p.pid} ({p.command[:80]})" for p in ended)
        )


def record_start(result_dir: Path, args: argparse.Namespace, settings: Mapping[str, Any]) -> None:
    """Keep what this HPO was started with beside its results (``rl-relay reevaluate``
    re-runs its best configurations with the same settings on the same backend)."""
    record = {
        "settings_file": str(Path(args.settings_file).resolve()),
        "overrides": list(args.overrides),
        "local": bool(args.local),
        "cwd": str(Path.cwd()),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "settings": plain(settings),
    }
    atomic_write_json(ResultsPaths(result_dir).hpo_record, record)


def _quiet_console_log() -> None:
    """cluster_utils logs every job event at INFO to ``cluster_run.log``; on the console
    (where rl-relay's CLI logs) they would break its progress bars: warnings only there."""
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setLevel(logging.WARNING)
