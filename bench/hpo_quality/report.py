"""The end of a benchmark run: the summary per method, the table printed and written as
Markdown, the comparisons with the zoo, the CSV of every search and the PNG.

Tables and plots name each method by its readable name (``methods.label``); the CSV keeps
the compact one too (``method``), which is what ``--methods`` and the saved searches use.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import statistics
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rl_relay.atomic import atomic_write_text
from rl_relay.reevaluate.stats import t_interval, welch_interval

from .methods import label
from .outcome import SEARCH_SEED, Outcome


def _pooled(outcomes: Sequence[Outcome], method: str) -> list[float]:
    """Every re-evaluation reward of ``method``'s finished searches, all repeats together."""
    return [
        r for o in outcomes if o.method == method and o.status == "ok" for r in o.reeval_rewards
    ]


def _by_repeat(outcomes: Sequence[Outcome], method: str) -> dict[int, list[float]]:
    """Repeat -> re-evaluation rewards of ``method``'s finished searches."""
    return {o.repeat: o.reeval_rewards for o in outcomes if o.method == method and o.status == "ok"}


def per_repeat_differences(
    outcomes: Sequence[Outcome], method: str, reference: str = "zoo"
) -> list[float]:
    """``method``'s re-evaluated mean minus the reference's, one per repeat both finished.

    A repeat's two searches share their search seed and their choices are re-evaluated on
    the same fresh seeds, so each difference is paired; the repeats are the independent
    units. (Pooling the runs, as the Welch line does, treats the runs of one choice as if
    they were independent searches: too narrow when choices differ between searches.)
    """
    mine, theirs = _by_repeat(outcomes, method), _by_repeat(outcomes, reference)
    return [
        statistics.fmean(mine[r]) - statistics.fmean(theirs[r])
        for r in sorted(mine)
        if mine[r] and theirs.get(r)
    ]


def _verdict(diff: float, half: float, too_few: str) -> str:
    if math.isnan(half):
        return too_few
    if diff - half > 0:
        return "better"
    if diff + half < 0:
        return "worse"
    return "within noise"


def versus(outcomes: Sequence[Outcome], reference: str = "zoo") -> list[str]:
    """One line per other method: its pooled re-evaluated mean minus the reference's, and
    whether the 95% interval of that difference excludes 0 (the README's verdict); then the
    same per repeat, the repeats as units (``per_repeat_differences``)."""
    pooled = {m: _pooled(outcomes, m) for m in dict.fromkeys(o.method for o in outcomes)}
    if not pooled.get(reference):
        return []
    lines = []
    for method, rewards in pooled.items():
        if method == reference or not rewards:
            continue
        diff, half = welch_interval(rewards, pooled[reference])
        verdict = _verdict(diff, half, "too few seeds to tell")
        line = (
            f"{label(method)} - {label(reference)}: {diff:+,.1f} ± {_fmt(half)} (95% Welch"
            f" interval over {len(rewards)} and {len(pooled[reference])} re-evaluations):"
            f" {verdict}"
        )
        paired = per_repeat_differences(outcomes, method, reference)
        if paired:
            mean, half = t_interval(paired)
            wins = sum(d > 0 for d in paired)
            line += (
                f"; per repeat (same search seed, same fresh seeds): {mean:+,.1f} ±"
                f" {_fmt(half)} (95% t interval over {len(paired)} repeat(s), higher in"
                f" {wins}): {_verdict(mean, half, 'too few repeats to tell')}"
            )
        lines.append(line)
    return lines


