"""Running the searches: rl-relay's and the zoo's, each in its own directory, and the
re-evaluation of what each chose; which methods can run on this checkout.

Every search and re-evaluation is a child process in its own directory; its output goes to
a log file there, whose tail a failure reports.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_relay.layout import ResultsPaths
from rl_relay.metrics import EVAL_MEAN_REWARD, MEAN_REWARD
from rl_relay.reevaluate.stats import EVAL_SEED_PARAM

from . import REPO
from .methods import (
    NOT_COMPARED,
    OPTUNA_STOPPING,
    RL_RELAY_METHODS,
    ZOO_METHODS,
    Method,
    parse_method,
)
from .outcome import (
    Outcome,
    job_env_steps,
    job_rewards,
    read_best_job,
    read_pick,
    read_zoo_report,
    search_jobs,
    zoo_overrides,
)
from .space import Param, discretize, fixed_overrides, rollouts_within

#: ``~late``: evaluations spread over each search training, and how many of the last ones
#: score it (the re-evaluation scores the final one, as for every method)
LATE_EVALUATIONS, LATE_WINDOW = 5, 3
#: Early stopping: each training in this many chained iterations, evaluated at the end of
#: each (the zoo's median pruner evaluates 4 times: ``--n-evaluations 4``); with ``~late``
#: a run and each rung are scored by the mean of the last this many of those evaluations
STOPPING_ITERATIONS, STOPPING_LATE_WINDOW = 4, 2
#: the early stopping sections, as docs/early_stopping.md recommends them; ``pruned`` is the
#: zoo's own pruner (rl_zoo3: MedianPruner(n_startup_trials, n_warmup_steps=n_evaluations // 3))
STOPPING = {
    "asha": {"rule": "asha", "reduction_factor": 3, "grace_iterations": 1, "min_jobs_per_rung": 3},
    # no job stopped before 2 of its 4 iterations (rungs 2 and 3): on Pendulum rewards rise
    # late, and with grace 1 a job ASHA stopped after a quarter of its training never won
    "ashahalf": {
        "rule": "asha",
        "reduction_factor": 3,
        "grace_iterations": 2,
        "min_jobs_per_rung": 3,
    },
    "median": {"rule": "median", "startup_jobs": 5, "warmup_iterations": 1},
    "pruned": {"rule": "optuna", "pruner": "median", "n_startup_trials": 10, "n_warmup_steps": 1},
    # no job stopped before rung 2 of 3 (half its training): on Pendulum at 5,000 SAC steps a
    # quarter of the training says little, and the zoo's rung-1 stops cost more than they free
    "prunedhalf": {
        "rule": "optuna",
        "pruner": "median",
        "n_startup_trials": 10,
        "n_warmup_steps": 2,
    },
}
#: at most this many continuations of an early-stopping search to use its budget
MAX_ROUNDS = 8
#: DGD searches ordered value lists: continuous parameters become grids of this many points.
DGD_GRID_POINTS = 7
#: rl_zoo3's ``--n-startup-trials`` default: random configurations before TPE guides
ZOO_STARTUP_TRIALS = 10
# Seeds the seeding of numpy/random in the server process: cluster_utils has no seed setting.
_SEEDED = (
    "import random, sys, numpy; s = int(sys.argv.pop(1)); random.seed(s); numpy.random.seed(s);"
)
# rl-relay's optimisers are registered by `rl-relay hpo` (rl_relay.optimizers.register).
_PROBE = """
import json
from cluster_utils.server.settings import optimizer_dict
hpo = False
try:
    from rl_relay.cli import SUBCOMMANDS
    hpo = "hpo" in SUBCOMMANDS
    from rl_relay.optimizers import register
    register(optimizer_dict)
except ImportError:
    pass
