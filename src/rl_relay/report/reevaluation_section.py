"""The report's re-evaluation section: the search's estimate beside the honest score.

Each request has its own directory (``reevaluation/``, ``reevaluation-2/``, ...); the section
shows the one started last that has a summary, and says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rl_relay.layout import ReevaluationPaths, ResultsPaths
from rl_relay.reevaluation_request import Earlier, describe, latest
from rl_relay.report.figures import BEST_COLOR, _pyplot, _save, short
from rl_relay.report.files import read_csv_rows, read_json


def reevaluation_figure(rows: Sequence[dict[str, str]], metric: str, out: Path) -> str | None:
    """Per configuration: the search's estimate beside the re-evaluated 95% interval, so
    the selection bias of the search is visible. A configuration without a re-evaluated
    mean is left out; one without an interval (1 run) shows its mean alone."""
    points = []
    for row in rows:
        try:
            mean = float(row["reevaluated_mean"])
            point = (row["search_job"], float(row["search_estimate"]), mean)
        except (KeyError, ValueError):
            continue
        try:
            low, high = float(row["ci95_low"]), float(row["ci95_high"])
        except (KeyError, ValueError):
            low = high = mean  # unknown: no error bar
        if not all(map(math.isfinite, (point[1], mean, low, high))):
            continue
        points.append((*point, low, high))
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(points) + 2), 3.8))
    xs = list(range(len(points)))
    ax.plot(xs, [p[1] for p in points], "o", color="tab:gray", label="search's estimate")
    means = [p[2] for p in points]
    errors = [
        [m - p[3] for m, p in zip(means, points, strict=True)],
        [p[4] - m for m, p in zip(means, points, strict=True)],
    ]
    ax.errorbar(
        [x + 0.15 for x in xs],
        means,
        yerr=errors,
        fmt="s",
        color=BEST_COLOR,
        capsize=4,
        label="re-evaluated mean, 95% CI",
    )
    ax.set_xticks(xs, [f"job {p[0]}" for p in points])
    ax.set_xlabel("configuration (search job), best re-evaluated first")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return _save(fig, out, "reevaluation.png")


def _earlier(directory: Path) -> list[tuple[Earlier, ReevaluationPaths]]:
    """Every re-evaluation directory, with its request when it is readable (tolerant: a
    report never fails on a hand-edited file)."""
    found = []
    for paths in ResultsPaths(directory).reevaluations():
        request = read_json(paths.request)
        if not isinstance(request, dict) or not isinstance(request.get("identity"), dict):
            request = None
        found.append((Earlier(paths.number or 1, paths.dir.name, request), paths))
    return found


def which_reevaluation(directory: Path) -> tuple[ReevaluationPaths, str] | None:
    """The latest started re-evaluation with a summary, and a sentence that says which it
    is among the others (each request has its own directory)."""
    found = _earlier(directory)
    with_summary = [(e, p) for e, p in found if read_csv_rows(p.summary)[1]]
    shown = latest([e for e, _ in with_summary])
    if shown is None:
        return None
    paths = next(p for e, p in with_summary if e is shown)
    text = f"From {shown.name}/: {describe(shown.identity)}"
    if shown.last_started:
        text += f", last started {shown.last_started[:19].replace('T', ' ')} UTC"
    if len(found) > 1:
        others = ", ".join(f"{e.name}/" for e, _ in found if e is not shown)
        text += f"; the latest of {len(found)} re-evaluations here (also {others})"
        newest = latest([e for e, _ in found])
        if newest is not None and newest is not shown:
            text += f"; {newest.name}/ was started later and has no summary yet"
    return paths, text + "."


def reevaluation_section(
    directory: Path,
    metric: str,
    out: Path,
    table: Callable[..., str],
    img: Callable[[str | None, str], str],
    escape: Callable[[Any], str],
) -> list[str]:
    """The re-evaluation on fresh seeds, when ``rl-relay reevaluate`` has run: the latest."""
    chosen = which_reevaluation(directory)
    if chosen is None:
        return []
    paths, which = chosen
    header, rows = read_csv_rows(paths.summary)
    records = [dict(zip(header, row, strict=True)) for row in rows]
    figure = reevaluation_figure(records, metric, out)
    try:
        advice = paths.recommendation.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        advice = ""
    shown = [h for h in header if h != "seeds"]
    return [
        "<h2>Re-evaluation on fresh seeds</h2>",
        "<p>The best configurations run again on seeds no search job used"
        " (<code>rl-relay reevaluate</code>): the search's estimate of its best is biased"
        " upwards by selection; the re-evaluated mean and its 95% interval are the honest"
        " numbers.</p>",
        f"<p>{escape(which)}</p>",
        f"<p><b>{escape(advice.strip())}</b></p>" if advice else "",
        img(figure, "search estimate and re-evaluated interval per configuration"),
        table([short(h) for h in shown], [[_cell(r[h]) for h in shown] for r in records]),
    ]


def _cell(text: str) -> Any:
    try:
        return float(text) if "." in text or "e" in text else int(text)
    except ValueError:
        return text
