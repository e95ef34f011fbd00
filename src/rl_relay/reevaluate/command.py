"""Re-run an HPO's best configurations on fresh seeds: the honest score.

    rl-relay reevaluate RESULTS_DIR [--top K] [--runs M] [--runs-per-job N] [--local]
        [--dry-run] ['key=value' ...]

Takes the K best jobs of a finished (or running) HPO, reads each one's exact parameter
values from its ``settings.json``, and runs them again through cluster_utils'
``grid_search`` with the search's own settings (recorded by ``rl-relay hpo``), M learning
runs each (each in its own job unless ``--runs-per-job``), on seeds that no job of the search
used, on the search's backend. Writes
``RESULTS_DIR/reevaluation/summary.csv`` (re-evaluated mean, std and 95% confidence
interval beside the search's estimate), prints the table and which configuration it
recommends. Started again with the same request (configurations, runs, overrides), it
continues: finished re-evaluation jobs are not run twice. Any other request is a new
re-evaluation beside the old ones (``reevaluation-2/``, ...; ``rl_relay.reevaluation_request``),
``--fresh`` starts the same request over (its old directory moved aside). ``key=value``
strings change the grid search's settings (e.g. ``'cluster_requirements.request_cpus=2'``),
before or after the options. ``--dry-run`` prints the choice (configurations, base seed)
and stops before anything is written or submitted.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rl_relay import exit_codes
from rl_relay.atomic import atomic_path, atomic_write_json, atomic_write_text
from rl_relay.hpo.continuation import move_aside
from rl_relay.layout import (
    JOB_SETTINGS,
    STATE_FILE,
    JobPaths,
    ReevaluationPaths,
    ResultsPaths,
    parse_job_number,
)
from rl_relay.metrics import DEFAULT_METRIC, ITERATIONS_DONE, STOPPED_EARLY
from rl_relay.paramtree import lookup, plain, set_dotted
from rl_relay.reevaluate.stats import (
    REEVALUATION_OF,
    Candidate,
    Evaluated,
    ReevaluationError,
    choose,
    fresh_base_seed,
    grid_settings,
    recommendation,
    summary_rows,
    table,
)
from rl_relay.reevaluation_request import (
    Choice,
    Earlier,
    OverrideError,
    announcement,
    choose_directory,
    identity,
    parse_overrides,
    request_record,
)
from rl_relay.settings_file import add_local_argument
from rl_relay.validation import load_schema, problems

if TYPE_CHECKING:
    from rl_relay.report.model import JobInfo

logger = logging.getLogger("rl_relay.reevaluate.command")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    parser.add_argument("--top", type=int, default=3, help="configurations to re-run (3)")
    parser.add_argument("--runs", type=int, default=5, help="learning runs per configuration (5)")
    parser.add_argument(
        "--runs-per-job",
        type=int,
        default=None,
        metavar="N",
        help="learning runs in each job, one after another; must divide --runs (1: every run"
        " its own job, side by side; a continued re-evaluation keeps its own)",
    )
    add_local_argument(
        parser,
        "cluster_utils' local backend even where sbatch/condor_q exist (as rl-relay hpo"
        " --local; the default is the search's own backend)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the configurations and the base seed it would run, and stop there",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start this request's re-evaluation over instead of continuing it: its directory"
        " is moved aside (timestamp suffix, nothing deleted)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="changes to the grid search's settings, e.g. 'cluster_requirements.request_cpus=2'",
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _checked_json(path: Path, schema: dict[str, Any], what_to_do: str) -> Any:
    """``path`` parsed and valid under ``schema``, else one message naming the file, the key
    and ``what_to_do`` (a hand-edited file must not end in a traceback)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ReevaluationError(f"{path} cannot be read ({err}); {what_to_do}") from None
    found = problems(schema, data)
    if found:
        raise ReevaluationError(
            f"{path} is corrupt at '{found[0].key}': {found[0].message}; {what_to_do}"
        )
    return data


