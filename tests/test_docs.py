"""The README and ``docs/`` a newcomer reads: every relative link leads somewhere (a renamed
heading or moved file otherwise leaves a dead link; GitHub shows no error), and the README's
benchmark figures are ones the benchmark wrote."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from bench.hpo_quality.outcome import SEARCH_SEED
from bench.hpo_quality.report import report_stem

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
HTML_ID = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.cache  # one page is the target of many links
def anchors(page: Path) -> set[str]:
    """The anchors a page offers: its headings (repeats get -1, -2, ...) and HTML ids."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found, seen = set(HTML_ID.findall(text)), {}
    for heading in re.findall(r"^#+\s+(.*)$", text, re.M):
        s = slug(heading)
        found.add(f"{s}-{seen[s]}" if s in seen else s)
        seen[s] = seen.get(s, 0) + 1
    return found


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_anchor_rule_is_githubs() -> None:
    assert slug("Checkpoints on disk") == "checkpoints-on-disk"
    assert slug("Early stopping: chosen on search seeds 100-101, confirmed on 104-113") == (
        "early-stopping-chosen-on-search-seeds-100-101-confirmed-on-104-113"
    )
    assert slug("`rl-relay check`") == "rl-relay-check"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_lead_to_a_file_and_heading_that_exist(page: Path) -> None:
    dead = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            dead.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            dead.append(f"{target}: no heading #{fragment} in {linked.name}")
    assert not dead, f"{page.relative_to(REPO)}: dead links: {dead}"


def test_the_readme_links_to_the_docs() -> None:
    """The README is the five-minute page; the detail must be reachable from it."""
    linked = {t.partition("#")[0] for t in relative_links(REPO / "README.md")}
    assert "docs/benchmark.md" in linked and "docs/early_stopping.md" in linked


#: a README benchmark row: method | search seeds | env steps / search | re-evaluated
README_ROW = re.compile(r"^\| (.+?) \| (\d+)-(\d+) \| ([\d,]+) \| (-?[\d.]+ ± [\d.]+) \|$", re.M)


def report_rows(report: Path) -> list[tuple[int, str, str]]:
    """(searches, env steps, re-evaluated) of each row of a benchmark report's table."""
    cells = (line.split(" | ") for line in report.read_text(encoding="utf-8").splitlines())
    return [(int(c[1]), c[2], c[5]) for c in cells if len(c) == 7 and c[1].isdigit()]


def test_the_readme_benchmark_figures_are_the_saved_reports() -> None:
    """The README's benchmark tables quote only measured figures: each row's env steps and
    re-evaluated mean ± CI are a row of a report ``bench/hpo_quality.py`` wrote from that
    many searches (one per search seed), starting at that seed."""
    rows = README_ROW.findall((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(rows) >= 10
    unmatched = []
    for method, first, last, steps, score in rows:
        searches = int(last) - int(first) + 1
        name = f"{report_stem(int(first) - SEARCH_SEED)}.md"
        reports = list((REPO / "bench" / "results").glob(f"*/{name}"))
        if not any((searches, steps, score) in report_rows(r) for r in reports):
            unmatched.append(f"{method} ({first}-{last}): {steps}, {score} not in any {name}")
    assert not unmatched, unmatched
