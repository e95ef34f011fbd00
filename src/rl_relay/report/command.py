"""Write an HTML page with PNG figures about an HPO's results, finished or still running.

    rl-relay report RESULTS_DIR [--out DIR]

RESULTS_DIR is ``results_dir/<optimization_procedure_name>`` (or the ``results_dir`` above
it when it holds one procedure). The page, ``RESULTS_DIR/report/index.html`` by default,
shows the best configurations (mean and std over learning runs), the objective against
each hyperparameter, learning curves of the best jobs over all chained iterations, and
failed attempts and resumes per job. Run it again at any time to refresh it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rl_relay import exit_codes
from rl_relay.layout import ResultsPaths
from rl_relay.metrics import DEFAULT_METRIC
from rl_relay.report.load import load_results
from rl_relay.report.model import DONE, NoResultsError
from rl_relay.report.page import write_report

logger = logging.getLogger("rl_relay.report.command")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    parser.add_argument(
        "--out", type=Path, help="directory for index.html and the figures (RESULTS_DIR/report)"
    )
    parser.add_argument(
        "--metric", default=DEFAULT_METRIC, help=f"the objective column (default {DEFAULT_METRIC})"
    )
    parser.add_argument(
        "--reward-column",
        help="progress.csv column of the learning curves (default: each job's reward_column,"
        " else rollout/ep_rew_mean)",
    )
    parser.add_argument(
        "--top", type=int, default=10, help="rows of the best-configurations table (10)"
    )
    parser.add_argument(
        "--curves", type=int, default=3, help="best jobs whose learning curves are drawn (3)"
    )
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument(
        "--minimize",
        dest="minimize",
        action="store_true",
        default=None,
        help="lower is better (default: read from all_data.csv's order, else higher is better)",
    )
    direction.add_argument("--maximize", dest="minimize", action="store_false")


def run(args: argparse.Namespace) -> int:
    try:
        results = load_results(args.results_dir, args.metric, args.minimize)
    except NoResultsError as err:
        logger.error("%s", err)
        return exit_codes.FAILURE
    out = args.out if args.out is not None else ResultsPaths(results.directory).report_dir
    index = write_report(results, out, args.reward_column, top=args.top, curves=args.curves)
    done = len(results.by_status(DONE))
    print(f"{len(results.jobs)} jobs, {done} with results; report: {index}")
    return exit_codes.SUCCESS