print(json.dumps({"hpo": hpo, "optimizers": sorted(optimizer_dict)}))
"""


def optimizer_settings(method: str, samples: int, seed: int, trials: int) -> dict[str, Any]:
    """Each optimiser's settings for a search of ``samples`` jobs (its shipped defaults).

    ``trials`` is the zoo's trial count at the same budget. tpe starts with the zoo's 10
    random configurations, or with the zoo's share of them when ``@R`` or ``+KxM`` leaves it
    fewer jobs than the zoo has trials (5 of 8 where the zoo has 10 of 16): 10 of 8 would
    make it a random search.
    """
    base = parse_method(method).base
    if base == "cem":
        return {"with_restarts": False, "num_jobs_in_elite": 5}
    if base == "twopointsde":
        return {"opt_alg": "twopointsde"}
    if base == "random":
        return {"opt_alg": "randomsearch"}
    if base == "tpe":  # the zoo's sampler settings (rl_zoo3 --n-startup-trials 10)
        # at most 10: the share is of max(trials, samples); at least 1 for tiny searches
        startup = max(1, round(ZOO_STARTUP_TRIALS * samples / max(trials, samples)))
        return {"n_startup_trials": startup, "multivariate": True, "seed": seed}
    if base == "genetic":  # as hp_optim_ppo_ga.json: a quarter of the jobs seed the population
        return {"population_size": max(2, samples // 4), "parent_fraction": 0.25,
                "mutation_probability": 0.2, "seed": seed}  # fmt: skip
    return {"seed": seed}  # dgd: starts from the middle of every list


@dataclass(frozen=True)
class Env:
    """What every child gets: this checkout's rl_relay and bench first, the cluster_utils
    cache set."""

    variables: dict[str, str]

    @classmethod
    def current(cls) -> Env:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO / "src"), str(REPO), env.get("PYTHONPATH")])
        )
        cache = env.setdefault(
            "CLUSTER_UTILS_CACHE_DIR", str(Path.home() / ".cache" / "cluster_utils")
        )
        Path(cache).mkdir(parents=True, exist_ok=True)
        return cls(env)


def probe(env: Env) -> dict[str, Any]:
    """Whether ``rl-relay hpo`` exists and which optimisers cluster_utils would know."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env.variables,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def availability(methods: list[str], env: Env) -> tuple[dict[str, tuple[str, str]], bool]:
    """method -> ("", "") when it runs here, else (status, why); and whether `rl-relay hpo` exists.

    A method whose optimiser is not on this checkout is "missing" and one the benchmark does
    not compare (PBT) "skipped", each a row saying why; one the installed bench extra should
    provide (rl_zoo3, optuna, nevergrad) is "failed", so that a broken setup fails the smoke
    test instead of shrinking it.
    """
    found = probe(env)
    fix = "not installed: pip install -c constraints.txt -e '.[bench]'"
    state = {}
    for method in methods:
        m = parse_method(method).base
        opt = RL_RELAY_METHODS.get(m, "")
        needs = (
            ["rl_zoo3", "optuna"]
            if m in ZOO_METHODS
            else {"nevergrad": ["nevergrad"], "tpe": ["optuna"]}.get(opt, [])
        )
        gone = [x for x in needs if importlib.util.find_spec(x) is None]
        if m in NOT_COMPARED:
            state[method] = ("skipped", NOT_COMPARED[m])
        elif gone:
            state[method] = ("failed", f"{', '.join(gone)} {fix}")
        elif m in RL_RELAY_METHODS and opt not in found["optimizers"]:
            state[method] = ("missing", f"optimizer {opt!r} is not on this checkout")
        else:
            state[method] = ("", "")
    return state, bool(found["hpo"])


def start(
    cmd: Sequence[str], cwd: Path, log: Path | None, env: Env, cpu: int | None = None
) -> subprocess.Popen:
    """``cmd`` started in ``cwd``, its output to ``log`` (None: discarded), pinned to ``cpu``."""
    with open(log or os.devnull, "w", encoding="utf-8") as out:
        return subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env.variables,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}),
        )


def start_job(
    params: dict[str, Any], env: Env, cpu: int, log: str | None = None
) -> subprocess.Popen:
    """rl-relay's job runner by hand (``wrappers/run_learning.py params.json``) in the
    parameters' ``working_dir``, pinned to ``cpu``; its output to ``log`` there (or none)."""
    wd = Path(params["working_dir"])
    (wd / "params.json").write_text(json.dumps(params, indent=2))
    cmd = [sys.executable, str(REPO / "wrappers" / "run_learning.py"), str(wd / "params.json")]
    return start(cmd, REPO, wd / log if log else None, env, cpu)


