"""How good the configurations rl-relay's searches find are, against rl-baselines3-zoo's Optuna.

Every method searches the same space (``hp_optim/hp_optim_{ppo,sac}_zoo_space.json``; the zoo's
sampler is replaced in-process, see ``space.py`` for why and where the space
differs from the zoo's own) with the same env-step budget: ``--trials`` trainings of
``--budget`` env steps each (rl-relay: ``trials / runs-per-job`` jobs of ``runs-per-job``
runs), the same deterministic evaluation (``--eval-episodes``), 2 parallel workers, the zoo
without pruning (``zoo-median``: its median pruner). Each search's chosen configuration (the
zoo's best trial, rl-relay's best job) is then re-evaluated the same way for all: trained with
``--reeval-seeds`` fresh seeds at the full budget through rl-relay's learner, evaluated
deterministically. Env steps are counted from what really ran (``progress.csv`` of every job;
the zoo's trials record ``num_timesteps``), since on-policy training rounds up to whole
rollouts. Repeated over ``--repeats`` search seeds.

Writes ``OUT/<task>/hpo_quality.{csv,png,md}`` and one JSON per finished search under
``OUT/<task>/searches/``: a run started again with the same options skips what is done.
Exits 1 when a method that exists failed (a method not on this checkout is a row saying so).

    python bench/hpo_quality.py --quick            # the smoke version CI runs (~1-2 min)
    python bench/hpo_quality.py --task cartpole    # the full comparison (prints its estimate)
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import NoReturn

from rl_relay.atomic import atomic_write_json
from rl_relay.metrics import DEFAULT_REWARD_COLUMN

from . import REPO
from .cost import expected_seconds
from .methods import RL_RELAY_METHODS, ZOO_METHODS, is_known, parse_method
from .outcome import IN_REEVALUATION, IN_SEARCH, SEARCH_SEED, SEARCHED, Outcome, host
from .report import report
from .runs import Env, Search, availability, reevaluate, rl_relay_search, zoo_search
from .space import restrict, space_of

logger = logging.getLogger("hpo_quality")
#: name: (zoo algo, env id, settings file, --quick limits on the space). The settings file
#: also gives the defaults: trials = number_of_samples x learning_runs_per_job, budget =
#: total_timesteps, evaluation episodes, runs per job and the search objective.
TASKS = {
    "cartpole": ("ppo", "CartPole-v1", "hp_optim/hp_optim_ppo_zoo_space.json", {
        "config.rl_config.n_steps": (32, 128),
        "config.rl_config.batch_size": (32, 256),
        "config.rl_config.n_epochs": (1, 10),
    }),
    "pendulum": ("sac", "Pendulum-v1", "hp_optim/hp_optim_sac_zoo_space.json", {
        "config.rl_config.batch_size": (32, 128),
        "config.rl_config.policy_kwargs.net_arch:0": (64, 64),
        "config.rl_config.policy_kwargs.net_arch:1": (64, 64),
    }),
}  # fmt: skip
DEFAULT_METHODS = ("zoo", "zoo-median", "cem", "cem@2", "twopointsde", "genetic", "dgd", "pbt")
QUICK_METHODS = (
    "zoo", "cem@2", "twopointsde+1x2", "genetic", "dgd", "tpe~ce", "cem~asha", "tpe~pruned", "pbt"
)  # fmt: skip
FULL = {"repeats": 3, "reeval_seeds": 6}
#: --quick; 1,024 steps: with early stopping, 4 iterations of one PPO rollout (32 x 8 envs) each
QUICK = {"trials": 4, "budget": 1_024, "repeats": 1, "reeval_seeds": 2, "eval_episodes": 5}
REEVAL_SEED = 900_000  # re-evaluation worker w: base seed REEVAL_SEED + w
SEARCH_OVERHEAD_S = 2.0  # per job: cluster_utils submission, job process, polling
#: what a run records in options.json: searches saved under other options are not comparable
RUN_OPTIONS = ("trials", "budget", "reeval_seeds", "eval_episodes", "runs_per_job",
               "reward_column", "workers", "settings")  # fmt: skip
#: the options every search of a run shares (``runs.Search``)
SHARED = ("task", "algo", "env_id", "settings", "trials", "budget", "eval_episodes",
          "reward_column", "workers")  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad options exit 1 (the project's code for every bad input), not argparse's 2."""
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted(TASKS), default="cartpole")
    p.add_argument(
        "--methods",
        help=f"comma list of {', '.join([*ZOO_METHODS, *RL_RELAY_METHODS])}; an rl-relay"
        " method@R runs R learning runs per job (default: --runs-per-job); method+KxM"
        " searches with K x M trainings fewer, then re-runs its K best configurations M times"
        " each on fresh seeds (rl-relay reevaluate) and picks the best mean; ~ce evaluates"
        " every job on the same episodes; ~free asks only when a worker is free; ~late scores"
        " the mean of the last 3 of 5 evaluations (tables show readable names). Default:"
        f" {','.join(DEFAULT_METHODS)}; --quick: {','.join(QUICK_METHODS)}",
    )
    p.add_argument("--trials", type=int, help="trainings per search (default: the settings')")
    p.add_argument("--budget", type=int, help="env steps per training (default: the settings')")
    p.add_argument("--repeats", type=int, help="searches per method, seeds differ (3)")
    p.add_argument(
        "--from-repeat",
        type=int,
        default=0,
        help="run and report only repeats from this one on (search seeds 100 + it and up):"
        " new seeds to confirm a variant chosen on the first ones (0)",
    )
    p.add_argument("--reeval-seeds", type=int, help="seeds re-evaluating each choice (6)")
    p.add_argument("--eval-episodes", type=int, help="default: the settings file's")
    p.add_argument("--runs-per-job", type=int, help="rl-relay; default: the settings file's")
    p.add_argument("--reward-column", help="rl-relay's search objective; default: the settings'")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="smoke version: " + json.dumps(QUICK))
    p.add_argument("--out", type=Path, help="default bench/results (--quick: bench/results/quick)")
    p.add_argument("--keep", action="store_true", help="keep the searches' working directories")
    p.add_argument("--estimate", action="store_true", help="print the time estimate and stop")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="write the table from the searches finished so far; run nothing",
    )
    args = p.parse_args(argv)
    algo, env_id, settings_file, limits = TASKS[args.task]
    settings = json.loads((REPO / settings_file).read_text(encoding="utf-8"))
    fixed = settings["fixed_params"]
    defaults = {
        "trials": settings["optimization_setting"]["number_of_samples"]
        * fixed["learning_runs_per_job"],
        "budget": fixed["config.rl_common_config.total_timesteps"],
        "eval_episodes": fixed["config.rl_common_config.eval_episodes"],
        "runs_per_job": fixed["learning_runs_per_job"],
        "reward_column": fixed.get("reward_column", DEFAULT_REWARD_COLUMN),
        **FULL,
    }
    if args.quick:
        settings = restrict(settings, limits)
        defaults.update(QUICK)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.algo, args.env_id, args.settings = algo, env_id, settings
    out = args.out or REPO / "bench" / "results" / ("quick" if args.quick else "")
    args.out = (out / args.task).resolve()  # children run in other directories
    methods = args.methods or ",".join(QUICK_METHODS if args.quick else DEFAULT_METHODS)
    args.methods = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if not is_known(m)]
    if unknown:
        p.error(f"unknown method(s) {', '.join(unknown)}")
    for name in args.methods:
        m = parse_method(name)
        runs = m.runs_per_job or args.runs_per_job
        if m.picks and m.search_share(args.trials) // runs < m.top:
            trainings = args.trials * m.share // 100  # %P: the share of the budget it may use
            p.error(
                f"{name}: {trainings} trainings leave fewer than {m.top} search jobs after"
                f" the {m.pick_trainings} of +{m.top}x{m.reruns}; use a smaller K x M"
            )
    return args


