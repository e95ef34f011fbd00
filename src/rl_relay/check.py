"""Find what would go wrong with an HPO settings file before anything is submitted.

Reads the settings with cluster_utils' own loader and the same ``key=value`` override
strings as ``python -m cluster_utils.hp_optimization``, then checks what a week of cluster
time should not be lost to: override targets and types against the templates, sampled
bounds against the learner's schemas, the metric, the cluster requirements of the engine
cluster_utils will pick, the job script and container, and anything that would make
cluster_utils wait for the keyboard.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_relay.job import ConfigError, prepare, step_configs
from rl_relay.job_params import lookup
from rl_relay.optimizers import optimizer_problems
from rl_relay.overrides import (
    Override,
    OverrideError,
    collect_overrides,
    merge,
    parse_param_name,
    plain,
)
from rl_relay.state import Step
from rl_relay.templates import write_configs

#: What run_learning reports to cluster_utils (finalize_job adds time_elapsed).
REPORTED_METRICS = (
    "mean_eprewmean",
    "std_eprewmean",
    "learning_runs",
    "failed_attempts",
    "resumes",
    "time_elapsed",
)
#: cluster_requirements keys each engine reads without a default (cluster_utils 3.0).
REQUIRED_REQUIREMENTS = {
    "slurm": ("partition", "request_cpus", "memory_in_mb", "request_time"),
    "htcondor": ("request_cpus", "request_gpus", "memory_in_mb", "bid"),
    "local": ("request_cpus",),
}
REQUIRED_SETTINGS = (
    "optimization_procedure_name",
    "results_dir",
    "script_relative_path",
    "cluster_requirements",
    "fixed_params",
    "optimized_params",
    "optimizer_str",
    "optimization_setting",
    "num_best_jobs_whose_data_is_kept",
)
REQUIRED_OPTIMIZATION_SETTING = (
    "metric_to_optimize",
    "minimize",
    "number_of_samples",
    "n_jobs_per_iteration",
)
INTEGER_DISTRIBUTIONS = ("IntNormal", "IntLogNormal")
FLOAT_DISTRIBUTIONS = ("TruncatedNormal", "TruncatedLogNormal")


@dataclass(frozen=True)
class Problem:
    """One thing to fix: where (file and key), what is wrong, what to do."""

    where: str
    what: str


@dataclass
class Context:
    """What every check may look at."""

    settings_file: Path
    settings: Mapping[str, Any]
    engine: str
    interactive: bool
    cwd: Path
    #: Filled by the job-parameter check, used by later ones (None if it failed).
    job: Any = None

    def at(self, key: str) -> str:
        return f"{self.settings_file}: {key}"


def detect_engine(local: bool = False) -> str:
    """The backend cluster_utils will pick: it looks at the PATH in this order."""
    if local:  # python -m rl_relay.local_hpo
        return "local"
    if shutil.which("condor_q"):
        return "htcondor"
    if shutil.which("sbatch"):
        return "slurm"
    return "local"


def load_settings(settings_file: Path, overrides: Sequence[str]) -> Mapping[str, Any]:
    """The settings exactly as ``cluster_utils.hp_optimization`` reads them."""
    from cluster_utils.server.settings import (
        read_main_script_params_from_args,
    )

    args = argparse.Namespace(settings_file=settings_file, settings=list(overrides))
    return read_main_script_params_from_args(args)


# -- the checks --------------------------------------------------------------------------


def check_sections(ctx: Context) -> list[Problem]:
    problems = [
        Problem(ctx.at(key), "is missing; cluster_utils' hp_optimization needs it")
        for key in REQUIRED_SETTINGS
        if key not in ctx.settings
    ]
    setting = ctx.settings.get("optimization_setting", {})
    problems += [
        Problem(ctx.at(f"optimization_setting.{key}"), "is missing")
        for key in REQUIRED_OPTIMIZATION_SETTING
        if isinstance(setting, Mapping) and key not in setting
    ]
    if "environment_setup" not in ctx.settings:
        problems.append(
            Problem(
                ctx.at("environment_setup"),
                "cluster_utils 3 fails with AttributeError without it; add at least {} (or"
                ' {"virtual_env_path": "..."} so that jobs run the right Python)',
            )
        )
    return problems


def check_interaction(ctx: Context) -> list[Problem]:
    """Anything that makes hp_optimization read the keyboard, which hangs or crashes in CI."""
    problems = []
    if not ctx.interactive and not ctx.settings.get("no_user_interaction", False):
        problems.append(
            Problem(
                ctx.at("no_user_interaction"),
                "is not true: hp_optimization reads the terminal while it runs, which fails"
                " without one (CI, nohup, a batch job); set it to true",
            )
        )
    setting = ctx.settings.get("optimization_setting", {})
    if ctx.engine == "local" and setting.get("run_local") is None:
        problems.append(
            Problem(
                ctx.at("optimization_setting.run_local"),
                "is not set and no cluster is on PATH: cluster_utils will ask 'Do you want to"
                " run locally?'; set it to true",
            )
        )
    results = _results_path(ctx.settings)
    if results is not None and results.exists():
        problems.append(
            Problem(
                ctx.at("optimization_procedure_name"),
                f"the results directory {results} exists: cluster_utils will ask whether to"
                " delete it; choose a new name, e.g. add"
                " 'optimization_procedure_name=\"<new name>\"' to the command line",
            )
        )
    return problems


def _results_path(settings: Mapping[str, Any]) -> Path | None:
    if "results_dir" not in settings or "optimization_procedure_name" not in settings:
        return None
    # cluster_utils joins results_dir onto the home directory (an absolute one wins)
    return Path.home() / settings["results_dir"] / settings["optimization_procedure_name"]


def check_metric(ctx: Context) -> list[Problem]:
    metric = ctx.settings.get("optimization_setting", {}).get("metric_to_optimize")
    if metric is None or metric in REPORTED_METRICS:
        return []
    return [
        Problem(
            ctx.at("optimization_setting.metric_to_optimize"),
            f"{metric!r} is never reported by run_learning; use one of"
            f" {', '.join(REPORTED_METRICS)} (mean_eprewmean with minimize false, usually)",
        )
    ]


def check_requirements(ctx: Context) -> list[Problem]:
    requirements = ctx.settings.get("cluster_requirements", {})
    if not isinstance(requirements, Mapping):
        return [Problem(ctx.at("cluster_requirements"), "must be an object")]
    missing = [k for k in REQUIRED_REQUIREMENTS[ctx.engine] if k not in requirements]
    problems = [
        Problem(
            ctx.at(f"cluster_requirements.{key}"),
            f"is missing, and {ctx.engine} (detected from the PATH) needs it",
        )
        for key in missing
    ]
    needs_cuda = ctx.engine == "htcondor" and requirements.get("request_gpus", 0) > 0
    if needs_cuda and "cuda_requirement" not in requirements:
        problems.append(
            Problem(
                ctx.at("cluster_requirements.cuda_requirement"),
                "is missing; HTCondor needs it (null for none) when request_gpus > 0",
            )
        )
    return problems


def check_script(ctx: Context) -> list[Problem]:
    script = ctx.settings.get("script_relative_path")
    if not script:
        return []
    path = ctx.cwd / script
    if not path.is_file():
        return [
            Problem(
                ctx.at("script_relative_path"),
                f"{path} does not exist; it is resolved against the directory you start"
                " hp_optimization in (the repository root)",
            )
        ]
    return []


def _fixed_params(ctx: Context) -> dict[str, Any]:
    return plain(ctx.settings.get("fixed_params", {}))


def check_job_params(ctx: Context) -> list[Problem]:
    """Fixed parameters, templates and fixed overrides, as the job itself will check them."""
    fixed = _fixed_params(ctx)
    if lookup(fixed, "config.config_templates", None) is None:  # flat or nested
        return [
            Problem(
                ctx.at("fixed_params.config.config_templates"),
                "is missing: run_learning needs the template index, e.g."
                ' "./hp_optim/config_templates_ppo.json"',
            )
        ]
    cwd = os.getcwd()
    try:
        os.chdir(ctx.cwd)  # relative paths resolve as in a job started in the repo root
        ctx.job = prepare(fixed, f"{ctx.settings_file} (fixed_params)", Path("."))
    except ConfigError as err:
        return [Problem(ctx.at("fixed_params"), line) for line in str(err).splitlines()]
    finally:
        os.chdir(cwd)
    return []


def sample_configuration(ctx: Context) -> dict[str, Any]:
    """One value per optimized parameter, drawn with cluster_utils' own distributions."""
    from cluster_utils.hp_optimization import get_distribution

    samples = {}
    for item in ctx.settings.get("optimized_params", []):
        try:
            distribution = get_distribution(**plain(item))
            distribution.prepare_samples(1)
            samples[item["param"]] = distribution.sample()
        except Exception:  # reported by check_search_space  # noqa: BLE001
            continue
    return samples