def tail(log: Path, lines: int = 12) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True)
class Search:
    """One search to run: the same for every method except the method itself."""

    task: str
    algo: str
    env_id: str
    space_file: Path
    settings: dict[str, Any]
    space: list[Param]
    trials: int
    budget: int
    eval_episodes: int
    runs_per_job: int
    reward_column: str
    workers: int
    seed: int
    repeat: int


def zoo_search(s: Search, method: str, work: Path, env: Env) -> Outcome:
    """rl_zoo3's Optuna TPE search on the shared space (or its own, for zoo-native)."""
    outcome = Outcome(s.task, method, s.repeat)
    native = method == "zoo-native"
    options = {
        "--algo": s.algo,
        "--env": s.env_id,
        "--n-trials": s.trials,
        "--n-jobs": s.workers,
        "--sampler": "tpe",
        "--pruner": ZOO_METHODS[method],
        "-n": s.budget,
        "--eval-episodes": s.eval_episodes,
        "--seed": s.seed,
        "--num-threads": 1,
        "--device": "cpu",
        "-f": work / "logs",
        # one evaluation (the default at 10k) prunes nothing
        **({"--n-evaluations": 4} if method == "zoo-median" else {}),
    }
    zoo = ["--space", str(s.space_file), *(["--native"] if native else []), "--", "-optimize"]
    zoo += ["--no-optim-plots", *(str(x) for item in options.items() for x in item)]
    started = time.perf_counter()
    code = start(
        [sys.executable, "-m", "bench.hpo_quality.zoo", *zoo], work, work / "search.log", env
    ).wait()
    outcome.wall_seconds = time.perf_counter() - started
    reports = sorted((work / "logs" / s.algo).glob("report_*.csv"))
    if code != 0 or not reports:
        outcome.status, outcome.detail = "failed", f"exit {code}: {tail(work / 'search.log')}"
        return outcome
    found = read_zoo_report(reports[-1])
    outcome.trials, outcome.env_steps = found.trials, found.env_steps or 0
    outcome.estimate = found.best_value
    outcome.overrides = zoo_overrides(found, s.space, s.algo if native else None)
    return outcome


