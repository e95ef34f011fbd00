"""The report's re-evaluation section: the search's estimate beside the honest score."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rl_relay.layout import RECOMMENDATION_FILE, ResultsPaths
from rl_relay.report.figures import BEST_COLOR, _pyplot, _save, short
from rl_relay.report.files import read_csv_rows


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


def reevaluation_section(
    directory: Path,
    metric: str,
    out: Path,
    table: Callable[..., str],
    img: Callable[[str | None, str], str],
    escape: Callable[[Any], str],
) -> list[str]:
    """The re-evaluation on fresh seeds, when ``rl-relay reevaluate`` has run."""
    paths = ResultsPaths(directory)
    header, rows = read_csv_rows(paths.reevaluation_summary)
    if not rows:
        return []
    records = [dict(zip(header, row, strict=True)) for row in rows]
    figure = reevaluation_figure(records, metric, out)
    try:
        advice = (paths.reevaluation / RECOMMENDATION_FILE).read_text(encoding="utf-8")
    except OSError:
        advice = ""
    shown = [h for h in header if h != "seeds"]
    return [
        "<h2>Re-evaluation on fresh seeds</h2>",
        "<p>The best configurations run again on seeds no search job used"
        " (<code>rl-relay reevaluate</code>): the search's estimate of its best is biased"
        " upwards by selection; the re-evaluated mean and its 95% interval are the honest"
        " numbers.</p>",
        f"<p><b>{escape(advice.strip())}</b></p>" if advice else "",
        img(figure, "search estimate and re-evaluated interval per configuration"),
        table([short(h) for h in shown], [[_cell(r[h]) for h in shown] for r in records]),
    ]


def _cell(text: str) -> Any:
    try:
        return float(text) if "." in text or "e" in text else int(text)
    except ValueError:
        return text
