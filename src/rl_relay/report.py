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
import datetime
import html
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rl_relay import exit_codes
from rl_relay.atomic import atomic_write_text
from rl_relay.layout import STDERR_FILE
from rl_relay.report_data import (
    DEFAULT_METRIC,
    DONE,
    FAILED,
    RUNNING,
    Curve,
    JobInfo,
    NoResultsError,
    Results,
    load_results,
    read_curve,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger("rl_relay.report")

REPORT_DIR = "report"
INDEX = "index.html"
BEST_COLOR = "tab:red"


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
    out = args.out if args.out is not None else results.directory / REPORT_DIR
    index = write_report(results, out, args.reward_column, top=args.top, curves=args.curves)
    done = len(results.by_status(DONE))
    print(f"{len(results.jobs)} jobs, {done} with results; report: {index}")
    return exit_codes.SUCCESS


# -- figures ---------------------------------------------------------------------------


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


def _short(name: str, width: int = 40) -> str:
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
            ax.set_xticks(range(len(labels)), [_short(label, 12) for label in labels])
        ys = [j.value(results.metric) or 0.0 for j in jobs]
        errs = [j.metrics.get(std_metric, 0.0) for j in jobs]
        ax.errorbar(xs, ys, yerr=errs, fmt="o", color="tab:blue", alpha=0.6, ecolor="0.75")
        ax.plot(
            [xs[0]], [ys[0]], "*", color=BEST_COLOR, markersize=14, label=f"best: job {best.job_id}"
        )
        ax.set_xlabel(_short(name))
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
    pick = min if results.minimize else max
    best_so_far = [pick(ys[: i + 1]) for i in range(len(ys))]
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


# -- HTML ------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1300px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
tr.best td { background: #fff2e6; font-weight: bold; }
.note { color: #8a5a00; } .muted { color: #777; } img { max-width: 100%; }
.failed { color: #b00; } .running { color: #06c; }
td.l { white-space: pre-wrap; }
"""


class Markup(str):
    """Text that is already HTML: table cells holding it are not escaped again."""


def _e(value: Any) -> str:
    return value if isinstance(value, Markup) else html.escape(str(value))


def _link(path: Path | None, out: Path, root: Path) -> Markup | str:
    """A link relative to the page (still valid when the results dir moves), named from root."""
    if path is None:
        return "–"
    try:
        href = os.path.relpath(path, out)
    except ValueError:  # another drive on Windows
        href = path.as_uri()
    try:
        text = str(path.relative_to(root))
    except ValueError:
        text = str(path)
    return Markup(f'<a href="{html.escape(href)}">{html.escape(text)}</a>')


def _or_dash(value: Any) -> Any:
    return "–" if value is None else value


def _fmt(value: Any) -> str:
    if isinstance(value, Markup):
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    left: int = 0,
    row_classes: Sequence[str] = (),
) -> str:
    """An HTML table; the first ``left`` columns are text (left-aligned)."""
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(headers)
    )
    body = []
    for n, row in enumerate(rows):
        cls = row_classes[n] if n < len(row_classes) else ""
        cells = "".join(
            f'<td class="{"l" if i < left else ""}">{_e(_fmt(v))}</td>' for i, v in enumerate(row)
        )
        body.append(f'<tr class="{cls}">{cells}</tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(name: str | None, alt: str) -> str:
    return f'<p><img src="{_e(name)}" alt="{_e(alt)}"></p>' if name else ""


def _runs_text(job: JobInfo) -> str:
    total = job.planned_runs or job.settings.get("learning_runs_per_job") or "?"
    return f"{job.runs_done}/{total}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _best_section(results: Results, top: int, out: Path) -> str:
    jobs = results.finished()[:top]
    if not jobs:
        return "<p>No job has reported results yet.</p>"
    std_metric = results.std_metric()
    headers = [
        "rank",
        "job",
        f"{results.metric}",
        std_metric,
        "runs",
        "rewards of the runs",
        "failed attempts",
        "resumes",
        *(_short(h) for h in results.hyperparameters),
    ]
    rows = []
    for rank, job in enumerate(jobs, 1):
        rewards = ", ".join(f"{r:.4g}" for r in job.rewards) or "–"
        runs = _fmt(job.metrics.get("learning_runs", len(job.rewards)))
        rows.append(
            [
                rank,
                job.job_id,
                job.value(results.metric),
                job.metrics.get(std_metric, "–"),
                runs,
                rewards,
                job.failed_attempts,
                job.resumes,
                *(job.settings.get(h, "–") for h in results.hyperparameters),
            ]
        )
    best = jobs[0]
    where = f" ({_link(best.working_dir, out, results.directory)})" if best.working_dir else ""
    direction = "lowest" if results.minimize else "highest"
    lead = (
        f"<p>Best: <b>job {best.job_id}</b>, {_e(results.metric)} = "
        f"<b>{_e(_fmt(best.value(results.metric)))}</b> ± "
        f"{_e(_fmt(best.metrics.get(std_metric, float('nan'))))} (std over its learning runs)"
        f"{where}. Sorted {direction} first;"
        f" {_plural(len(results.finished()), 'job')} with results.</p>"
    )
    settings = "".join(
        f"<li><code>{_e(h)}</code> = <code>{_e(best.settings.get(h, '–'))}</code></li>"
        for h in results.hyperparameters
    )
    return (
        lead
        + (f"<ul>{settings}</ul>" if settings else "")
        + _table(headers, rows, left=0, row_classes=["best"])
    )


def _failures_section(results: Results, figure: str | None, out: Path) -> str:
    parts = []
    total_failed = sum(j.failed_attempts for j in results.jobs)
    total_resumes = sum(j.resumes for j in results.jobs)
    parts.append(
        f"<p>{_plural(total_failed, 'failed attempt')} and"
        f" {_plural(total_resumes, 'preemption resume')} in {_plural(len(results.jobs), 'job')}."
        " A failed attempt starts its learning run over with a"
        " new seed; a resume continues a preempted step from its checkpoint.</p>"
    )
    parts.append(_img(figure, "failed attempts and resumes per job"))
    rows = [
        [
            j.job_id,
            f.run,
            f.attempt,
            f.iteration,
            f.reason,
            _link(f.run_dir / STDERR_FILE, out, results.directory),
        ]
        for j in results.jobs
        for f in j.failures
    ]
    if rows:
        parts.append(
            _table(["job", "run", "attempt", "iteration", "reason", "its stderr"], rows, left=0)
        )
    errors = [[j.job_id, e] for j in results.jobs for e in j.server_errors]
    if errors:
        parts.append("<p>Errors the jobs sent to cluster_utils (from cluster_run.log):</p>")
        parts.append(_table(["job", "error"], errors, left=2))
    return "".join(parts)


def _jobs_section(results: Results, out: Path) -> str:
    std_metric = results.std_metric()
    headers = [
        "job",
        "status",
        results.metric,
        std_metric,
        "runs done",
        "rewards so far",
        "failed attempts",
        "resumes",
        "exits for resume",
        "working directory",
    ]
    rows, classes = [], []
    for job in results.jobs:
        rewards = ", ".join(f"{r:.4g}" for r in job.rewards) or "–"
        status = job.status
        if status == RUNNING and job.runs:
            current = next((r for r in job.runs if not r.done), None)
            if current is None:
                status += " (all runs done, results not sent yet)"
            else:
                status += (
                    f" (run {current.run}, iteration {current.iteration},"
                    f" attempt {current.attempt})"
                )
        rows.append(
            [
                job.job_id,
                status,
                _or_dash(job.value(results.metric)),
                job.metrics.get(std_metric, "–"),
                _runs_text(job),
                rewards,
                job.failed_attempts,
                job.resumes,
                job.exits_for_resume,
                _link(job.working_dir, out, results.directory),
            ]
        )
        classes.append(job.status)
    return _table(headers, rows, row_classes=classes)


def write_report(
    results: Results, out: Path, reward_column: str | None = None, top: int = 10, curves: int = 3
) -> Path:
    """Write the figures and ``index.html`` into ``out``; return the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    best = results.finished()
    objective = objective_figure(results, out)
    progress = progress_figure(results, out)
    # While few jobs have results, jobs in progress fill the panels: are they learning?
    unfinished = [j for j in results.jobs if j.status != DONE and j.runs]
    curve_jobs = (best[:curves] + unfinished)[:curves]
    curves_png, no_curves = curves_figure(results, out, curve_jobs, reward_column)
    failures = failures_figure(results, out)

    done, running, failed = (len(results.by_status(s)) for s in (DONE, RUNNING, FAILED))
    state = "some still running, or stopped early" if running else "none running"
    now = datetime.datetime.now().isoformat(timespec="seconds")
    summary = [
        f"Results: <code>{_e(results.directory)}</code>",
        f"Started: {_e(results.start_time[:19] or 'unknown')}; report written {now}",
        f"Jobs: {len(results.jobs)} — <b>{done} with results</b>, "
        f'<span class="running">{running} running or waiting</span>, '
        f'<span class="failed">{failed} failed</span> ({state})',
        f"Objective: <code>{_e(results.metric)}</code>, "
        f"{'lower' if results.minimize else 'higher'} is better",
    ]
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in results.notes)
    curve_note = ""
    if no_curves:
        curve_note = (
            f'<p class="muted">No progress.csv values yet for {_e(", ".join(no_curves))}.</p>'
        )
    sections = [
        f"<h1>rl-relay report: {_e(results.name)}</h1>",
        "<ul>" + "".join(f"<li>{s}</li>" for s in summary) + "</ul>",
        notes,
        "<h2>Best configurations</h2>",
        _best_section(results, top, out),
        "<h2>Objective against each hyperparameter</h2>",
        _img(objective, "objective against each hyperparameter") or "<p>Nothing to plot yet.</p>",
        "<h2>Objective over the jobs</h2>",
        _img(progress, "objective over jobs") or "<p>Nothing to plot yet.</p>",
        "<h2>Learning curves of the best jobs</h2>",
        _img(curves_png, "learning curves") or "<p>No progress.csv to plot yet.</p>",
        curve_note,
        "<h2>Failed attempts and resumes</h2>",
        _failures_section(results, failures, out),
        "<h2>All jobs</h2>",
        _jobs_section(results, out),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>rl-relay report: {_e(results.name)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
    index = out / INDEX
    atomic_write_text(index, page)
    logger.info("wrote %s", index)
    return index
