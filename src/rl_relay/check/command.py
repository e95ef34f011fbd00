"""Find what would go wrong with an HPO settings file before anything is submitted.

Reads the settings with cluster_utils' own loader and the same ``key=value`` override
strings as ``python -m cluster_utils.hp_optimization``, then checks what a week of cluster
time should not be lost to: the shape of every section, override targets and types against
the templates, parameter names nothing reads, sampled bounds against the learner's schemas,
the metric, the cluster requirements of the engine cluster_utils will pick, the job script
and container, and anything that would make cluster_utils wait for the keyboard.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from rl_relay.check.context import Context, Problem, detect_engine
from rl_relay.check.job_checks import (
    check_job_params,
    check_sample,
    check_search_space,
    learner_validator,
)
from rl_relay.check.settings_checks import (
    check_interaction,
    check_job_files,
    check_loader_changes,
    check_metric,
    check_requirements,
    check_script,
    check_shape,
    check_shell_quoting,
)
from rl_relay.container.runtime import check_settings as container_checks
from rl_relay.hpo.settings import (
    add_local_argument,
    add_settings_arguments,
    load_settings,
    load_written_settings,
)
from rl_relay.optimizers import OPTIMIZERS, optimizer_problems
from rl_relay.stopping.settings import whole_file_problems as stopping_problems


def check_optimizer(ctx: Context) -> list[Problem]:
    optimizer = ctx.settings.get("optimizer_str")
    found = [
        Problem(ctx.at(key), what)
        for key, what in optimizer_problems(
            optimizer,
            ctx.settings.get("optimizer_settings"),
            ctx.settings.get("optimized_params", []),
        )
    ]
    if optimizer == "pbt":
        from rl_relay.pbt.settings import whole_file_problems

        found += [
            Problem(ctx.at(key), what) for key, what in whole_file_problems(ctx.settings, ctx.cwd)
        ]
    if ctx.plain_cluster_utils and optimizer in OPTIMIZERS:
        found.append(
            Problem(
                ctx.at("optimizer_str"),
                f"{optimizer!r} is rl-relay's: start the HPO with `rl-relay hpo`, which"
                " registers it with cluster_utils",
            )
        )
    return found


def run_checks(ctx: Context) -> tuple[list[Problem], list[str], list[str]]:
    """All checks; returns the problems and the names of the checks passed and skipped.

    Each check names the settings sections it reads; it is skipped when one of them is
    malformed (reported by the first check) or when it needs the job's configuration and
    the fixed parameters could not be read.
    """
    checks: list[tuple[str, tuple[str, ...], Callable[[], list[Problem]]]] = [
        ("settings sections", (), lambda: check_shape(ctx)),
        ("no keyboard input needed", ("optimization_setting",), lambda: check_interaction(ctx)),
        ("metric is reported", ("optimization_setting",), lambda: check_metric(ctx)),
        (
            "optimizer and its settings",
            ("optimizer_str", "optimizer_settings", "optimized_params"),
            lambda: check_optimizer(ctx),
        ),
        (
            "early stopping",
            ("early_stopping", "optimizer_str", "fixed_params"),
            lambda: [Problem(ctx.at(k), w) for k, w in stopping_problems(ctx.settings)],
        ),
        (
            f"cluster_requirements for {ctx.engine}",
            ("cluster_requirements",),
            lambda: check_requirements(ctx),
        ),
        ("job script", ("script_relative_path",), lambda: check_script(ctx)),
        (
            "values as written reach the jobs",
            ("fixed_params", "optimized_params"),
            lambda: check_loader_changes(ctx),
        ),
    ]
    if ctx.engine != "local":
        checks.append(
            (
                f"names and paths {ctx.engine} job files can hold",
                ("optimization_procedure_name",),
                lambda: check_job_files(ctx),
            )
        )
    if ctx.plain_cluster_utils:  # rl-relay hpo passes a parameter file and quotes every path
        checks.append(
            (
                "values and paths survive cluster_utils' job script",
                ("fixed_params", "optimized_params", "environment_setup", "singularity"),
                lambda: check_shell_quoting(ctx),
            )
        )
    checks += [
        ("fixed parameters and templates", ("fixed_params",), lambda: check_job_params(ctx)),
        (
            "search space against templates and schemas",
            ("fixed_params", "optimized_params", "job"),
            lambda: check_search_space(ctx, learner_validator(ctx)),
        ),
        (
            "a sampled configuration",
            ("fixed_params", "optimized_params", "job"),
            lambda: check_sample(ctx, learner_validator(ctx)),
        ),
        (
            "container",
            ("fixed_params", "singularity", "script_relative_path"),
            lambda: [Problem(ctx.at(w), m) for w, m in container_checks(ctx.settings, ctx.cwd)],
        ),
    ]
    problems: list[Problem] = []
    passed, skipped = [], []
    for name, reads, check in checks:
        if ctx.broken.intersection(reads) or ("job" in reads and ctx.job is None):
            skipped.append(name)
            continue
        found = check()
        problems += found
        if not found:
            passed.append(name)
    return problems, passed, skipped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    add_local_argument(
        parser, "check for a local run with rl-relay hpo --local (ignore sbatch/condor_q)"
    )
    parser.add_argument(
        "--cluster-utils",
        action="store_true",
        help="check for plain python -m cluster_utils.hp_optimization instead of rl-relay hpo"
        " (which continues an existing results directory and adds rl-relay's optimisers)",
    )


def _written(args: argparse.Namespace) -> dict | None:
    """The settings as written, or None when only cluster_utils' own loader can read them."""
    try:
        written = load_written_settings(args.settings_file, args.overrides)
    except Exception:  # noqa: BLE001 (the loader's errors are reported already)
        return None
    return written if isinstance(written, dict) else None


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    try:
        settings = load_settings(args.settings_file, args.overrides)
    except Exception as err:  # whatever cluster_utils' loader raises  # noqa: BLE001
        print(
            f"FAIL {args.settings_file}: cannot be read as cluster_utils reads it: {err}", file=out
        )
        return 1
    if not isinstance(settings, dict):
        print(f"FAIL {args.settings_file}: must hold a JSON object of settings", file=out)
        return 1
    ctx = Context(
        settings_file=args.settings_file,
        settings=settings,
        engine=detect_engine(args.local),
        interactive=sys.stdin.isatty(),
        cwd=Path.cwd(),
        plain_cluster_utils=getattr(args, "cluster_utils", False),
        written=_written(args),
    )
    problems, passed, skipped = run_checks(ctx)
    print(f"rl-relay check {args.settings_file} (engine: {ctx.engine})", file=out)
    for name in passed:
        print(f"  ok    {name}", file=out)
    for name in skipped:
        print(f"  skip  {name} (fix the problems above first)", file=out)
    for problem in problems:
        print(f"  FAIL  {problem.where}: {problem.what}", file=out)
    if problems:
        print(f"{len(problems)} problem(s); nothing was submitted.", file=out)
        return 1
    print("All checks passed.", file=out)
    return 0