def _values_to_try(item: Mapping[str, Any]) -> list[Any]:
    """The values of a search dimension that decide whether every sample fits: its ends."""
    if item.get("distribution") == "Discrete":
        return list(item.get("options", item.get("bounds", [])))
    bounds = list(item.get("bounds", []))
    if item.get("distribution") in FLOAT_DISTRIBUTIONS:
        return [float(b) for b in bounds]
    return bounds


def check_search_space(
    ctx: Context, validate: Callable[[dict[str, Any], dict[str, str]], list[str]] | None
) -> list[Problem]:
    """Every optimized parameter: known distribution, existing target, type, schema at its ends."""
    problems = []
    templates = ctx.job.templates
    fixed = list(ctx.job.overrides)
    # problems the templates have anyway are the sampled configuration's to report
    base_problems = set(validate(ctx.job.merged, templates.sources)) if validate else set()
    for i, item in enumerate(ctx.settings.get("optimized_params", [])):
        where = ctx.at(f"optimized_params[{i}]")
        item = plain(item)
        param = item.get("param", "")
        distribution = item.get("distribution")
        if distribution not in (*INTEGER_DISTRIBUTIONS, *FLOAT_DISTRIBUTIONS, "Discrete"):
            problems.append(
                Problem(
                    where,
                    f"distribution {distribution!r} of {param!r} is not one of"
                    " cluster_utils' TruncatedNormal, TruncatedLogNormal, IntNormal,"
                    " IntLogNormal, Discrete",
                )
            )
            continue
        if not param.startswith("config."):
            continue
        try:
            template, path = parse_param_name(param)
        except OverrideError as err:
            problems.append(Problem(where, str(err)))
            continue
        for value in _values_to_try(item):
            override = Override(param, template, path, value)
            try:
                merged = merge(templates.documents, [*fixed, override], templates.sources)
            except OverrideError as err:
                kind = "a float" if distribution in FLOAT_DISTRIBUTIONS else repr(value)
                problems.append(
                    Problem(
                        where,
                        f"{distribution} samples {kind}: {err}"
                        + (
                            "; use IntNormal/IntLogNormal for integers"
                            if distribution in FLOAT_DISTRIBUTIONS and "is number" in str(err)
                            else ""
                        ),
                    )
                )
                break
            if validate is not None:
                for message in set(validate(merged, templates.sources)) - base_problems:
                    problems.append(
                        Problem(
                            where,
                            f"{param} = {value!r} (an end of its range) is not"
                            f" allowed by the learner: {message}",
                        )
                    )
    return problems


