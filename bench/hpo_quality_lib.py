"""Pure parts of ``bench/hpo_quality.py``: what a search left behind, statistics, the table.

Kept apart from the subprocess code so that the parsing and the arithmetic are tested
without training anything (tests/test_bench_hpo_quality.py).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hpo_quality_space import Param, zoo_native_overrides

STEPS_COLUMN = "time/total_timesteps"
ZOO_STEPS_ATTR = "user_attrs_env_steps"


@dataclass
class Outcome:
    """One search (a method in one repeat) and the re-evaluation of what it chose."""

    task: str
    method: str
    repeat: int
    status: str = "ok"  # "ok", "missing" (not on this checkout), "not run", "failed"
    detail: str = ""
    trials: int = 0
    env_steps: int = 0
    wall_seconds: float = 0.0
    estimate: float = math.nan
    overrides: dict[str, Any] = field(default_factory=dict)
    reeval_rewards: list[float] = field(default_factory=list)
    reeval_env_steps: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Method:
    """A method name taken apart: ``base[@R][+KxM][~ce][~free]``.

    ``@R``: R learning runs per job (rl-relay). ``+KxM``: rl-relay's own workflow against
    luck, inside the same budget: the search gets ``K x M`` trainings fewer, then
    ``rl-relay reevaluate --top K --runs M`` re-runs its K best configurations on fresh seeds
    and the one with the best re-evaluated mean is the choice. ``~ce``: common evaluation
    episodes, every job of the search evaluated on the same start states. ``~free``: the
    search asks for a configuration only when a worker is free, as the zoo's threads do
    (``n_jobs_per_iteration`` = workers), not up to a quarter of the budget ahead of results.
    ``~late``: a run's score is the mean of its last 3 of 5 evaluations spread over the
    training (at 60, 80 and 100% of it), not the final one alone: a configuration that
    learned early and stayed good beats one that got a lucky last snapshot.
    """

    base: str
    runs_per_job: int | None = None
    top: int = 0
    reruns: int = 0
    #: ``~ce``: every job evaluated on the same episodes (``eval_seed``), as the zoo's trials
    shared_episodes: bool = False
    #: ``~free``: ask only when a worker is free, so every ask has all finished results
    ask_when_free: bool = False
    #: ``~late``: score the mean of the evaluations over the end of the training
    late_window: bool = False

    @property
    def picks(self) -> bool:
        return self.top > 0

    @property
    def pick_trainings(self) -> int:
        return self.top * self.reruns


#: the ``~`` suffixes of a method name and what each does (the error message lists them)
METHOD_FLAGS = {
    "ce": "common evaluation episodes",
    "free": "ask only when a worker is free",
    "late": "score the mean of the last 3 of 5 evaluations",
}


def parse_method(name: str) -> Method:
    """``Method`` of ``name``; ValueError saying what is wrong (a zoo method takes no suffix)."""
    core, *flags = name.split("~")
    if any(f not in METHOD_FLAGS for f in flags) or len(set(flags)) < len(flags):
        known = " and ".join(f"~{flag} ({what})" for flag, what in METHOD_FLAGS.items())
        raise ValueError(f"{name!r}: the ~ suffixes are {known}, each at most once")
    head, plus, pick = core.partition("+")
    base, at, runs = head.partition("@")
    method = Method(base)
    if at:
        if not (runs.isdigit() and int(runs) > 0):
            raise ValueError(f"{name!r}: @R needs a whole number of runs per job >= 1")
        method = Method(base, int(runs))
    if plus:
        top, x, reruns = pick.partition("x")
        if not (x and top.isdigit() and reruns.isdigit() and int(top) >= 1 and int(reruns) >= 2):
            raise ValueError(
                f"{name!r}: +KxM needs K >= 1 configurations re-run M >= 2 times (e.g. +2x2)"
            )
        method = Method(base, method.runs_per_job, int(top), int(reruns))
    return dataclasses.replace(
        method,
        shared_episodes="ce" in flags,
        ask_when_free="free" in flags,
        late_window="late" in flags,
    )


@dataclass(frozen=True)
class ZooSearch:
    """The best trial of an rl_zoo3 study and the env steps all its trials used."""

    best_value: float
    best_params: dict[str, str]
    trials: int
    env_steps: int | None  # None: the report has no env_steps attribute


def read_zoo_report(path: Path) -> ZooSearch:
    """Parse the ``report_*.csv`` that ``rl_zoo3.train -optimize`` writes (Optuna's dataframe)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    complete = [
        r for r in rows if r.get("state") == "COMPLETE" and r.get("value") not in ("", None)
    ]
    if not complete:
        states = sorted({r.get("state", "?") for r in rows}) or ["no trials"]
        raise ValueError(f"{path}: no complete trial ({', '.join(states)})")
    best = max(complete, key=lambda r: float(r["value"]))
    params = {k[len("params_") :]: v for k, v in best.items() if k.startswith("params_")}
    steps = [r.get(ZOO_STEPS_ATTR, "") for r in rows]
    env_steps = sum(int(float(s)) for s in steps if s) if any(steps) else None
    return ZooSearch(float(best["value"]), params, len(rows), env_steps)