def _median(values: Iterable[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def summary(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """One row per method, in first-seen order: medians over repeats, pooled re-evaluation."""
    rows = []
    for method in dict.fromkeys(o.method for o in outcomes):
        mine = [o for o in outcomes if o.method == method]
        ok = [o for o in mine if o.status == "ok" and o.reeval_rewards]
        mean, half = t_interval(_pooled(ok, method))
        rows.append(
            {
                "method": method,
                "status": "ok" if ok else (mine[-1].status + ": " + mine[-1].detail).strip(": "),
                "searches": len(ok),
                "env_steps": _median(o.env_steps for o in ok),
                "wall_s": _median(o.wall_seconds for o in ok),
                "estimate": _median(o.estimate for o in ok),
                "reeval_mean": mean,
                "reeval_ci": half,
                "reeval_median_of_repeats": _median(statistics.fmean(o.reeval_rewards) for o in ok),
            }
        )
    return rows


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary as a Markdown table (printed, and pasted into the README)."""
    head = (
        "| method | searches | env steps / search | wall time / search (s) | search estimate |"
        " re-evaluated mean ± 95% CI | median over repeats |"
    )
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        if not r["searches"]:
            lines.append(f"| {label(r['method'])} | 0 | {r['status']} | | | | |")
            continue
        cells = [
            label(r["method"]),
            str(r["searches"]),
            _fmt(r["env_steps"], 0),
            _fmt(r["wall_s"], 0),
            _fmt(r["estimate"]),
            f"{_fmt(r['reeval_mean'])} ± {_fmt(r['reeval_ci'])}",
            _fmt(r["reeval_median_of_repeats"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


CSV_COLUMNS = ("task", "method", "method_name", "repeat", "status", "detail", "trials", "env_steps",
               "wall_seconds", "estimate", "reeval_mean", "reeval_ci95", "reeval_rewards",
               "reeval_env_steps", "overrides")  # fmt: skip


def write_csv(path: Path, outcomes: Sequence[Outcome]) -> None:
    """One row per search: what it used, what it estimated, how its choice re-evaluated."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS)
        writer.writeheader()
        for o in outcomes:
            mean, half = t_interval(o.reeval_rewards)
            row = {k: v for k, v in o.to_json().items() if k in CSV_COLUMNS}
            row.update(
                method_name=label(o.method),
                reeval_mean=mean,
                reeval_ci95=half,
                reeval_rewards=json.dumps(o.reeval_rewards),
                overrides=json.dumps(o.overrides, sort_keys=True),
            )
            writer.writerow(row)


def report_stem(first_repeat: int) -> str:
    """The report files' name for searches from ``first_repeat`` on (search seed
    ``SEARCH_SEED + first_repeat``): a confirmation on new seeds keeps its own files."""
    return "hpo_quality" if not first_repeat else f"hpo_quality_from_r{first_repeat}"


def report(args: argparse.Namespace, outcomes: list[Outcome]) -> int:
    """Print the table; write CSV, Markdown and PNG; 1 if any search or re-evaluation failed."""
    out = args.out
    table = format_table(summary(outcomes))
    stamp = dt.date.today().isoformat()
    header = (
        f"{args.task}: {args.algo.upper()} on {args.env_id}, {args.trials} trainings x"
        f" {args.budget:,} env steps per search, rl-relay {args.runs_per_job} run(s) per job"
        " unless a row says otherwise (a row's best K re-run M times on fresh seeds: within"
        f" the budget), {args.eval_episodes} deterministic evaluation episodes, {args.repeats}"
        " repeat(s) planned per method (searches: how many finished),"
        f" {args.reeval_seeds} re-evaluation seeds; {os.cpu_count()} cores, {stamp}"
    )
    against = versus(outcomes)
    if against:
        table += "\n\nRe-evaluated against the zoo:\n\n" + "\n".join(f"- {x}" for x in against)
    print("\n" + header + "\n\n" + table)
    # A confirmation on new search seeds gets files of its own: the full table stays.
    first = getattr(args, "from_repeat", 0)
    stem = report_stem(first)
    if first:
        header += f"; search seeds from {SEARCH_SEED + first} on (repeats {first}+) only"
    files = [out / f"{stem}.{ext}" for ext in ("csv", "md", "png")]
    write_csv(files[0], outcomes)
    atomic_write_text(files[1], header + "\n\n" + table + "\n")
    plot(outcomes, files[2], header)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        print(f"\nFAILED {o.method} repeat {o.repeat}: {o.detail}", file=sys.stderr)
    print("\nwritten: " + ", ".join(str(f) for f in files))
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
        xs = [x + (j - (len(mine) - 1) / 2) * 0.12 for j in range(len(mine))]
        means, halves = zip(*(t_interval(o.reeval_rewards) for o in mine), strict=True)
        yerr = [0 if math.isnan(h) else h for h in halves]
        legend = ("re-evaluated (95% CI)", "search's own estimate") if x == 0 else (None, None)
        ax.errorbar(xs, means, yerr=yerr, fmt="o", color="C0", capsize=3, label=legend[0])
        ax.plot(xs, [o.estimate for o in mine], "x", color="0.5", label=legend[1])
    names = ["\n".join(textwrap.wrap(label(m), 18, break_on_hyphens=False)) for m in methods]
    ax.set_xticks(range(len(methods)), names, fontsize=7)
    ax.set_ylabel("mean episode return (deterministic)")
    ax.set_title("\n".join(textwrap.wrap(title, 110)), fontsize=7)
    if methods:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
