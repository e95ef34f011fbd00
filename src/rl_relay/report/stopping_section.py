"""The report's early stopping section: every job's score over the rungs (stopped jobs'
lines end where they stopped), what each rung decided, and the env steps the search used
against what it would have used without stopping."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rl_relay.layout import ResultsPaths
from rl_relay.metrics import ENV_STEPS, ITERATIONS_DONE
from rl_relay.report.figures import BEST_COLOR, _pyplot, _save
from rl_relay.report.model import Results
from rl_relay.stopping import records as rec
from rl_relay.stopping.rules import STOP


def stopping_figure(decided: Sequence[rec.RungRecord], out: Path) -> str | None:
    """One line per job across the rungs; a cross where a job stopped."""
    by_job: dict[int, list[rec.RungRecord]] = defaultdict(list)
    for record in decided:
        if record.score is not None and math.isfinite(record.score):
            by_job[record.job].append(record)
    if not by_job:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for _, rows in sorted(by_job.items()):
        rows.sort(key=lambda r: r.rung)
        xs, ys = [r.rung for r in rows], [r.score for r in rows]
        stopped = rows[-1].decision == STOP
        ax.plot(xs, ys, marker="o", markersize=3, alpha=0.5 if stopped else 0.9, lw=1)
        if stopped:
            ax.plot(xs[-1], ys[-1], "x", color=BEST_COLOR, markersize=7)
    ax.set_xlabel("rung (training iterations done)")
    ax.set_ylabel("score at the rung")
    ax.set_xticks(sorted({r.rung for rows in by_job.values() for r in rows}))
    ax.grid(alpha=0.3)
    ax.set_title("Early stopping: jobs over the rungs (x: stopped there)")
    fig.tight_layout()
    return _save(fig, out, "early_stopping.png")


def env_steps_used(results: Results) -> tuple[int, int | None]:
    """(env steps the finished jobs trained, what they would have trained without stopping:
    each job's steps per iteration times its full plan; None when a job's plan is unknown)."""
    used, full = 0, 0
    for job in results.jobs:
        steps, done = job.metrics.get(ENV_STEPS), job.metrics.get(ITERATIONS_DONE)
        if steps is None or not math.isfinite(steps):
            continue
        used += int(steps)
        if not done or not job.iterations_planned or full is None:
            full = None
            continue
        full += round(steps / done * job.iterations_planned)
    return used, full


def stopping_section(
    results: Results,
    out: Path,
    table: Callable[..., str],
    img: Callable[[str | None, str], str],
    escape: Callable[[Any], str],
) -> list[str]:
    """HTML parts of the section ([] when the results hold no early stopping records)."""
    decided = rec.all_records(ResultsPaths(results.directory).early_stopping)
    if not decided:
        return []
    rungs: dict[int, list[rec.RungRecord]] = defaultdict(list)
    for record in decided:
        rungs[record.rung].append(record)
    rows = []
    for rung, at in sorted(rungs.items()):
        stopped = [r for r in at if r.decision == STOP]
        cutoffs = [r.cutoff for r in at if r.cutoff is not None]
        rows.append(
            [
                rung,
                len(at),
                len(stopped),
                ", ".join(str(r.job) for r in stopped) or "–",
                f"{min(cutoffs):.4g} … {max(cutoffs):.4g}" if cutoffs else "–",
            ]
        )
    used, full = env_steps_used(results)
    saved = (
        f"{used:,} env steps trained; {full:,} without stopping ({1 - used / full:.0%} saved)."
        if full
        else f"{used:,} env steps trained."
    )
    rule = decided[0].rule
    return [
        "<h2>Early stopping</h2>",
        f"<p>Rule <code>{escape(rule)}</code>; {len({r.job for r in decided})} jobs reached a"
        f" rung, {sum(r.decision == STOP for r in decided)} stopped. {escape(saved)}</p>",
        img(stopping_figure(decided, out), "scores over the rungs"),
        table(["rung", "jobs scored", "stopped", "stopped jobs", "cut-off"], rows),
    ]