def zoo_overrides(
    search: ZooSearch, space: Sequence[Param], native_algo: str | None = None
) -> dict[str, Any]:
    """The best zoo trial as rl-relay overrides (shared space, or the zoo's own with native)."""
    if native_algo is not None:
        return zoo_native_overrides(
            native_algo, {k: _scalar(v) for k, v in search.best_params.items()}
        )
    by_name = {p.name: p for p in space}
    missing = sorted(set(by_name) - set(search.best_params))
    if missing:
        raise ValueError(f"the zoo's best trial lacks {', '.join(missing)}")
    return {name: p.coerce(search.best_params[name]) for name, p in by_name.items()}


def _scalar(text: str) -> Any:
    """A CSV cell as int, float or str."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def progress_env_steps(path: Path) -> int:
    """The largest ``time/total_timesteps`` in an SB3 progress.csv (0 when there is none)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            values = [row.get(STEPS_COLUMN) or "" for row in csv.DictReader(f)]
    except FileNotFoundError:
        return 0
    return max((int(float(v)) for v in values if v), default=0)


def step_env_steps(step_dir: Path) -> int:
    """Env steps one step trained for: the learner's checkpoint info, else its progress.csv.

    ``model.resume.json`` has ``num_timesteps`` at the end of the step; progress.csv alone
    undercounts off-policy runs, which log every 4 episodes (SAC on Pendulum: every 800
    steps), where a run has no evaluation row with its step count (a learner before
    ``evaluations``, or ``eval_episodes`` 0).
    """
    from rl_relay.layout import StepPaths

    paths = StepPaths(step_dir)
    steps = progress_env_steps(paths.progress)
    info = Path(str(paths.save_path) + ".resume.json")
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # absent or torn
        steps = max(steps, int(json.loads(info.read_text(encoding="utf-8"))["num_timesteps"]))
    return steps


def job_env_steps(working_dir: Path) -> int:
    """Env steps a job trained for: every attempt of every run, over all its iterations.

    A chained iteration's counter continues the previous one, so each (run, attempt) counts
    its largest value; failed attempts count too (they used the steps).
    """
    from rl_relay.layout import JobPaths

    per_attempt: dict[tuple[int, int], int] = {}
    for (run, _iteration, attempt), step_dir in JobPaths(working_dir).step_dirs():
        steps = step_env_steps(step_dir)
        per_attempt[run, attempt] = max(per_attempt.get((run, attempt), 0), steps)
    return sum(per_attempt.values())