def check_sample(
    ctx: Context, validate: Callable[[dict[str, Any], dict[str, str]], list[str]] | None
) -> list[Problem]:
    """Write the configs of one sampled configuration as a job would, and validate them."""
    samples = sample_configuration(ctx)
    overrides = [*ctx.job.overrides, *collect_overrides(samples)]
    templates = ctx.job.templates
    try:
        merged = merge(templates.documents, overrides, templates.sources)
    except OverrideError:
        return []  # each parameter's own problem is reported by check_search_space
    job = dataclasses.replace(ctx.job, merged=merged)
    with tempfile.TemporaryDirectory(prefix="rl-relay-check-") as tmp:
        run_dir = Path(tmp) / "run_0.0-0"
        step = Step(run=0, iteration=0, attempt=0, seed=0, load_path="", continuing=False)
        configs = step_configs(job, step, run_dir)
        write_configs(run_dir, configs)
        written = {
            name: json.loads((run_dir / "config" / f"{name}.json").read_text()) for name in configs
        }
        if validate is None:
            return []
        return [
            Problem(ctx.at("sampled configuration"), f"{message} (sample: {samples})")
            for message in validate(written, ctx.job.templates.sources)
        ]


def uses_default_learner(command: Sequence[str]) -> bool:
    """Whether the learning command is rl-relay's own learner (whose schemas then apply)."""
    return any("rl_relay.learner" in part or part.endswith("rl-relay-learn") for part in command)