def estimate(args: argparse.Namespace, space: list, searches: int) -> float:
    """Modelled seconds of one search and its re-evaluation; the total is printed."""
    from rl_relay.job.templates import load_templates

    templates = load_templates(args.settings["fixed_params"]["config.config_templates"], REPO)
    n_envs = int(templates.documents["env_config"].get("n_envs") or 1)
    mean, p95 = expected_seconds(
        args.algo, space, templates.documents["rl_config"], args.budget, n_envs
    )
    per_search = args.trials * (mean + SEARCH_OVERHEAD_S) / args.workers
    per_reeval = args.reeval_seeds * mean / args.workers
    total = searches * (per_search + per_reeval)
    print(
        f"estimate: one training {mean:.0f} s on average over the space (95th percentile"
        f" {p95:.0f} s); one search ~{per_search / 60:.1f} min, one re-evaluation"
        f" ~{per_reeval / 60:.1f} min; {searches} search(es) to run:"
        f" ~{total / 60:.0f} min on {args.workers} workers (heavy-tailed: a few slow"
        " configurations can double a search)",
        flush=True,
    )
    return per_search + per_reeval


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    env = Env.current()
    space = space_of(args.settings)
    out = args.out
    if args.quick and out.exists() and not args.estimate:
        shutil.rmtree(out)  # the smoke test always runs everything
    run_options = {k: getattr(args, k) for k in RUN_OPTIONS}
    options_file = out / "options.json"
    if options_file.exists() and json.loads(options_file.read_text()) != run_options:
        print(
            f"{out} holds searches run with other options ({options_file}); use another"
            " --out or delete it",
            file=sys.stderr,
        )
        return 1
    missing, use_hpo = availability(args.methods, env)
    outcomes: list[Outcome] = []
    todo = []
    for repeat in range(args.from_repeat, args.repeats):
        for method in args.methods:
            saved = out / "searches" / f"{method}-r{repeat}.json"
            if saved.exists():
                previous = Outcome.from_json(json.loads(saved.read_text()))
                # done: kept; searched or failed in its re-evaluation: only re-evaluated
                # (run_one); missing, failed in the search: searched again
                if previous.status == "ok":
                    outcomes.append(previous)
                    continue
            else:
                previous = None
            if missing[method][0]:
                outcomes.append(Outcome(args.task, method, repeat, *missing[method]))
            else:
                searched = previous if previous and previous.resumable else None
                todo.append((repeat, method, saved, searched))
    if outcomes:
        print(f"{len(outcomes)} search(es) done before or not available, {len(todo)} to run")
    if args.report_only:
        outcomes += [Outcome(args.task, method, repeat, "not run") for repeat, method, *_ in todo]
        todo = []
    per_search = estimate(args, space, len(todo))
    if args.estimate:
        return 0
    (out / "searches").mkdir(parents=True, exist_ok=True)
    if todo:
        atomic_write_json(options_file, run_options)
    spent = 0.0
    for i, (repeat, method, saved, searched) in enumerate(todo):
        start = time.perf_counter()
        outcomes.append(run_one(args, space, method, repeat, env, use_hpo, saved, searched))
        atomic_write_json(saved, outcomes[-1].to_json())
        spent += time.perf_counter() - start
        left = (len(todo) - i - 1) * spent / (i + 1)
        print(
            f"{method} repeat {repeat}: {outcomes[-1].status}, re-evaluated"
            f" {[round(r, 1) for r in outcomes[-1].reeval_rewards]}; {spent / 60:.1f} min"
            f" so far (model: {(i + 1) * per_search / 60:.1f}), ~{left / 60:.0f} min left",
            flush=True,
        )
    order = {m: i for i, m in enumerate(args.methods)}
    outcomes.sort(key=lambda o: (order[o.method], o.repeat))
    if (out / "work").is_dir() and not any((out / "work").iterdir()):
        (out / "work").rmdir()
    return report(args, outcomes)


