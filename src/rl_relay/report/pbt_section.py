"""The report's PBT section: every member's score over the boundaries, who copied whom,
the best member's hyperparameter schedule and the final population."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rl_relay.pbt import history
from rl_relay.pbt import records as rec
from rl_relay.report.figures import BEST_COLOR, _pyplot, _save, short


def pbt_figure(population: Path, out: Path) -> str | None:
    """Scores per member over the boundaries; an arrow where a member copied a donor."""
    records = rec.read_records(population)
    if not records:
        return None
    scores = history.score_table(records)
    events = history.exploit_events(rec.read_decisions(population))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4))
    points: dict[tuple[int, int], float] = {}
    for member, rows in sorted(scores.items()):
        xs = [b for b, s, _ in rows if s is not None and math.isfinite(s)]
        ys = [s for _, s, _ in rows if s is not None and math.isfinite(s)]
        points.update({(member, b): s for b, s in zip(xs, ys, strict=True)})
        ax.plot(xs, ys, marker="o", markersize=3, label=f"member {member}")
    for event in events:
        donor = points.get((event.donor, event.boundary))
        own = points.get((event.member, event.boundary))
        if donor is not None and own is not None:
            ax.annotate(
                "",
                xy=(event.boundary + 0.15, donor),
                xytext=(event.boundary, own),
                arrowprops={"arrowstyle": "->", "color": BEST_COLOR, "alpha": 0.6},
            )
    ax.set_xlabel("boundary (training iterations done)")
    ax.set_ylabel("score (reward_column at the boundary)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="x-small", ncol=2)
    ax.set_title("PBT: members over the boundaries (red arrows: exploit, member -> donor)")
    fig.tight_layout()
    return _save(fig, out, "pbt_population.png")


def pbt_section(
    population: Path,
    out: Path,
    minimize: bool,
    table: Callable[..., str],
    img: Callable[[str | None, str], str],
    escape: Callable[[Any], str],
) -> list[str]:
    """HTML parts of the PBT section ([] when the results hold no population)."""
    records = rec.read_records(population)
    if not records:
        return []
    decisions = rec.read_decisions(population)
    events = history.exploit_events(decisions)
    best = history.best_member(records, minimize)
    parts = [
        "<h2>Population Based Training</h2>",
        f"<p>{len(history.final_population(records))} members, {len(events)} exploits.</p>",
        img(pbt_figure(population, out), "PBT scores over the boundaries"),
    ]
    if best is not None:
        segments = history.schedule(records, decisions, best)
        names = sorted({k for s in segments for k in s.hyperparameters})
        rows: list[Sequence[Any]] = [
            [f"{s.start}–{s.end - 1}", s.member, *(s.hyperparameters.get(n, "–") for n in names)]
            for s in segments
        ]
        parts += [
            f"<p>The best member is <b>{best}</b>; its model was trained with this schedule"
            " (following its exploits back through the donors; <code>rl-relay reevaluate</code>"
            " replays it on fresh seeds):</p>",
            table(["iterations", "trained by member", *(short(n) for n in names)], rows),
        ]
    final = history.final_population(records)
    names = sorted({k for r in final.values() for k in r.hyperparameters})
    rows = [
        [
            m,
            r.boundary,
            r.status,
            r.score if r.score is not None else "–",
            *(r.hyperparameters.get(n, "–") for n in names),
        ]
        for m, r in sorted(final.items())
    ]
    parts += [
        "<p>The final population:</p>",
        table(["member", "boundary", "status", "score", *(short(n) for n in names)], rows),
    ]
    if events:
        parts.append(
            "<p>Exploits: "
            + escape(", ".join(f"b{e.boundary}: {e.member}←{e.donor}" for e in events))
            + "</p>"
        )
    return parts
