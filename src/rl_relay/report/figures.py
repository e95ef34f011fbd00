"""The report's figures, as PNG files (matplotlib with the file-only backend)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rl_relay.report.load import read_curve
from rl_relay.report.model import Curve, JobInfo, Results

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BEST_COLOR = "tab:red"


def _pyplot() -> Any:
    """matplotlib with the file-only backend, imported only when a report is written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, out: Path, name: str) -> str:
    path = out / name
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return name


def short(name: str, width: int = 40) -> str:
    """Parameter names lose their ``config.`` prefixes first: the tail is what differs."""
    name = name.removeprefix("config.")
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _grid(plt: Any, count: int, width: float = 4.2, height: float = 3.2) -> tuple[Any, list]:
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def objective_figure(results: Results, out: Path) -> str | None:
    """The objective against each hyperparameter: where good values lie, and how sure."""
    jobs = results.finished()
    if not jobs or not results.hyperparameters:
        return None
    plt = _pyplot()
    fig, axes = _grid(plt, len(results.hyperparameters))
    best = jobs[0]
    std_metric = results.std_metric()
    for ax, name in zip(axes, results.hyperparameters, strict=True):
        raw = [j.settings.get(name) for j in jobs]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw)
        if numeric:
            xs = [float(v) for v in raw]
            positive = [x for x in xs if x > 0]
            if len(positive) == len(xs) and max(xs) / min(xs) >= 20:
                ax.set_xscale("log")
        else:
            labels = sorted({str(v) for v in raw})
            xs = [float(labels.index(str(v))) for v in raw]
            ax.set_xticks(range(len(labels)), [short(label, 12) for label in labels])
        ys = [j.value(results.metric) or 0.0 for j in jobs]
        errs = [j.metrics.get(std_metric, 0.0) for j in jobs]
        ax.errorbar(xs, ys, yerr=errs, fmt="o", color="tab:blue", alpha=0.6, ecolor="0.75")
        ax.plot(
            [xs[0]], [ys[0]], "*", color=BEST_COLOR, markersize=14, label=f"best: job {best.job_id}"
        )
        ax.set_xlabel(short(name))
        ax.set_ylabel(results.metric)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize="small")
    fig.suptitle(f"{results.metric} (± {std_metric} over learning runs) per hyperparameter")
    fig.tight_layout()
    return _save(fig, out, "objective_vs_hyperparameters.png")


def progress_figure(results: Results, out: Path) -> str | None:
    """The objective in the order jobs were started, with the best so far: is it converging?"""
    jobs = sorted(results.finished(), key=lambda j: j.job_id)
    if not jobs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ids = [j.job_id for j in jobs]
    ys = [j.value(results.metric) or 0.0 for j in jobs]
    best_so_far = list(itertools.accumulate(ys, min if results.minimize else max))
    ax.plot(ids, ys, "o", alpha=0.6, label="job")
    ax.step(ids, best_so_far, where="post", color=BEST_COLOR, label="best so far")
    ax.set_xlabel("job id (order of submission)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(results.metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return _save(fig, out, "objective_over_jobs.png")


def curves_figure(
    results: Results, out: Path, jobs: Sequence[JobInfo], reward_column: str | None
) -> tuple[str | None, list[str]]:
    """Learning curves of the given jobs, one panel each, one line per run."""
    panels: list[tuple[JobInfo, list[Curve]]] = []
    missing: list[str] = []
    for job in jobs:
        curves = [c for c in (read_curve(job, r, reward_column) for r in job.runs) if c]
        if curves:
            panels.append((job, curves))
        else:
            missing.append(f"job {job.job_id}")
    if not panels:
        return None, missing
    plt = _pyplot()
    fig, axes = _grid(plt, len(panels), width=5.0, height=3.5)
    for ax, (job, curves) in zip(axes, panels, strict=True):
        for curve in curves:
            ax.plot(
                curve.x,
                curve.y,
                marker="." if len(curve.x) < 30 else None,
                label=f"run {curve.run} (attempt {curve.attempt})",
            )
        for boundary in curves[0].boundaries:
            ax.axvline(boundary, color="0.6", linestyle="--", linewidth=0.8)
        value = job.value(results.metric)
        title = f"job {job.job_id}: " + (
            f"{results.metric} {value:.4g}" if value is not None else f"{job.status}, no result yet"
        )
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel(curves[0].x_label)
        ax.set_ylabel(reward_column or job.reward_column())
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="x-small")
    fig.suptitle("Learning curves over all chained iterations (dashed: next iteration starts)")
    fig.tight_layout()
    return _save(fig, out, "learning_curves.png"), missing


def failures_figure(results: Results, out: Path) -> str | None:
    """Failed attempts and preemption resumes per job; None when there are none at all."""
    jobs = results.jobs
    if not any(j.failed_attempts or j.resumes for j in jobs):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(jobs) + 2), 3.5))
    positions = list(range(len(jobs)))
    ax.bar(
        [p - 0.2 for p in positions],
        [j.failed_attempts for j in jobs],
        0.4,
        label="failed attempts",
        color=BEST_COLOR,
    )
    ax.bar(
        [p + 0.2 for p in positions],
        [j.resumes for j in jobs],
        0.4,
        label="preemption resumes",
        color="tab:orange",
    )
    ax.set_xticks(positions, [str(j.job_id) for j in jobs], rotation=90 if len(jobs) > 30 else 0)
    ax.set_xlabel("job id")
    ax.set_ylabel("count")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out, "failures_and_resumes.png")
