"""Checks of the settings file itself: its shape, the keyboard, the metric, the engine, what
cluster_utils' loader and (plain) job script do to its values and paths."""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rl_relay.check.context import Context, Problem, results_path
from rl_relay.metrics import DEFAULT_METRIC, REPORTED
from rl_relay.paramtree import flatten, plain
from rl_relay.settings_file import SECTION, known_keys
from rl_relay.validation import load_schema, problems

#: cluster_requirements keys each engine reads without a default (cluster_utils 3.0).
REQUIRED_REQUIREMENTS = {
    "slurm": ("partition", "request_cpus", "memory_in_mb", "request_time"),
    "htcondor": ("request_cpus", "request_gpus", "memory_in_mb", "bid"),
    "local": ("request_cpus",),
}


def _key(dotted: str) -> str:
    """``optimized_params.2.bounds`` -> ``optimized_params[2].bounds``."""
    return re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", dotted)


#: What to do about a schema rule of one key, where jsonschema's own words would not say it.
_SCHEMA_HINTS = {
    ("optimization_procedure_name", "pattern"): (
        "is {value!r}: it names this HPO's own directory inside results_dir (which `rl-relay"
        " hpo --fresh` moves aside), so it must be one plain directory name, not empty, '.'"
        " or '..' and without '/'; e.g. \"ppo_run_2\""
    ),
    ("optimized_params", "minItems"): (
        "is empty: give at least one parameter to search (with none, cluster_utils runs every"
        " job and then fails on its tables with 'No group keys passed!')"
    ),
}