def _state_runs(path: Path, what_to_do: str) -> list[dict[str, Any]] | None:
    """The runs a job's ``restarts.json`` records, checked; None when it has none yet."""
    if not path.exists():
        return None
    schema = load_schema("restarts")
    data = _read_json(path)
    if isinstance(data, dict) and data.get("version") == 1:  # rl-relay 0.1: no plan, same runs
        schema = {
            **schema,
            "required": ["runs"],
            "properties": {"runs": schema["properties"]["runs"]},
        }
    return _checked_json(path, schema, what_to_do)["runs"]


def _read_record(results: ResultsPaths) -> dict[str, Any]:
    """``rl_relay_hpo.json``: the search's settings as ``rl-relay hpo`` recorded them."""
    path = results.hpo_record
    if not path.exists():
        raise ReevaluationError(
            f"{path} is missing: this HPO was not started with `rl-relay hpo`, which records"
            " the settings a re-evaluation needs; start it (or continue it) with rl-relay hpo"
            " once"
        )
    return _checked_json(
        path,
        load_schema("hpo_record"),
        "restore it, or start the search's rl-relay hpo command again (it rewrites this file"
        " and continues the search where it stood)",
    )


def _search_seeds(results: ResultsPaths) -> set[int]:
    """Every seed of every kept job of the search (current and prepared attempts)."""
    seeds: set[int] = set()
    for parent in (results.working_dirs, results.best_jobs):
        for state_file in sorted(parent.glob(f"*/{STATE_FILE}")):
            runs = _state_runs(
                state_file,
                "rl-relay reevaluate reads every search job's seeds from it to use others;"
                f" restore it, or move {state_file.parent} out of {results.root} (its seeds are"
                " then not avoided)",
            )
            for run in runs or []:
                seeds.update(int(s) for s in run["seeds"])
    return seeds


def _candidates(results: ResultsPaths, hpo: dict[str, Any], top: int) -> tuple[list, str | None]:
    from rl_relay.report.load import load_results

    setting = hpo.get("optimization_setting", {})
    metric = setting.get("metric_to_optimize", DEFAULT_METRIC)
    minimize = bool(setting.get("minimize", False))
    loaded = load_results(results.root, metric, minimize)
    ranked = [(j.job_id, j.value(metric)) for j in loaded.finished()]
    settings_of = {}
    for job in loaded.jobs:
        if job.working_dir is not None:
            data = _read_json(job.working_dir / JOB_SETTINGS)
            if isinstance(data, dict):
                settings_of[job.job_id] = data
    names = [item["param"] for item in hpo.get("optimized_params", [])]
    if not names:
        raise ReevaluationError("the search optimised no parameter; nothing to choose from")
    chosen, note = choose(ranked, settings_of, names, top)
    stopped = {j.job_id: _stopped_after(j) for j in loaded.jobs if _was_stopped(j)}
    return [replace(c, stopped=stopped.get(c.job_id)) for c in chosen], note


def _was_stopped(job: JobInfo) -> bool:
    return job.metrics.get(STOPPED_EARLY) == 1  # NaN or missing (older searches): not stopped


def _stopped_after(job: JobInfo) -> str:
    """How far a stopped job trained, as ``iterations_done`` counts it (over all its runs)."""
    done, planned = job.value(ITERATIONS_DONE), job.iterations_planned
    if done is None:
        return "before its last training iteration"
    if not planned:
        return f"after {done:.0f} training iteration(s)"
    over = f" over its {job.runs_planned} runs" if (job.runs_planned or 1) > 1 else ""
    return f"after {done:.0f} of {planned} training iterations{over}"