def run_one(
    args: argparse.Namespace,
    space: list,
    method: str,
    repeat: int,
    env: Env,
    use_hpo: bool,
    saved: Path,
    searched: Outcome | None = None,
) -> Outcome:
    """One search and the re-evaluation of its choice, in a working directory of its own.

    The search is saved to ``saved`` (status ``searched``) before its re-evaluation starts,
    so a run stopped while re-evaluating keeps the search's jobs and choice: run again with
    that record as ``searched``, it only re-evaluates. So does a run given a record whose
    re-evaluation failed (``failed_in``): searching again with the same seed would cost the
    whole search and mostly choose the same.
    """
    work = args.out / "work" / f"{method}-r{repeat}"
    if work.exists() and searched is None:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    space_file = work / "space.json"
    space_file.write_text(json.dumps(args.settings, indent=2))
    search = Search(
        **{k: getattr(args, k) for k in SHARED},
        space_file=space_file,
        space=space,
        runs_per_job=parse_method(method).runs_per_job or args.runs_per_job,
        seed=SEARCH_SEED + repeat,
        repeat=repeat,
    )
    outcome = searched
    try:
        if searched is not None:
            logger.info("%s repeat %d: searched before, %s", method, repeat, saved)
            outcome.status, outcome.detail, outcome.failed_in = SEARCHED, "", ""
        else:
            logger.info("%s repeat %d: searching in %s", method, repeat, work)
            if method in ZOO_METHODS:
                outcome = zoo_search(search, method, work, env)
            else:
                outcome = rl_relay_search(search, method, work, env, use_hpo)
            if outcome.status == "ok":
                outcome.status = SEARCHED
                atomic_write_json(saved, outcome.to_json())
            elif outcome.status == "failed":
                outcome.failed_in = IN_SEARCH
        if outcome.status == SEARCHED:
            logger.info("%s repeat %d: re-evaluating %s", method, repeat, outcome.overrides)
            start = time.perf_counter()
            outcome.status = "ok"  # reevaluate() turns it to failed if a training fails
            outcome.reeval_rewards, outcome.reeval_env_steps = [], 0
            reevaluate(search, outcome, args.reeval_seeds, work, env, REEVAL_SEED)
            if outcome.status == "failed":
                outcome.failed_in = IN_REEVALUATION
            outcome.host = host()
            logger.info("re-evaluation took %.0f s", time.perf_counter() - start)
    except (OSError, ValueError, KeyError) as err:
        if outcome is None or outcome.status != "ok":  # failed in the search
            outcome = Outcome(args.task, method, repeat, failed_in=IN_SEARCH)
        else:
            outcome.failed_in = IN_REEVALUATION
        outcome.status, outcome.detail = "failed", f"{type(err).__name__}: {err}"
    if not args.keep and outcome.status == "ok":
        shutil.rmtree(work, ignore_errors=True)
    return outcome
