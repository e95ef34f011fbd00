"""Checks of what the jobs will get: fixed parameters, templates, the search space, a sample.

They use the job's own code (``job.config.prepare``, the override merge, the learner's
schemas), so what passes here passes in every job.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rl_relay.check.context import Context, Problem
from rl_relay.job.config import (
    ConfigError,
    managed_key_problem,
    prepare,
    step_configs,
    with_overrides,
)
from rl_relay.job.overrides import Override, OverrideError, collect_overrides, parse_param_name
from rl_relay.job.params import CLUSTER_UTILS_KEYS, unknown_parameter_problems
from rl_relay.job.state import Step
from rl_relay.job.templates import write_configs
from rl_relay.layout import StepPaths
from rl_relay.paramtree import lookup, plain

Validator = Callable[[dict[str, Any], dict[str, str]], list[str]]

INTEGER_DISTRIBUTIONS = ("IntNormal", "IntLogNormal")
FLOAT_DISTRIBUTIONS = ("TruncatedNormal", "TruncatedLogNormal")
LOG_DISTRIBUTIONS = ("TruncatedLogNormal", "IntLogNormal")


def check_job_params(ctx: Context) -> list[Problem]:
    """Fixed parameters, templates and fixed overrides, as the job itself will check them."""
    fixed = plain(ctx.section("fixed_params"))
    if lookup(fixed, "config.config_templates", None) is None:  # flat or nested
        return [
            Problem(
                ctx.at("fixed_params.config.config_templates"),
                "is missing: run_learning needs the template index, e.g."
                ' "./hp_optim/config_templates_ppo.json"',
            )
        ]
    found = [
        Problem(
            ctx.at(f"fixed_params.{key}"),
            f"cluster_utils sets {key} for every job and ignores this value; remove it",
        )
        for key in CLUSTER_UTILS_KEYS
        if lookup(fixed, key, None) is not None
    ]
    try:
        ctx.job = prepare(
            fixed,
            "fixed_params",
            ctx.cwd,  # relative paths resolve as in a job started in the repo root
            require=("config.config_templates",),
        )
    except ConfigError as err:
        found += [
            Problem(ctx.at("fixed_params"), line.removeprefix("fixed_params: "))
            for line in str(err).splitlines()
        ]
    return found


def _values_to_try(item: Mapping[str, Any]) -> list[Any]:
    """The values of a search dimension that decide whether every sample fits: its ends."""
    if item.get("distribution") == "Discrete":
        return list(item.get("options", item.get("bounds", [])))
    bounds = list(item.get("bounds", []))
    if item.get("distribution") in FLOAT_DISTRIBUTIONS:
        return [float(b) for b in bounds]
    return bounds


def _bounds_problem(item: Mapping[str, Any]) -> str | None:
    distribution, bounds = item["distribution"], item.get("bounds")
    if distribution == "Discrete" or not bounds:
        return None
    low, high = bounds
    if low >= high:
        return f"bounds {bounds}: the lower bound must be below the upper one"
    if distribution in LOG_DISTRIBUTIONS and low <= 0:
        return f"bounds {bounds}: {distribution} needs a positive lower bound"
    return None


def _dimension_problems(
    ctx: Context, item: dict[str, Any], base: set[str], validate: Validator | None
) -> list[str]:
    param, distribution = item["param"], item["distribution"]
    if (problem := _bounds_problem(item)) is not None:
        return [problem]
    unknown = unknown_parameter_problems({param: None}, "optimized", list(ctx.job.merged))
    if unknown:
        return [line.removeprefix("optimized: ") for line in unknown]
    if not param.startswith("config."):
        return []
    try:
        template, path = parse_param_name(param)
    except OverrideError as err:
        return [str(err)]
    if (problem := managed_key_problem(Override(param, template, path, None))) is not None:
        return [problem.replace("set the fixed parameter", "optimise the parameter")]
    found = []
    for value in _values_to_try(item):
        try:
            merged = with_overrides(ctx.job, [Override(param, template, path, value)]).merged
        except ConfigError as err:
            kind = "a float" if distribution in FLOAT_DISTRIBUTIONS else repr(value)
            hint = ""
            if distribution in FLOAT_DISTRIBUTIONS and "is number" in str(err):
                hint = "; use IntNormal/IntLogNormal for integers"
            return [f"{distribution} samples {kind}: {err}{hint}"]
        if validate is not None:
            templates = ctx.job.templates
            for message in sorted(set(validate(merged, templates.sources)) - base):
                found.append(
                    f"{param} = {value!r} (an end of its range) is not allowed by the"
                    f" learner: {message}"
                )
    return found


def check_search_space(ctx: Context, validate: Validator | None) -> list[Problem]:
    """Every optimized parameter: a name something reads, an existing target of the right
    type, bounds that make sense, and values at its ends that the learner accepts."""
    # problems the templates have anyway are the sampled configuration's to report
    base = set(validate(ctx.job.merged, ctx.job.templates.sources)) if validate else set()
    found = []
    for i, item in ctx.optimized_params:
        where = ctx.at(f"optimized_params[{i}]")
        found += [Problem(where, m) for m in _dimension_problems(ctx, item, base, validate)]
    return found


def sample_configuration(ctx: Context) -> dict[str, Any]:
    """One value per optimized parameter, drawn with cluster_utils' own distributions."""
    from cluster_utils.hp_optimization import get_distribution

    samples = {}
    for _, item in ctx.optimized_params:
        try:
            distribution = get_distribution(**item)
            distribution.prepare_samples(1)
            samples[item["param"]] = plain(distribution.sample())
        except Exception:  # reported by check_search_space  # noqa: BLE001
            continue
    return samples


def check_sample(ctx: Context, validate: Validator | None) -> list[Problem]:
    """Write the configs of one sampled configuration as a job would, and validate them."""
    samples = sample_configuration(ctx)
    try:
        job = with_overrides(ctx.job, collect_overrides(samples))
    except (ConfigError, OverrideError):
        return []  # each parameter's own problem is reported by check_search_space
    with tempfile.TemporaryDirectory(prefix="rl-relay-check-") as tmp:
        step = Step(run=0, iteration=0, attempt=0, seed=0, load_path="", continuing=False)
        paths = StepPaths(Path(tmp) / step.dir_name)
        configs = step_configs(job, step, paths)
        write_configs(paths, configs)
        written = {name: json.loads(paths.config(name).read_text()) for name in configs}
    if validate is None:
        return []
    return [
        Problem(ctx.at("sampled configuration"), f"{message} (sample: {samples})")
        for message in validate(written, job.templates.sources)
    ]


def learner_validator(ctx: Context) -> Validator | None:
    """The default learner's schema check, when the job runs the default learner."""
    if ctx.job is None or not ctx.job.params.uses_default_learner:
        return None
    from rl_relay.learner.config import validate_configs

    return validate_configs