def unknown_key_problems(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, what to do) for every key nothing reads: at the top level (cluster_utils ignores
    it) and in ``optimization_setting`` (its hp_optimization fails with a TypeError), each with
    a did-you-mean among every known key, a misplaced one included."""
    known = [*known_keys(), *(f"{SECTION}.{k}" for k in known_keys(SECTION))]
    by_leaf: dict[str, str] = {}
    for name in known:
        by_leaf.setdefault(name.rsplit(".", 1)[-1], name)
    found = []
    section = settings.get(SECTION)
    places = [("", settings), (f"{SECTION}.", section if isinstance(section, Mapping) else {})]
    for prefix, mapping in places:
        allowed = known_keys(prefix.rstrip(".") or None)
        for name in sorted(str(k) for k in mapping if k not in allowed):
            close = difflib.get_close_matches(name, sorted(by_leaf), n=1, cutoff=0.6)
            if close:
                hint = f"did you mean {by_leaf[close[0]]!r}?"
            else:
                hint = f"known keys here: {', '.join(sorted(allowed))}"
            found.append((f"{prefix}{name}", f"is not a setting anything reads; {hint}"))
    return found


def check_shape(ctx: Context) -> list[Problem]:
    """Every section present with the type cluster_utils expects (its own errors are
    tracebacks), and no key nothing reads; sections found broken are skipped by the checks
    that read them."""
    found = []
    for problem in problems(load_schema("hpo_settings"), ctx.settings):
        if problem.rule == "additionalProperties":
            continue  # unknown_key_problems, with a did-you-mean
        key = _key(problem.key)
        item = re.match(r"optimized_params\[\d+\]", key)
        ctx.broken.add(item.group(0) if item else key.split(".")[0])
        hint = _SCHEMA_HINTS.get((key, problem.rule))
        if hint is not None:
            what = hint.format(value=ctx.settings.get(key))
        elif problem.rule == "required" and "." not in problem.key:
            what = "is missing; cluster_utils' hp_optimization needs it"
        elif problem.rule == "required":
            what = f"{problem.message.split(' is a')[0]} is missing"
        else:
            what = f"{problem.message}; see the README's settings examples (hp_optim/)"
        found.append(Problem(ctx.at(key), what))
    found += [Problem(ctx.at(key), what) for key, what in unknown_key_problems(ctx.settings)]
    if SECTION not in ctx.broken:
        found += _resubmit_problems(ctx)
    if "environment_setup" not in ctx.settings:
        found.append(
            Problem(
                ctx.at("environment_setup"),
                "cluster_utils 3 fails with AttributeError without it; add at least {} (or"
                ' {"virtual_env_path": "..."} so that jobs run the right Python)',
            )
        )
    return found


def _resubmit_problems(ctx: Context) -> list[Problem]:
    """cluster_utils raises a ValueError (a traceback) unless 1 <= this <= n_jobs_per_iteration."""
    setting = ctx.section(SECTION)
    value = setting.get("n_completed_jobs_before_resubmit")
    per_iteration = setting.get("n_jobs_per_iteration")
    if value is None or per_iteration is None or value <= per_iteration:
        return []
    return [
        Problem(
            ctx.at(f"{SECTION}.n_completed_jobs_before_resubmit"),
            f"is {value}, more than n_jobs_per_iteration ({per_iteration}); cluster_utils needs"
            " it between 1 and n_jobs_per_iteration",
        )
    ]


def check_interaction(ctx: Context) -> list[Problem]:
    """Anything that makes hp_optimization read the keyboard, which hangs or crashes in CI."""
    found = []
    if not ctx.interactive and not ctx.settings.get("no_user_interaction", False):
        found.append(
            Problem(
                ctx.at("no_user_interaction"),
                "is not true: hp_optimization reads the terminal while it runs, which fails"
                " without one (CI, nohup, a batch job); set it to true",
            )
        )
    setting = ctx.section("optimization_setting")
    if ctx.engine == "local" and setting.get("run_local") is None:
        found.append(
            Problem(
                ctx.at("optimization_setting.run_local"),
                "is not set and no cluster is on PATH: cluster_utils will ask 'Do you want to"
                " run locally?'; set it to true",
            )
        )
    results = results_path(ctx.settings)
    if results is not None and results.exists() and ctx.plain_cluster_utils:
        found.append(
            Problem(
                ctx.at("optimization_procedure_name"),
                f"the results directory {results} exists: cluster_utils will ask whether to"
                " delete it; run `rl-relay hpo` to continue it (`--fresh` starts over after"
                " moving it aside), or choose a new name, e.g. add"
                " 'optimization_procedure_name=\"<new name>\"' to the command line",
            )
        )
    return found


def check_metric(ctx: Context) -> list[Problem]:
    metric = ctx.section("optimization_setting").get("metric_to_optimize")
    if metric is None or metric in REPORTED:
        return []
    return [
        Problem(
            ctx.at("optimization_setting.metric_to_optimize"),
            f"{metric!r} is never reported by run_learning; use one of"
            f" {', '.join(REPORTED)} ({DEFAULT_METRIC} with minimize false, usually)",
        )
    ]


def check_requirements(ctx: Context) -> list[Problem]:
    requirements = ctx.section("cluster_requirements")
    found = [
        Problem(
            ctx.at(f"cluster_requirements.{key}"),
            f"is missing, and {ctx.engine} (detected from the PATH) needs it",
        )
        for key in REQUIRED_REQUIREMENTS[ctx.engine]
        if key not in requirements
    ]
    gpus = requirements.get("request_gpus", 0)
    needs_cuda = ctx.engine == "htcondor" and isinstance(gpus, int | float) and gpus > 0
    if needs_cuda and "cuda_requirement" not in requirements:
        found.append(
            Problem(
                ctx.at("cluster_requirements.cuda_requirement"),
                "is missing; HTCondor needs it (null for none) when request_gpus > 0",
            )
        )
    return found


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


#: Characters bash interprets inside the double-quoted word in which plain cluster_utils 3.0
#: (server/job.py) writes ``--parameter-dict "{...}"``: the Python repr of the job's
#: parameters. A value holding one reaches the job changed, or breaks the job script.
#: ``rl-relay hpo`` passes a parameter file instead (``hpo.patches.job_script``).
SHELL_SPECIAL = ("$", "`", '"', "\\")


def _shell_problem(where: str, text: str) -> Problem | None:
    shown = repr(text)  # what cluster_utils writes: a ' in the value makes repr use "
    bad = sorted({c for c in shown if c in SHELL_SPECIAL})
    if not bad:
        return None
    return Problem(
        where,
        f"{text!r} would reach the job changed: plain cluster_utils passes the job's parameters"
        " inside one double-quoted bash word, where"
        f" {' '.join(bad)} {'is' if len(bad) == 1 else 'are'} interpreted"
        + (" (a ' makes Python quote the value with \")" if "'" in text else "")
        + "; start the HPO with `rl-relay hpo`, which passes them in a file, or remove the"
        " character",
    )


def _leaves(where: str, value: object) -> list[tuple[str, object]]:
    """``(key, leaf)`` of every value in ``value``, lists and mappings at any depth."""
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _leaves(f"{where}[{i}]", v)]
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _leaves(f"{where}.{k}", v)]
    return [(where, value)]


def _strings(where: str, value: object) -> list[tuple[str, str]]:
    """``(key, text)`` of every string in ``value``, lists and mappings at any depth."""
    return [(key, leaf) for key, leaf in _leaves(where, value) if isinstance(leaf, str)]


def _parameter_values(settings: Mapping[str, Any]) -> list[tuple[str, object]]:
    """``(key, leaf)`` of every value the jobs get: fixed parameters and ``Discrete`` options."""
    found: list[tuple[str, object]] = []
    fixed = settings.get("fixed_params")
    for name, value in flatten(plain(fixed)) if isinstance(fixed, Mapping) else []:
        found += _leaves(f"fixed_params.{name}", value)
    items = settings.get("optimized_params")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and isinstance(item.get("options"), list):
            found += _leaves(f"optimized_params[{i}].options", plain(item["options"]))
    return found


def check_shell_quoting(ctx: Context) -> list[Problem]:
    """For plain ``python -m cluster_utils.hp_optimization`` (``rl-relay hpo`` quotes
    everything): string values its job script would alter (see SHELL_SPECIAL) and the
    paths it pastes into the script unquoted (a space: ``cd: too many arguments``).

    Fixed parameters, ``Discrete`` options and the results directory (every job gets its
    ``working_dir`` under it); the project directory, the virtual environment, the script,
    the jobs directory and the image."""
    texts = [(k, v) for k, v in _parameter_values(ctx.settings) if isinstance(v, str)]
    results = results_path(ctx.settings)
    if results is not None:
        texts.append(("results_dir / optimization_procedure_name", str(results)))
    found = [_shell_problem(ctx.at(where), text) for where, text in texts]
    return [p for p in found if p is not None] + _unquoted_paths(ctx)


def _unquoted_paths(ctx: Context) -> list[Problem]:
    cache = os.environ.get(
        "CLUSTER_UTILS_CACHE_DIR", os.path.join(Path.home(), ".cache", "cluster_utils")
    )
    name = str(ctx.settings.get("optimization_procedure_name", ""))
    setup = ctx.section("environment_setup")
    paths = [
        ("CLUSTER_UTILS_CACHE_DIR (the jobs directory)", cache),
        ("optimization_procedure_name (the jobs directory's name)", name),
        ("script_relative_path", str(ctx.settings.get("script_relative_path", ""))),
        *((f"environment_setup.{key}", str(setup[key])) for key in _SETUP_PATHS if key in setup),
        ("singularity.image", str(ctx.section("singularity").get("image", ""))),
    ]
    if ctx.settings.get("run_in_working_dir", False):
        paths.append(("run_in_working_dir (the directory you start it in)", str(ctx.cwd)))
    return [
        Problem(
            ctx.at(where),
            f"{path!r} would be pasted unquoted into plain cluster_utils' job script, where"
            " bash splits it at a space and interprets quotes, $ and the like: the job never"
            " starts and the HPO waits for it; start the HPO with `rl-relay hpo`, which quotes"
            " every path, or use a path of letters, digits and _ - . / only",
        )
        for where, path in paths
        if path and shlex.quote(path) != path
    ]


#: ``environment_setup`` keys cluster_utils pastes into its job script as paths.
_SETUP_PATHS = ("virtual_env_path", "conda_env_path", "pre_job_script")


def check_loader_changes(ctx: Context) -> list[Problem]:
    """Values cluster_utils' settings loader changes before any job sees them: smart_settings'
    dynamic values evaluate every string as a Python f-string, so ``\\n`` becomes a newline,
    ``\\\\`` one backslash, ``"a" "b"`` ``ab``. Strings with ``{`` are left alone (a dynamic
    value is what they are for)."""
    if ctx.written is None:
        return []
    read = dict(_parameter_values(ctx.settings))
    return [
        Problem(
            ctx.at(where),
            f"is written {written!r} but cluster_utils reads {read[where]!r}: it evaluates"
            " every string of the settings file as a Python f-string (smart_settings' dynamic"
            " values), which processes backslash escapes; double each backslash to keep it,"
            " or give the value as an override string on the command line",
        )
        for where, written in _parameter_values(ctx.written)
        if isinstance(written, str)
        and "{" not in written
        and where in read
        and read[where] != written
    ]


def check_job_files(ctx: Context) -> list[Problem]:
    """What Slurm's ``#SBATCH`` lines and HTCondor's submit description cannot hold."""
    from rl_relay.settings_file import job_file_problems

    return [
        Problem(ctx.at(key), what)
        for key, what in job_file_problems(ctx.settings, ctx.engine, os.environ)
    ]
