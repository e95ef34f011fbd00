"""The end of ``bench/hpo_quality.py``: the table printed, the CSV, Markdown and PNG written."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import textwrap
from pathlib import Path

from hpo_quality_lib import Outcome, format_table, summary, t_interval, versus, write_csv

from rl_relay.atomic import atomic_write_text


def report(args: argparse.Namespace, outcomes: list[Outcome]) -> int:
    """Print the table; write CSV, Markdown and PNG; 1 if any search or re-evaluation failed."""
    out = args.out
    rows = summary(outcomes)
    table = format_table(rows)
    stamp = dt.date.today().isoformat()
    header = (
        f"{args.task}: {args.algo.upper()} on {args.env_id}, {args.trials} trainings x"
        f" {args.budget:,} env steps per search, rl-relay {args.runs_per_job} run(s) per job"
        " (method@R: R; method+KxM: its K best re-run M times on fresh seeds, within the"
        " budget),"
        f" {args.eval_episodes} deterministic evaluation episodes, {args.repeats} repeat(s) planned"
        " per method (searches: how many finished),"
        f" {args.reeval_seeds} re-evaluation seeds; {os.cpu_count()} cores, {stamp}"
    )
    against = versus(outcomes)
    if against:
        table += "\n\nRe-evaluated against the zoo:\n\n" + "\n".join(f"- {x}" for x in against)
    print("\n" + header + "\n\n" + table)
    write_csv(out / "hpo_quality.csv", outcomes)
    atomic_write_text(out / "hpo_quality.md", header + "\n\n" + table + "\n")
    plot(outcomes, out / "hpo_quality.png", header)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        print(f"\nFAILED {o.method} repeat {o.repeat}: {o.detail}", file=sys.stderr)
    print(
        f"\nwritten: {out / 'hpo_quality.csv'}, {out / 'hpo_quality.md'}, {out / 'hpo_quality.png'}"
    )
    return 1 if failed or not any(o.status == "ok" for o in outcomes) else 0


def plot(outcomes: list[Outcome], path: Path, title: str) -> None:
    """Re-evaluated score per method, one point per repeat (bars: 95% CI over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(o.method for o in outcomes if o.status == "ok"))
    fig, ax = plt.subplots(figsize=(1.6 * max(3, len(methods)) + 1, 4.5))
    for x, method in enumerate(methods):
        mine = [o for o in outcomes if o.method == method and o.status == "ok"]
        for j, o in enumerate(mine):
            mean, half = t_interval(o.reeval_rewards)
            dx = (j - (len(mine) - 1) / 2) * 0.12
            ax.errorbar(
                x + dx,
                mean,
                yerr=0 if math.isnan(half) else half,
                fmt="o",
                color="C0",
                capsize=3,
                label="re-evaluated (95% CI)" if x == j == 0 else None,
            )
            ax.plot(
                x + dx,
                o.estimate,
                "x",
                color="0.5",
                label="search's own estimate" if x == j == 0 else None,
            )
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel("mean episode return (deterministic)")
    ax.set_title("\n".join(textwrap.wrap(title, 110)), fontsize=7)
    if methods:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