def _pbt_candidates(
    results: ResultsPaths, hpo: dict[str, Any], top: int
) -> tuple[list[Candidate], str | None]:
    """The best members of a PBT, each as its hyperparameter schedule to replay (as Ray's
    ``PopulationBasedTrainingReplay``): every iteration with the values its model had."""
    from rl_relay.pbt import history
    from rl_relay.pbt import records as rec

    minimize = bool(hpo.get("optimization_setting", {}).get("minimize", False))
    records = rec.read_records(results.population)
    decisions = rec.read_decisions(results.population)
    final = [r for r in history.final_population(records).values() if r.score is not None]
    final.sort(key=lambda r: (r.score if minimize else -r.score, r.member))
    candidates = []
    for record in final[:top]:
        segments = history.schedule(records, decisions, record.member)
        schedule = tuple((s.start, tuple(sorted(s.hyperparameters.items()))) for s in segments)
        candidates.append(
            Candidate(record.member, float(record.score), {"replay_schedule": schedule})
        )
    if not candidates:
        raise ReevaluationError(f"{results.population} holds no member with a score yet")
    note = None
    if len(candidates) < top:
        note = f"the population has {len(candidates)} members with a score, not {top}"
    return candidates, note


def _run_grid_search(settings_file: Path, local: bool) -> None:
    from cluster_utils import grid_search

    from rl_relay.hpo.patches import install

    install(local=local)
    argv = sys.argv
    sys.argv = ["rl-relay reevaluate", str(settings_file)]
    try:
        code = grid_search.main()
    finally:
        sys.argv = argv
    if code:
        logger.warning("cluster_utils' grid_search ended with code %s", code)


def _earlier(results: ResultsPaths) -> list[Earlier]:
    """The re-evaluation directories present, each with its checked ``request.json``."""
    schema = load_schema("reevaluation_request")
    found = []
    for paths in results.reevaluations():
        request = None
        if paths.request.exists():
            request = _checked_json(
                paths.request,
                schema,
                f"restore it, or move {paths.dir} aside (a re-evaluation whose request is not"
                " known is never continued)",
            )
        found.append(Earlier(paths.number or 1, paths.dir.name, request))
    return found


def _job_order(wd: Path) -> tuple[int, str]:
    """Job directories by number (``2`` before ``10``), anything else after them."""
    number = parse_job_number(wd.name)
    return (number, "") if number is not None else (sys.maxsize, wd.name)


def _evaluated(
    reevaluation: ReevaluationPaths, candidates: list, max_attempts: int
) -> list[Evaluated]:
    """Rewards and seeds of the re-evaluation jobs, by the search job they re-evaluate, and
    their runs that gave up (``max_attempts`` failed attempts)."""
    by_search_job: dict[int, Evaluated] = {c.job_id: Evaluated(c, []) for c in candidates}
    root = reevaluation.working_dirs
    # in job order (a configuration's runs are spread over jobs: its seeds in the order run)
    for wd in sorted(root.glob("*"), key=_job_order) if root.is_dir() else []:
        what_to_do = f"restore it, or move {wd} away (that re-evaluation job then runs again)"
        settings_file = wd / JOB_SETTINGS
        settings = _read_json(settings_file) if settings_file.exists() else {}
        if not isinstance(settings, dict):
            raise ReevaluationError(f"{settings_file} is not a JSON object; {what_to_do}")
        target = by_search_job.get(settings.get(REEVALUATION_OF))
        if target is None:
            continue
        for run in _state_runs(JobPaths(wd).state, what_to_do) or []:
            if run.get("done") and run.get("reward") is not None:
                target.rewards.append(float(run["reward"]))
                target.seeds.append(int(run["seeds"][-1]))
            elif len(run.get("failures", [])) >= max_attempts:
                target.failed_runs += 1
    return list(by_search_job.values())


