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


@dataclass
class Evaluated:
    """A candidate with the rewards of its re-evaluation runs."""

    candidate: Candidate
    rewards: list[float]
    seeds: list[int] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return len(self.rewards)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.rewards) if self.rewards else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof 1) of the runs' rewards."""
        return statistics.stdev(self.rewards) if len(self.rewards) > 1 else math.nan

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Confidence interval of the mean (Student's t over the runs)."""
        if len(self.rewards) < 2:
            return (math.nan, math.nan)
        from scipy.stats import t

        half = t.ppf(0.5 + confidence / 2, len(self.rewards) - 1) * self.std
        half /= math.sqrt(len(self.rewards))
        return (self.mean - half, self.mean + half)


def choose(
    ranked: Sequence[tuple[int, float]],
    settings_of: Mapping[int, Mapping[str, Any]],
    names: Sequence[str],
    top: int,
) -> tuple[list[Candidate], str | None]:
    """The ``top`` best configurations whose job's settings were kept (the best job of each),
    with a note when fewer are available.

    ``ranked``: (job id, metric) best first; ``settings_of``: settings.json per job id.
    """
    chosen: list[Candidate] = []
    for job_id, estimate in ranked:
        settings = settings_of.get(job_id)
        if settings is None:
            continue
        values = {name: lookup(settings, name, None) for name in names}
        if any(c.values == values for c in chosen):
            continue  # the same configuration again (restarts): its best job stands for it
        chosen.append(Candidate(job_id, estimate, values))
        if len(chosen) == top:
            break
    note = None
    if len(chosen) < top:
        note = (
            f"only {len(chosen)} distinct configuration(s) of the best jobs have their working"
            f" directory (settings.json) kept, so {len(chosen)} instead of {top} are"
            " re-evaluated; keep more with num_best_jobs_whose_data_is_kept (or"
            " remove_working_dirs: false)"
        )
    if not chosen:
        raise ReevaluationError(note or "no job with results")
    return chosen, note


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
) -> dict[str, Any]:
    """cluster_utils ``grid_search`` settings that run exactly the candidates, each once,
    ``runs`` learning runs per job, with the search's settings otherwise.

    ``results_dir`` must be absolute: cluster_utils joins a relative one onto $HOME.
    """
    if not PurePath(results_dir).is_absolute():
        raise ValueError(f"results_dir must be absolute, not {results_dir!r}")
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
        ("learning_runs_per_job", runs),
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
            "restarts": 1,
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
    """Best re-evaluated mean first."""
    return sorted(evaluated, key=lambda e: e.mean if minimize else -e.mean)


def recommendation(evaluated: Sequence[Evaluated], minimize: bool) -> str:
    """Which configuration to use and why; overlapping intervals are called a tie."""
    ranked = [e for e in rank(evaluated, minimize) if e.runs]
    if not ranked:
        return "No configuration has re-evaluation results yet."
    best = ranked[0]
    low, high = best.interval()
    ties = [
        e
        for e in ranked[1:]
        if not (math.isnan(low) or math.isnan(e.interval()[0]))
        and e.interval()[0] <= high
        and e.interval()[1] >= low
    ]
    direction = "lowest" if minimize else "highest"
    text = (
        f"Recommended: the configuration of search job {best.candidate.job_id}, the {direction}"
        f" re-evaluated mean ({best.mean:.4g}, 95% CI {low:.4g} to {high:.4g}, {best.runs}"
        f" runs; the search estimated {best.candidate.estimate:.4g})."
    )
    if ties:
        ids = ", ".join(str(e.candidate.job_id) for e in ties)
        text += (
            f" A tie with search job(s) {ids}: their intervals overlap, so the data do not"
            " tell them apart; more runs (--runs) would."
        )
    return text


SUMMARY_COLUMNS = (
    "rank",
    "search_job",
    "search_estimate",
    "reevaluated_mean",
    "reevaluated_std",
    "ci95_low",
    "ci95_high",
    "runs",
    "seeds",
)


def summary_rows(evaluated: Sequence[Evaluated], minimize: bool) -> list[dict[str, Any]]:
    """One row per configuration, best re-evaluated mean first, parameters last."""
    rows = []
    for position, e in enumerate(rank(evaluated, minimize), 1):
        low, high = e.interval()
        rows.append(
            {
                "rank": position,
                "search_job": e.candidate.job_id,
                "search_estimate": e.candidate.estimate,
                "reevaluated_mean": e.mean,
                "reevaluated_std": e.std,
                "ci95_low": low,
                "ci95_high": high,
                "runs": e.runs,
                "seeds": " ".join(str(s) for s in e.seeds),
                **e.candidate.values,
            }
        )
    return rows


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary as aligned text for the terminal."""
    if not rows:
        return ""
    params = [k for k in rows[0] if k not in SUMMARY_COLUMNS]
    headers = ["rank", "job", "search", "re-evaluated", "95% CI", "runs", *params]
    lines = []
    for r in rows:
        lines.append(
            [
                str(r["rank"]),
                str(r["search_job"]),
                f"{r['search_estimate']:.4g}",
                f"{r['reevaluated_mean']:.4g} ± {r['reevaluated_std']:.3g}",
                f"[{r['ci95_low']:.4g}, {r['ci95_high']:.4g}]",
                str(r["runs"]),
                *(_shorten(str(r[p])) for p in params),
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def _shorten(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