def rl_relay_settings(s: Search, method: str, results_dir: Path, name: str) -> dict[str, Any]:
    """The settings file of one rl-relay search: the shared one with the benchmark's budget."""
    m = parse_method(method)
    settings = json.loads(json.dumps(s.settings))
    if m.base == "dgd":
        settings = discretize(settings, DGD_GRID_POINTS)
    if m.stopping and s.algo == "ppo":  # every chained iteration must hold a rollout
        settings = rollouts_within(settings, s.budget // STOPPING_ITERATIONS, n_envs(s))
    # The same env-step budget as the zoo's; +KxM keeps K x M trainings for the re-runs.
    samples = max(1, (s.trials - m.pick_trainings) // s.runs_per_job)
    if m.fit_rounds:  # the first round as the later ones: what fits the share at full cost
        fits = fitting_samples(m.search_share(s.trials, s.budget), [], full_job_cost(s))
        samples = max(1, min(samples, fits))
    settings.update(
        optimization_procedure_name=name,
        results_dir=str(results_dir),
        remove_working_dirs=False,
        optimizer_str=RL_RELAY_METHODS[m.base],
        optimizer_settings=optimizer_settings(method, samples, s.seed, s.trials),
        no_user_interaction=True,
    )
    venv = Path(sys.prefix)
    settings["environment_setup"] = (
        {"virtual_env_path": str(venv)} if (venv / "bin" / "activate").exists() else {}
    )
    settings["cluster_requirements"] = {"request_cpus": 1, "max_cpus": s.workers}
    settings["fixed_params"].update(
        {
            "learning_runs_per_job": s.runs_per_job,
            "training_iterations": 1,
            "seed": s.seed,
            "reward_column": s.reward_column,
            "config.rl_common_config.total_timesteps": s.budget,
            "config.rl_common_config.eval_episodes": s.eval_episodes,
        }
    )
    if m.shared_episodes:  # the zoo evaluates every trial on an env seeded with its --seed
        settings["fixed_params"][EVAL_SEED_PARAM] = s.seed
    if m.late_window and not m.stopping:
        settings["fixed_params"].update(
            {"config.rl_common_config.evaluations": LATE_EVALUATIONS, "reward_window": LATE_WINDOW}
        )
    if m.stopping:  # the same total training, in chained iterations whose ends are rungs
        settings["early_stopping"] = dict(STOPPING[m.stopping])
        if m.stopping in OPTUNA_STOPPING:  # rl_zoo3 prunes after as many trials as its sampler
            # starts at random: 5 of 8 jobs with @2 where 10 of 8 would never prune
            startup = settings["optimizer_settings"]["n_startup_trials"]
            settings["early_stopping"]["n_startup_trials"] = startup
        settings["fixed_params"].update(
            {
                "training_iterations": STOPPING_ITERATIONS,
                "config.rl_common_config.total_timesteps": s.budget // STOPPING_ITERATIONS,
                "config.rl_common_config.evaluations": STOPPING_ITERATIONS,
                **({"reward_window": STOPPING_LATE_WINDOW} if m.late_window else {}),
            }
        )
    # cluster_utils asks up to n_jobs_per_iteration configurations before their results are
    # in; ~free makes that the number of workers, so each ask sees every finished job.
    ahead = s.workers if m.ask_when_free else max(s.workers, samples // 4)
    settings["optimization_setting"].update(number_of_samples=samples, n_jobs_per_iteration=ahead)
    return settings


def n_envs(s: Search) -> int:
    """The training envs of the shared settings' env template (1 when it sets none)."""
    index = REPO / s.settings["fixed_params"]["config.config_templates"]
    env_file = index.parent / json.loads(index.read_text())["env_config"]
    return int(json.loads(env_file.read_text()).get("n_envs") or 1)


def _job_dirs(parent: Path) -> list[Path]:
    return [d for d in parent.glob("*") if d.is_dir()]


def more_samples(target: int, job_steps: list[int]) -> int:
    """How many jobs to add so that a search that used ``job_steps`` (env steps per job so
    far) fills ``target`` at its mean cost per job; 0 once less than one job's cost is left."""
    used = sum(job_steps)
    per_job = used / max(len(job_steps), 1)
    if per_job <= 0 or target - used < per_job:
        return 0
    return int((target - used) // per_job)


def full_job_cost(s: Search) -> int:
    """A job's nominal env steps when nothing stops it: every run's whole budget."""
    return s.budget * s.runs_per_job


def fitting_samples(target: int, job_steps: list[int], job_cost: int) -> int:
    """How many jobs of ``job_cost`` env steps (a job's full training) still fit ``target``
    after ``job_steps``: ``~fit``'s rounds, which stay within the budget whatever is stopped."""
    return max(0, (target - sum(job_steps)) // job_cost)


def rl_relay_search(s: Search, method: str, work: Path, env: Env, use_hpo: bool) -> Outcome:
    """One cluster_utils search with the local backend, seeded, from the repository root."""
    outcome = Outcome(s.task, method, s.repeat)
    name = "search"
    settings_file = work / "settings.json"
    settings_file.write_text(json.dumps(rl_relay_settings(s, method, work, name), indent=2))
    if use_hpo:
        launch = "from rl_relay.cli import main; sys.exit(main(['hpo', '--local', *sys.argv[1:]]))"
    else:
        launch = "from rl_relay.local_hpo import main; sys.exit(main(sys.argv[1:]))"
    started = time.perf_counter()
    results = ResultsPaths(work / name)
    m = parse_method(method)
    samples = json.loads(settings_file.read_text())["optimization_setting"]["number_of_samples"]
    target = m.search_share(s.trials, s.budget)  # in env steps
    for round_ in range(MAX_ROUNDS):
        override = f"optimization_setting.number_of_samples={samples}"
        seed = str(s.seed + 1000 * round_)  # a continued driver draws new random numbers
        cmd = [sys.executable, "-c", _SEEDED + launch, seed, str(settings_file), override]
        code = start(cmd, REPO, work / f"search{round_ or ''}.log", env).wait()
        jobs = _job_dirs(results.working_dirs)
        if code != 0 or not m.stopping:
            break
        # early stopping frees env steps: more jobs until the budget is used (rl-relay hpo
        # continues the same search, telling the optimiser every result it had)
        used = [job_env_steps(d) for d in jobs]
        if m.fit_rounds:
            more = fitting_samples(target, used, full_job_cost(s))
        else:
            more = more_samples(target, used)
        if not more:
            break
        samples += more
    outcome.wall_seconds = time.perf_counter() - started
    if code != 0 or not results.all_data.exists():
        outcome.status, outcome.detail = "failed", f"exit {code}: {tail(work / 'search.log')}"
        return outcome
    outcome.trials = len(jobs)
    outcome.env_steps = sum(job_env_steps(d) for d in jobs)
    outcome.estimate, outcome.overrides = read_best_job(
        results.all_data, s.space, MEAN_REWARD, full_only=bool(m.stopping)
    )
    outcome.jobs = search_jobs(results.all_data, MEAN_REWARD, results.early_stopping, s.space)
    if m.picks:
        pick(s, m, results, outcome, work, env)
        outcome.wall_seconds = time.perf_counter() - started
    return outcome


def pick(
    s: Search, m: Method, results: ResultsPaths, outcome: Outcome, work: Path, env: Env
) -> None:
    """``rl-relay reevaluate --top K --runs M`` on the search; its best mean is the choice.

    The re-runs are part of the search's budget: their jobs and env steps count, and the
    search's estimate becomes the chosen configuration's re-evaluated mean.
    """
    reevaluate = ["reevaluate", str(results.root), "--top", str(m.top), "--runs", str(m.reruns)]
    cmd = [sys.executable, "-m", "rl_relay.cli", *reevaluate, "--local"]
    code = start(cmd, REPO, work / "pick.log", env).wait()
    rerun = results.reevaluation()  # the search's first and only re-evaluation
    summary = rerun.summary
    if code != 0 or not summary.exists():
        outcome.status, outcome.detail = "failed", f"pick exit {code}: {tail(work / 'pick.log')}"
        return
    reruns = _job_dirs(rerun.working_dirs)
    outcome.trials += len(reruns)
    outcome.env_steps += sum(job_env_steps(d) for d in reruns)
    outcome.estimate, outcome.overrides = read_pick(summary, s.space)


def reeval_params(
    s: Search, overrides: dict[str, Any], runs: int, seed: int, wd: Path
) -> dict[str, Any]:
    """One re-evaluation job's parameters: the shared settings and the choice, scored by its
    final evaluation whatever the method's search scored (``~late``'s window is not here).
    """
    templates = str((REPO / s.settings["fixed_params"]["config.config_templates"]).resolve())
    return {
        **fixed_overrides(s.settings),
        "config.config_templates": templates,
        "config.rl_common_config.total_timesteps": s.budget,
        "config.rl_common_config.eval_episodes": s.eval_episodes,
        EVAL_SEED_PARAM: None,  # episodes of each re-evaluation seed
        **overrides,
        "learning_runs_per_job": runs,
        "max_attempts": 2,
        "training_iterations": 1,
        "seed": seed,
        "reward_column": EVAL_MEAN_REWARD,
        "working_dir": str(wd),
    }


def reevaluate(s: Search, outcome: Outcome, seeds: int, work: Path, env: Env, base: int) -> None:
    """Train the chosen configuration with ``seeds`` fresh seeds at the full budget.

    rl-relay's job runner (``start_job``), split over the workers, each pinned to one CPU;
    worker w uses base seed ``base + w``, so every method's choice is re-evaluated on the
    same seeds, none of which a search used.
    """
    shares = [seeds // s.workers + (w < seeds % s.workers) for w in range(s.workers)]
    cpus = sorted(os.sched_getaffinity(0))
    procs = []
    for w, runs in enumerate(r for r in shares if r):
        wd = work / f"reeval{w}"
        if wd.exists():
            shutil.rmtree(wd)  # an interrupted re-evaluation starts over
        wd.mkdir(parents=True)
        params = reeval_params(s, outcome.overrides, runs, base + w, wd)
        procs.append((wd, start_job(params, env, cpus[w % len(cpus)], "reeval.log")))
    failures = []
    for wd, proc in procs:
        code = proc.wait()
        if code != 0:
            failures.append(f"{wd.name} exit {code}: {tail(wd / 'reeval.log')}")
        outcome.reeval_rewards += job_rewards(wd)
        outcome.reeval_env_steps += job_env_steps(wd)
    if failures:
        outcome.status, outcome.detail = "failed", "re-evaluation: " + "\n".join(failures)
