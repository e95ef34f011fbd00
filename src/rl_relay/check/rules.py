"""The one set of rules for an HPO settings file: what ``rl-relay check`` reports and what
``rl-relay hpo`` refuses to start with.

Both commands call ``check_settings_file`` and print its findings in their own way; ``hpo``
calls it before it moves, locks or writes anything, so a settings file ``check`` rejects
never starts. A finding about the machines the jobs run on (the container runtime on PATH)
is a warning when they run on a cluster's nodes: this machine (a login node) may lack it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from rl_relay.container import runtime as container
from rl_relay.optimizers import OPTIMIZERS, optimizer_problems
from rl_relay.override_strings import unreadable_override
from rl_relay.settings_file import load_settings, load_written_settings
from rl_relay.stopping.settings import whole_file_problems as stopping_problems
from rl_relay.stopping.settings import whole_file_warnings as stopping_warnings


@dataclass(frozen=True)
class Verdict:
    """Everything ``check_settings_file`` found, for a command to print."""

    engine: str
    problems: tuple[Problem, ...]
    passed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    #: The settings as cluster_utils reads them; None when they could not be read.
    settings: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]


def check_settings_file(
    settings_file: Path,
    overrides: Sequence[str],
    *,
    local: bool,
    plain_cluster_utils: bool = False,
    interactive: bool | None = None,
    cwd: Path | None = None,
) -> Verdict:
    """Read ``settings_file`` with ``overrides`` as cluster_utils does and run every check.

    ``local``: the jobs run with ``--local`` (on this machine); ``plain_cluster_utils``: the
    HPO is started with ``python -m cluster_utils.hp_optimization``, not ``rl-relay hpo``;
    ``interactive`` (default: whether stdin is a terminal) and ``cwd`` (default: the current
    directory) describe where hp_optimization is started.
    """
    engine = detect_engine(local)
    if bad := [what for o in overrides if (what := unreadable_override(o))]:
        return Verdict(engine, tuple(Problem(str(settings_file), what) for what in bad))
    try:
        settings = load_settings(settings_file, overrides)
    except Exception as err:  # whatever cluster_utils' loader raises  # noqa: BLE001
        what = f"cannot be read as cluster_utils reads it: {err}"
        return Verdict(engine, (Problem(str(settings_file), what),))
    if not isinstance(settings, dict):
        what = "must hold a JSON object of settings"
        return Verdict(engine, (Problem(str(settings_file), what),))
    ctx = Context(
        settings_file=settings_file,
        settings=settings,
        engine=engine,
        interactive=sys.stdin.isatty() if interactive is None else interactive,
        cwd=Path.cwd() if cwd is None else cwd,
        plain_cluster_utils=plain_cluster_utils,
        written=_written(settings_file, overrides),
    )
    problems, passed, skipped = run_checks(ctx)
    return Verdict(engine, tuple(problems), tuple(passed), tuple(skipped), settings)


def _written(settings_file: Path, overrides: Sequence[str]) -> dict | None:
    """The settings as written, or None when only cluster_utils' own loader can read them."""
    try:
        written = load_written_settings(settings_file, overrides)
    except Exception:  # noqa: BLE001 (the loader's errors are reported already)
        return None
    return written if isinstance(written, dict) else None


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
        from rl_relay.pbt.settings import whole_file_problems, whole_file_warnings

        found += [
            Problem(ctx.at(key), what) for key, what in whole_file_problems(ctx.settings, ctx.cwd)
        ]
        found += [
            Problem(ctx.at(key), what, warning=True)
            for key, what in whole_file_warnings(ctx.settings)
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


def check_container(ctx: Context) -> list[Problem]:
    """The container's settings; the runtime on PATH only warns when jobs run elsewhere."""
    found = [Problem(ctx.at(w), m) for w, m in container.check_settings(ctx.settings, ctx.cwd)]
    on_nodes = ctx.engine != "local"
    for where, what in container.node_problems(ctx.settings):
        if on_nodes:
            what += (
                f"; looked for on this machine, but the jobs run on {ctx.engine}'s nodes,"
                " where it must be installed"
            )
        found.append(Problem(ctx.at(where), what, warning=on_nodes))
    return found


def check_stopping(ctx: Context) -> list[Problem]:
    """The early_stopping section; one that can never stop a job only warns."""
    found = [Problem(ctx.at(k), w) for k, w in stopping_problems(ctx.settings)]
    return found + [Problem(ctx.at(k), w, warning=True) for k, w in stopping_warnings(ctx.settings)]


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
            lambda: check_stopping(ctx),
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
    if not runs_rl_relay_jobs(ctx.settings, ctx.cwd):  # another job script: its own parameters
        checks = [c for c in checks if c[0] != "early stopping"]
        problems, passed, skipped = _run(ctx, checks)
        return problems, passed, [*skipped, "the job's parameters (not rl-relay's job script)"]
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
            lambda: check_container(ctx),
        ),
    ]
    return _run(ctx, checks)


#: The job scripts whose parameters rl-relay knows (its wrappers).
RL_RELAY_SCRIPTS = ("run_learning.py", "run_singularity.py")


def runs_rl_relay_jobs(settings: Mapping[str, Any], cwd: Path) -> bool:
    """Whether the jobs run one of rl-relay's wrappers: the job checks apply unless the job
    script is an existing file of another name (a missing one is reported by itself)."""
    script = Path(str(settings.get("script_relative_path", "")))
    return script.name in RL_RELAY_SCRIPTS or not (cwd / script).is_file()


def _run(
    ctx: Context, checks: list[tuple[str, tuple[str, ...], Callable[[], list[Problem]]]]
) -> tuple[list[Problem], list[str], list[str]]:
    problems: list[Problem] = []
    passed, skipped = [], []
    for name, reads, check in checks:
        if ctx.broken.intersection(reads) or ("job" in reads and ctx.job is None):
            skipped.append(name)
            continue
        found = check()
        problems += found
        if not any(not p.warning for p in found):
            passed.append(name)
    return problems, passed, skipped