def learner_validator(ctx: Context) -> Callable[[dict[str, Any], dict[str, str]], list[str]] | None:
    """The default learner's schema check, when the job runs the default learner."""
    if ctx.job is None or not uses_default_learner(ctx.job.params.learning_command):
        return None
    from rl_relay.learner.config import validate_configs

    return validate_configs


def run_checks(ctx: Context) -> tuple[list[Problem], list[str], list[str]]:
    """All checks; returns the problems and the names of the checks passed and skipped."""
    checks: list[tuple[str, Callable[[], list[Problem]]]] = [
        ("settings sections", lambda: check_sections(ctx)),
        ("no keyboard input needed", lambda: check_interaction(ctx)),
        ("metric is reported", lambda: check_metric(ctx)),
        (
            "optimizer and its settings",
            lambda: [
                Problem(ctx.at(key), what)
                for key, what in optimizer_problems(
                    ctx.settings.get("optimizer_str"),
                    ctx.settings.get("optimizer_settings"),
                    ctx.settings.get("optimized_params", []),
                )
            ],
        ),
        (f"cluster_requirements for {ctx.engine}", lambda: check_requirements(ctx)),
        ("job script", lambda: check_script(ctx)),
        ("fixed parameters and templates", lambda: check_job_params(ctx)),
        (
            "search space against templates and schemas",
            lambda: check_search_space(ctx, learner_validator(ctx)),
        ),
        ("a sampled configuration", lambda: check_sample(ctx, learner_validator(ctx))),
    ]
    try:
        from rl_relay.container import check_settings as container_checks
    except ImportError:
        container_checks = None
    if container_checks is not None:
        checks.append(
            (
                "container",
                lambda: [Problem(ctx.at(w), m) for w, m in container_checks(ctx.settings, ctx.cwd)],
            )
        )
    needs_job = {"search space against templates and schemas", "a sampled configuration"}
    problems: list[Problem] = []
    passed, skipped = [], []
    for name, check in checks:
        if name in needs_job and ctx.job is None:
            skipped.append(name)
            continue
        found = check()
        problems += found
        if not found:
            passed.append(name)
    return problems, passed, skipped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("settings_file", type=Path, help="the hp_optimization settings JSON")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="the same override strings hp_optimization takes, e.g."
        " 'optimization_procedure_name=\"ppo_run_2\"'",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="check for a local run with python -m rl_relay.local_hpo (ignore sbatch/condor_q)",
    )


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    try:
        settings = load_settings(args.settings_file, args.overrides)
    except Exception as err:  # whatever cluster_utils' loader raises  # noqa: BLE001
        print(
            f"FAIL {args.settings_file}: cannot be read as cluster_utils reads it: {err}", file=out
        )
        return 1
    ctx = Context(
        settings_file=args.settings_file,
        settings=settings,
        engine=detect_engine(args.local),
        interactive=sys.stdin.isatty(),
        cwd=Path.cwd(),
    )
    problems, passed, skipped = run_checks(ctx)
    print(f"rl-relay check {args.settings_file} (engine: {ctx.engine})", file=out)
    for name in passed:
        print(f"  ok    {name}", file=out)
    for name in skipped:
        print(f"  skip  {name} (fix the fixed parameters first)", file=out)
    for problem in problems:
        print(f"  FAIL  {problem.where}: {problem.what}", file=out)
    if problems:
        print(f"{len(problems)} problem(s); nothing was submitted.", file=out)
        return 1
    print("All checks passed.", file=out)
    return 0