def read_best_job(all_data: Path, space: Sequence[Param], metric: str) -> tuple[float, dict]:
    """(the metric, the overrides) of the best job in cluster_utils' ``all_data.csv``."""
    with open(all_data, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get(metric) not in ("", None, "nan")]
    if not rows:
        raise ValueError(f"{all_data}: no job reported {metric}")
    best = rows[0]  # cluster_utils writes it best first
    return float(best[metric]), {p.name: p.coerce(best[p.name]) for p in space}


def read_pick(summary: Path, space: Sequence[Param]) -> tuple[float, dict]:
    """(re-evaluated mean, overrides) of the best configuration in ``rl-relay reevaluate``'s
    ``summary.csv``: the highest mean over its fresh runs (the search's own run not counted).
    """
    with open(summary, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r.get("runs") or 0) > 0]
    if not rows:
        raise ValueError(f"{summary}: no configuration has a finished re-evaluation run")
    best = max(rows, key=lambda r: float(r["reevaluated_mean"]))
    return float(best["reevaluated_mean"]), {p.name: p.coerce(best[p.name]) for p in space}


def job_rewards(working_dir: Path) -> list[float]:
    """The rewards of a job's finished learning runs (rl-relay's ``restarts.json``)."""
    from rl_relay.layout import JobPaths

    state = json.loads(JobPaths(working_dir).state.read_text(encoding="utf-8"))
    return [
        float(r["reward"]) for r in state["runs"] if r.get("done") and r.get("reward") is not None
    ]


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half width of the two-sided Student-t interval); half width nan below 2 values."""
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    from scipy.stats import t

    half = (
        t.ppf(0.5 + confidence / 2, len(values) - 1)
        * statistics.stdev(values)
        / math.sqrt(len(values))
    )
    return mean, float(half)


def _pooled(outcomes: Sequence[Outcome], method: str) -> list[float]:
    """Every re-evaluation reward of ``method``'s finished searches, all repeats together."""
    return [
        r for o in outcomes if o.method == method and o.status == "ok" for r in o.reeval_rewards
    ]


def welch_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> tuple[float, float]:
    """(mean(a) - mean(b), half width of Welch's t interval); nan half width below 2 each."""
    if not a or not b:
        return math.nan, math.nan
    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return diff, 0.0
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    from scipy.stats import t

    return diff, float(t.ppf(0.5 + confidence / 2, dof) * math.sqrt(va + vb))


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
            f"{method} - {reference}: {diff:+,.1f} ± {_fmt(half)} (95% Welch interval over"
            f" {len(rewards)} and {len(pooled[reference])} re-evaluations): {verdict}"
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
            lines.append(f"| {r['method']} | 0 | {r['status']} | | | | |")
            continue
        ci = f"{_fmt(r['reeval_mean'])} ± {_fmt(r['reeval_ci'])}"
        cells = [
            r["method"],
            str(r["searches"]),
            _fmt(r["env_steps"], 0),
            _fmt(r["wall_s"], 0),
            _fmt(r["estimate"]),
            ci,
            _fmt(r["reeval_median_of_repeats"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


CSV_COLUMNS = (
    "task",
    "method",
    "repeat",
    "status",
    "detail",
    "trials",
    "env_steps",
    "wall_seconds",
    "estimate",
    "reeval_mean",
    "reeval_ci95",
    "reeval_rewards",
    "reeval_env_steps",
    "overrides",
)


def write_csv(path: Path, outcomes: Sequence[Outcome]) -> None:
    """One row per search: what it used, what it estimated, how its choice re-evaluated."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS)
        writer.writeheader()
        for o in outcomes:
            mean, half = t_interval(o.reeval_rewards)
            row = {k: v for k, v in o.to_json().items() if k in CSV_COLUMNS}
            row.update(
                reeval_mean=mean,
                reeval_ci95=half,
                reeval_rewards=json.dumps(o.reeval_rewards),
                overrides=json.dumps(o.overrides, sort_keys=True),
            )
            writer.writerow(row)
