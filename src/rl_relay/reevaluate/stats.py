"""Re-evaluation of an HPO's best configurations on fresh seeds (pure parts).

The best job of a search is best partly by luck: its score is the maximum of noisy
estimates, biased upwards (selection bias). Running the top configurations again, with
seeds no search job used and several runs each, gives an honest estimate and a confidence
interval. This module chooses the configurations, the seeds and the grid search settings,
and summarises the results; ``rl_relay.reevaluate.command`` does the files and processes.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from rl_relay.job.state import Plan
from rl_relay.paramtree import discard, lookup, set_dotted

#: The parameter that tells a re-evaluation job which search job it re-evaluates.
REEVALUATION_OF = "reevaluation_of"
#: Where the search for a fresh base seed starts (far from the seeds users pick).
FIRST_BASE_SEED = 1_000_003
#: The default learner's fixed evaluation seed (``rl_relay.learner.envs.eval_env_seed``).
EVAL_SEED_PARAM = "config.rl_common_config.eval_seed"


class ReevaluationError(ValueError):
    """The re-evaluation cannot be done as asked (a clear message for the user)."""


@dataclass(frozen=True)
class Candidate:
    """One configuration of the search, as its job ran it."""

    job_id: int
    #: The search's estimate: the job's own metric value.
    estimate: float
    #: The optimised parameters' exact values, from the job's settings.json.
    values: dict[str, Any]
    #: When early stopping ended the job, why its estimate is a shorter training's than the
    #: re-evaluation's: e.g. "after 1 of 3 training iterations" (None: it was not stopped).
    stopped: str | None = None


@dataclass
class Evaluated:
    """A candidate with the rewards of its re-evaluation runs."""

    candidate: Candidate
    rewards: list[float]
    seeds: list[int] = field(default_factory=list)
    #: Runs that gave up (every attempt failed): they have no reward.
    failed_runs: int = 0

    @property
    def runs(self) -> int:
        return len(self.rewards)

    @property
    def rankable(self) -> bool:
        """Has a re-evaluated mean: at least one finished run, rewards that are numbers."""
        return not math.isnan(self.mean)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.rewards) if self.rewards else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof 1) of the runs' rewards."""
        return statistics.stdev(self.rewards) if len(self.rewards) > 1 else math.nan

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Confidence interval of the mean (Student's t over the runs); nan below 2 runs."""
        mean, half = t_interval(self.rewards, confidence)
        return (mean - half, mean + half)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half width of the two-sided Student-t interval of the mean).

    The mean is nan without values, the half width nan below 2 of them. Over paired
    differences (two methods on the same seeds) it is the paired t interval.
    """
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    from scipy.stats import t

    n = len(values)
    return mean, float(t.ppf(0.5 + confidence / 2, n - 1) * statistics.stdev(values) / math.sqrt(n))


def welch_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> tuple[float, float]:
    """(mean(a) - mean(b), half width of Welch's t interval of that difference).

    Welch's interval does not assume equal variances (scipy's ``ttest_ind(a, b,
    equal_var=False).confidence_interval``). The difference is nan when a side is empty, the
    half width nan when a side has fewer than 2 values, and 0 when neither side varies.
    """
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


def choose(
    ranked: Sequence[tuple[int, float]],
    settings_of: Mapping[int, Mapping[str, Any]],
    names: Sequence[str],
    top: int,
) -> tuple[list[Candidate], str | None]:
    """The ``top`` best configurations whose job's settings were kept (the best job of each),
    with a note when fewer are available, or when ``top`` cuts through configurations of
    equal estimate (a reward's ceiling, e.g. CartPole's 500, makes many): which of those
    is re-evaluated is then arbitrary, and the note says how many ``--top`` takes them all.

    ``ranked``: (job id, metric) best first; ``settings_of``: settings.json per job id.
    """
    chosen: list[Candidate] = []
    tied: list[Candidate] = []  # left out, with the last chosen one's estimate
    for job_id, estimate in ranked:
        settings = settings_of.get(job_id)
        if settings is None:
            continue
        values = {name: lookup(settings, name, None) for name in names}
        if any(c.values == values for c in chosen + tied):
            continue  # the same configuration again (restarts): its best job stands for it
        if len(chosen) < top:
            chosen.append(Candidate(job_id, estimate, values))
        elif estimate == chosen[-1].estimate:
            tied.append(Candidate(job_id, estimate, values))
        else:
            break
    notes = []
    if len(chosen) < top:
        notes.append(
            f"only {len(chosen)} distinct configuration(s) of the best jobs have their working"
            f" directory (settings.json) kept, so {len(chosen)} instead of {top} are"
            " re-evaluated; keep more with num_best_jobs_whose_data_is_kept (or"
            " remove_working_dirs: false)"
        )
    if tied:
        level = [c for c in chosen if c.estimate == chosen[-1].estimate]
        ids = ", ".join(str(i) for i in sorted(c.job_id for c in level + tied))
        notes.append(
            f"{len(level) + len(tied)} distinct configurations share the estimate"
            f" {chosen[-1].estimate:g} (search jobs {ids}) and --top {top}"
            f" takes {len(level)} of them, so which ones is arbitrary: the search cannot tell"
            f" them apart; --top {top + len(tied)} re-evaluates them all"
        )
    if not chosen:
        raise ReevaluationError(notes[0] if notes else "no job with results")
    return chosen, ". ".join(notes) or None


def fresh_base_seed(
    used: Iterable[int], jobs: int, runs: int, max_attempts: int, start: int = FIRST_BASE_SEED
) -> int:
    """A base seed whose job-scoped seeds (jobs 0..jobs-1, every run and attempt) are all
    different from ``used`` (every seed of the search's restarts.json files)."""
    used = set(used)
    base = start
    while True:
        plans = [Plan(runs, 1, max_attempts, base, "job", job) for job in range(jobs)]
        seeds = {p.seed(r, a) for p in plans for r in range(runs) for a in range(max_attempts)}
        if seeds.isdisjoint(used):
            return base
        base += 1


def grid_settings(
    hpo: Mapping[str, Any],
    candidates: Sequence[Candidate],
    runs: int,
    base_seed: int,
    results_dir: str,
    name: str,
    local: bool,
    runs_per_job: int = 1,
) -> dict[str, Any]:
    """cluster_utils ``grid_search`` settings that run exactly the candidates, ``runs``
    learning runs each, ``runs_per_job`` of them in each job, with the search's settings
    otherwise.

    One run per job by default: a job's runs train one after another, so the runs of a
    configuration in one job take ``runs`` trainings' time on one core where the backend
    could run them side by side. The grid is repeated (cluster_utils' ``restarts``) once per
    job of a configuration; every job has its own number, so its own job-scoped seeds.
    ``results_dir`` must be absolute: cluster_utils joins a relative one onto $HOME.
    """
    if not PurePath(results_dir).is_absolute():
        raise ValueError(f"results_dir must be absolute, not {results_dir!r}")
    if runs_per_job < 1 or runs % runs_per_job:
        raise ValueError(f"runs_per_job ({runs_per_job}) must divide runs ({runs})")
    names = list(candidates[0].values)
    keep = (
        "script_relative_path",
        "environment_setup",
        "cluster_requirements",
        "run_in_working_dir",
        "git_params",
        "singularity",
        "remove_jobs_dir",
    )
    settings: dict[str, Any] = {k: copy.deepcopy(hpo[k]) for k in keep if k in hpo}
    fixed = copy.deepcopy(dict(hpo.get("fixed_params", {})))
    for key, value in (
        ("learning_runs_per_job", runs_per_job),
        ("seed", base_seed),
        ("seed_scope", "job"),
    ):
        fixed.pop(key, None)
        set_dotted(fixed, key, value)
    # The search may score every job on the same episodes (a fixed eval_seed); its choice is
    # partly fitted to them, so the re-evaluation drops the setting and each run is scored on
    # episodes of its own fresh seed (the template's null; cluster_utils refuses a None).
    discard(fixed, EVAL_SEED_PARAM)
    settings.update(
        {
            "optimization_procedure_name": name,
            "results_dir": results_dir,
            "fixed_params": fixed,
            "hyperparam_list": [
                {
                    "param": [*names, REEVALUATION_OF],
                    "values": [[*(c.values[n] for n in names), c.job_id] for c in candidates],
                }
            ],
            "restarts": runs // runs_per_job,
            "remove_working_dirs": False,
            "load_existing_results": True,
            "no_user_interaction": True,
            "generate_report": "never",
        }
    )
    if local:
        settings["local_run"] = True
    return settings


def rank(evaluated: Sequence[Evaluated], minimize: bool) -> list[Evaluated]:
    """Best re-evaluated mean first, then every configuration without one (no finished run,
    or rewards that are not numbers) in the order given: NaN compares false with everything,
    so sorting it among the others would scramble the ranking."""
    rankable = [e for e in evaluated if e.rankable]
    return sorted(rankable, key=lambda e: e.mean if minimize else -e.mean) + [
        e for e in evaluated if not e.rankable
    ]


def status(e: Evaluated, runs_requested: int | None = None) -> str:
    """What the row's numbers are worth, in words: "ok", or why not."""
    if not e.rankable:
        if e.runs:
            return "failed: its rewards are not numbers"
        return "failed: no run finished" if e.failed_runs else "no run finished"
    parts = []
    if e.runs == 1:
        parts.append("1 run: interval unknown")
    elif runs_requested is not None and e.runs < runs_requested:
        parts.append(f"{e.runs} of {runs_requested} runs")
    if e.failed_runs:
        parts.append(f"{e.failed_runs} run(s) failed")
    return "; ".join(parts) or "ok"


def _ids(evaluated: Iterable[Evaluated]) -> str:
    return ", ".join(str(e.candidate.job_id) for e in evaluated)


def recommendation(evaluated: Sequence[Evaluated], minimize: bool) -> str:
    """Which configuration to use and why; overlapping intervals are called a tie.

    Only configurations with a re-evaluated mean take part; one run gives a mean but no
    interval, so such a configuration can be recommended but never called a tie.
    """
    ranked = rank(evaluated, minimize)
    usable = [e for e in ranked if e.rankable]
    left_out = [e for e in ranked if not e.rankable]
    not_ranked = ""
    if left_out:
        not_ranked = (
            " Not ranked: "
            + "; ".join(f"search job {e.candidate.job_id} ({status(e)})" for e in left_out)
            + "."
        )
    if not usable:
        return "No configuration has a finished re-evaluation run: nothing to recommend." + (
            not_ranked
        )
    best = usable[0]
    low, high = best.interval()
    direction = "lowest" if minimize else "highest"
    if best.runs >= 2:
        numbers = f"{best.mean:.4g}, 95% CI {low:.4g} to {high:.4g}, {best.runs} runs"
    else:
        numbers = f"{best.mean:.4g} from 1 run, its interval unknown"
    text = (
        f"Recommended: the configuration of search job {best.candidate.job_id}, the {direction}"
        f" re-evaluated mean ({numbers}; the search estimated {best.candidate.estimate:.4g})."
    )
    if best.failed_runs:
        text += f" {best.failed_runs} of its runs failed."
    one_run = [e for e in usable[1:] if e.runs < 2]
    if best.runs < 2:
        text += (
            " With one run the data do not tell it apart from the others; more runs (--runs) would."
        )
    else:
        ties = [
            e
            for e in usable[1:]
            if e.runs >= 2 and e.interval()[0] <= high and e.interval()[1] >= low
        ]
        if ties:
            text += (
                f" A tie with search job(s) {_ids(ties)}: their intervals overlap, so the data"
                " do not tell them apart; more runs (--runs) would."
            )
        if one_run:
            text += (
                f" Search job(s) {_ids(one_run)} finished 1 run: interval unknown, so a tie"
                " cannot be ruled out; more runs (--runs) would."
            )
    return text + not_ranked


SUMMARY_COLUMNS = (
    "rank",
    "search_job",
    "search_estimate",
    "reevaluated_mean",
    "reevaluated_std",
    "ci95_low",
    "ci95_high",
    "runs",
    "status",
    "seeds",
)


def _known(value: float) -> float | str:
    """A number, or "" for one that is unknown (NaN): an empty cell, not "nan"."""
    return "" if math.isnan(value) else value


def summary_rows(
    evaluated: Sequence[Evaluated], minimize: bool, runs_requested: int | None = None
) -> list[dict[str, Any]]:
    """One row per configuration, best re-evaluated mean first, those without one last;
    unknown numbers are empty cells, ``status`` says why; parameters last."""
    rows = []
    for position, e in enumerate(rank(evaluated, minimize), 1):
        low, high = e.interval()
        rows.append(
            {
                "rank": position,
                "search_job": e.candidate.job_id,
                "search_estimate": e.candidate.estimate,
                "reevaluated_mean": _known(e.mean),
                "reevaluated_std": _known(e.std),
                "ci95_low": _known(low),
                "ci95_high": _known(high),
                "runs": e.runs,
                "status": status(e, runs_requested),
                "seeds": " ".join(str(s) for s in e.seeds),
                **e.candidate.values,
            }
        )
    return rows


def _format(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary as aligned text for the terminal ("—" where a number is unknown)."""
    if not rows:
        return ""
    params = [k for k in rows[0] if k not in SUMMARY_COLUMNS]
    headers = ["rank", "job", "search", "re-evaluated", "95% CI", "runs", "status", *params]
    lines = []
    for r in rows:
        mean, std, low = r["reevaluated_mean"], r["reevaluated_std"], r["ci95_low"]
        if mean == "":
            reevaluated = ci = "—"
        elif std == "" or low == "":
            reevaluated, ci = _format(mean, ".4g"), "unknown"
        else:
            reevaluated = f"{_format(mean, '.4g')} ± {_format(std, '.3g')}"
            ci = f"[{_format(low, '.4g')}, {_format(r['ci95_high'], '.4g')}]"
        lines.append(
            [
                str(r["rank"]),
                str(r["search_job"]),
                _format(r["search_estimate"], ".4g"),
                reevaluated,
                ci,
                str(r["runs"]),
                str(r.get("status", "")),
                *(_shorten(str(r[p])) for p in params),
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def _shorten(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