def write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _choice_text(candidates: list[Candidate], runs: int, base: int, per_job: int) -> str:
    """What a re-evaluation would run (``--dry-run``)."""
    jobs = len(candidates) * (runs // per_job)
    lines = [
        f"Would re-evaluate {len(candidates)} configuration(s) x {runs} runs on fresh seeds"
        f" (base seed {base}), in {jobs} job(s) of {per_job} run(s):"
    ]
    for c in candidates:
        values = ", ".join(f"{k}={v!r}" for k, v in c.values.items())
        estimate = f"search estimate {c.estimate:.4g}"
        if c.stopped is not None:
            estimate += f" {c.stopped}: early stopping ended the job there"
        lines.append(f"  search job {c.job_id} ({estimate}): {values}")
    return "\n".join(lines)


@dataclass
class Prepared:
    """Everything a re-evaluation needs, checked before anything is written or run."""

    results: ResultsPaths
    record: dict[str, Any]
    candidates: list[Candidate]
    wanted: dict[str, Any]
    earlier: list[Earlier]
    choice: Choice
    target: ReevaluationPaths
    base_seed: int
    runs_per_job: int
    settings: dict[str, Any]
    max_attempts: int
    minimize: bool
    local: bool


def _prepare(args: argparse.Namespace) -> Prepared:
    from rl_relay.report.load import find_procedure_dir

    results = ResultsPaths(find_procedure_dir(args.results_dir))
    record = _read_record(results)
    hpo = record["settings"]
    if hpo.get("optimizer_str") == "pbt":
        candidates, note = _pbt_candidates(results, hpo, args.top)
    else:
        candidates, note = _candidates(results, hpo, args.top)
    if note:
        print(f"Note: {note}.")
    try:
        overrides = parse_overrides(list(args.overrides))
    except OverrideError as err:
        raise ReevaluationError(str(err)) from None
    wanted = identity([(c.job_id, c.values) for c in candidates], args.runs, overrides)
    earlier = _earlier(results)
    choice = choose_directory(wanted, earlier, args.fresh)
    target = results.reevaluation(choice.number)
    max_attempts = int(hpo.get("fixed_params", {}).get("max_attempts", 3))
    per_job = args.runs_per_job or 1
    if choice.continues and choice.same is not None and choice.same.request is not None:
        base = int(choice.same.request["base_seed"])  # the seeds its jobs already have
        # its jobs are numbered as they were started: one job per configuration before
        # rl-relay recorded runs_per_job
        kept = int(choice.same.request.get("runs_per_job", args.runs))
        if args.runs % kept:
            raise ReevaluationError(
                f"{target.request} is corrupt at 'runs_per_job': {kept} does not divide the"
                f" request's {args.runs} runs; restore it, or start over with --fresh"
            )
        if args.runs_per_job not in (None, kept):
            print(
                f"Note: {target.dir.name}/ was started with {kept} run(s) per job and"
                f" continues so; --fresh starts it over with --runs-per-job {per_job}."
            )
        per_job = kept
    else:
        jobs = len(candidates) * (args.runs // per_job)
        base = fresh_base_seed(_search_seeds(results), jobs, per_job, max_attempts)
    local = args.local or bool(record.get("local"))
    settings = grid_settings(
        hpo, candidates, args.runs, base, str(results.root), target.dir.name, local, per_job
    )
    for key, value in overrides:
        set_dotted(settings, key, value)
    attempts = lookup(settings["fixed_params"], "max_attempts", max_attempts)
    if not isinstance(attempts, int) or attempts < 1:
        raise ReevaluationError(f"max_attempts must be a positive integer, not {attempts!r}")
    if choice.continues:
        _evaluated(target, candidates, attempts)  # what it holds is readable
    minimize = bool(hpo.get("optimization_setting", {}).get("minimize", False))
    return Prepared(
        results=results,
        record=record,
        candidates=candidates,
        wanted=wanted,
        earlier=earlier,
        choice=choice,
        target=target,
        base_seed=base,
        runs_per_job=per_job,
        settings=settings,
        max_attempts=attempts,
        minimize=minimize,
        local=local,
    )


def _start(prepared: Prepared, top: int) -> str:
    """Make (or keep) the re-evaluation's directory and record its request; the line that
    says what this start does."""
    target, choice = prepared.target, prepared.choice
    moved_to = None
    if choice.same is not None and choice.fresh:
        moved_to = str(move_aside(target.dir))
    try:
        target.dir.mkdir(parents=True, exist_ok=choice.continues)
    except FileExistsError:
        raise ReevaluationError(
            f"{target.dir} appeared meanwhile (another rl-relay reevaluate?); run again"
        ) from None
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
    previous = choice.same.request if choice.continues and choice.same is not None else None
    request = request_record(
        prepared.wanted, top, prepared.base_seed, now, previous, prepared.runs_per_job
    )
    atomic_write_json(target.request, request)
    atomic_write_json(target.settings, plain(prepared.settings))
    return announcement(
        choice, prepared.wanted, prepared.earlier, str(target.dir), prepared.base_seed, moved_to
    )


def _summarise(prepared: Prepared, runs: int) -> int:
    """Read what the jobs did; write and print the summary and the recommendation."""
    target = prepared.target
    try:
        evaluated = _evaluated(target, prepared.candidates, prepared.max_attempts)
    except ReevaluationError as err:
        print(f"rl-relay reevaluate: {err}", file=sys.stderr)
        return exit_codes.FAILURE
    rows = summary_rows(evaluated, prepared.minimize, runs)
    write_summary(target.summary, rows)
    advice = recommendation(evaluated, prepared.minimize)
    atomic_write_text(target.recommendation, advice + "\n")
    print(table(rows))
    print(advice)
    print(f"Summary: {target.summary}")
    if not any(e.rankable for e in evaluated):
        print("rl-relay reevaluate: no re-evaluation job finished a run", file=sys.stderr)
        return exit_codes.FAILURE
    return exit_codes.SUCCESS


def run(args: argparse.Namespace) -> int:
    from rl_relay.hpo.patches import UnsupportedClusterUtils, require_supported
    from rl_relay.report.load import NoResultsError

    if args.top < 1 or args.runs < 2:
        print("rl-relay reevaluate: --top must be >= 1 and --runs >= 2", file=sys.stderr)
        return exit_codes.FAILURE
    if args.runs_per_job is not None and (args.runs_per_job < 1 or args.runs % args.runs_per_job):
        print(
            f"rl-relay reevaluate: --runs-per-job {args.runs_per_job} must be a whole number"
            f" >= 1 that divides --runs {args.runs} (e.g. 1, or {args.runs} for one job per"
            " configuration)",
            file=sys.stderr,
        )
        return exit_codes.FAILURE
    try:
        require_supported()  # before anything is written
    except UnsupportedClusterUtils as err:
        print(f"rl-relay reevaluate: {err}", file=sys.stderr)
        return exit_codes.FAILURE
    # Every path the user gave is theirs, relative to where they are: resolved before the
    # chdir below and before cluster_utils sees it (it joins a relative results_dir onto $HOME).
    args.results_dir = Path(args.results_dir).absolute()
    try:
        prepared = _prepare(args)
        if args.dry_run:
            print(
                _choice_text(
                    prepared.candidates, args.runs, prepared.base_seed, prepared.runs_per_job
                )
            )
            return exit_codes.SUCCESS
        workdir = Path(prepared.record.get("cwd", "."))
        if workdir.is_dir() and workdir.resolve() != Path.cwd().resolve():
            print(f"Running from {workdir}, where the search ran (its relative paths start there)")
            os.chdir(workdir)
        print(_start(prepared, args.top))
    except (ReevaluationError, NoResultsError, OSError) as err:
        print(f"rl-relay reevaluate: {err}", file=sys.stderr)
        return exit_codes.FAILURE
    _run_grid_search(prepared.target.settings, local=prepared.local)
    return _summarise(prepared, args.runs)
