"""The report's HTML page: summary, best configurations, figures, failures, all jobs."""

from __future__ import annotations

import datetime
import html
import logging
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rl_relay.atomic import atomic_write_text
from rl_relay.layout import ResultsPaths, StepPaths
from rl_relay.metrics import LEARNING_RUNS
from rl_relay.report.figures import (
    curves_figure,
    failures_figure,
    objective_figure,
    progress_figure,
    short,
)
from rl_relay.report.model import DONE, FAILED, RUNNING, JobInfo, Results
from rl_relay.report.reevaluation_section import reevaluation_section
from rl_relay.report.stopping_section import stopping_section

logger = logging.getLogger("rl_relay.report.command")

INDEX = "index.html"

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
    total = job.planned_runs or "?"  # load_results reads it from the settings without a plan
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
        *(short(h) for h in results.hyperparameters),
    ]
    rows = []
    for rank, job in enumerate(jobs, 1):
        rewards = ", ".join(f"{r:.4g}" for r in job.rewards) or "–"
        runs = _fmt(job.metrics.get(LEARNING_RUNS, len(job.rewards)))
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
    sharing = results.sharing_best()
    if len(sharing) > 1:
        ids = ", ".join(str(j.job_id) for j in sorted(sharing, key=lambda j: j.job_id))
        lead += (
            f'<p class="note">{len(sharing)} jobs share this best value (jobs {_e(ids)}): the'
            " search cannot tell them apart, and which one is listed first is arbitrary."
            f" <code>rl-relay reevaluate {_e(results.directory)} --top {len(sharing)}</code>"
            " re-trains each on fresh seeds and says which to use.</p>"
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
            _link(StepPaths(f.run_dir).stderr, out, results.directory),
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


def _pbt_section(results: Results, out: Path) -> list[str]:
    population = ResultsPaths(results.directory).population
    if not population.is_dir():
        return []
    from rl_relay.report.pbt_section import pbt_section

    return pbt_section(population, out, results.minimize, _table, _img, _e)


def _disk_line(results: Results) -> str:
    """Disk the jobs' working directories hold: in all, per job (median) and the largest."""
    sizes = sorted(job.disk_bytes for job in results.jobs if job.working_dir is not None)
    if not sizes:
        return "Disk: no working directories"
    median = statistics.median(sizes)
    return (
        f"Disk: {sum(sizes) / 1e6:,.1f} MB in the jobs' working directories; per job"
        f" {median / 1e6:,.1f} MB (median), at most {sizes[-1] / 1e6:,.1f} MB"
    )


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
        _disk_line(results),
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
        *reevaluation_section(results.directory, results.metric, out, _table, _img, _e),
        *_pbt_section(results, out),
        *stopping_section(results, out, _table, _img, _e),
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
