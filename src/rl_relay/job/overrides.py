"""Parse and apply ``config.<name>.<key>[.<subkey>...][:<index>]`` hyperparameters.

cluster_utils can only sample scalars, so each sampled value names the template entry it
replaces: dots walk nested objects and ``:<index>`` (any number of digits, repeatable for
nested lists) picks a list element. The original read one index digit and wrote the raw
``key:index`` into the config; here the index is resolved, and a value never creates a
key that the template does not have.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rl_relay.paramtree import flatten, plain

#: Parameters with this prefix are overrides; ``config.config_templates`` is not.
PREFIX = "config"
TEMPLATES_KEY = "config_templates"

_SEGMENT = re.compile(r"^(?P<key>[^.:\[\]]+)(?P<indices>(?::[0-9]+)*)$")


class OverrideError(ValueError):
    """A parameter cannot be applied to the templates: a configuration error, never retried."""


@dataclass(frozen=True)
class Step:
    """One step of a path into a JSON document: an object key or a list index."""

    key: str | int

    def __str__(self) -> str:
        return f":{self.key}" if isinstance(self.key, int) else f".{self.key}"


@dataclass(frozen=True)
class Override:
    """A value for one entry of one template."""

    #: The parameter name as the user wrote it, for error messages.
    param: str
    #: The template name (a key of the template index).
    template: str
    #: The path inside the template; never empty.
    path: tuple[Step, ...]
    value: Any

    @property
    def location(self) -> str:
        """The entry as ``key.subkey:index`` (without the template name)."""
        return "".join(str(step) for step in self.path).lstrip(".")


def parse_param_name(param: str) -> tuple[str, tuple[Step, ...]]:
    """Split ``config.<name>.<key>[...]`` (with or without the ``config.`` prefix).

    Returns the template name and the path inside it.
    """
    body = param[len(PREFIX) + 1 :] if param.startswith(PREFIX + ".") else param
    parts = body.split(".")
    if len(parts) < 2:
        raise OverrideError(
            f"parameter {param!r}: expected 'config.<template>.<key>[.<subkey>...][:<index>]'"
            " (a template name and at least one key)"
        )
    template = parts[0]
    if not _SEGMENT.match(template) or ":" in template:
        raise OverrideError(f"parameter {param!r}: {template!r} is not a template name")
    path: list[Step] = []
    for part in parts[1:]:
        match = _SEGMENT.match(part)
        if match is None:
            raise OverrideError(
                f"parameter {param!r}: cannot read {part!r}; a key is followed only by"
                " ':<digits>' list indices, e.g. 'net_arch:1'"
            )
        path.append(Step(match["key"]))
        path.extend(Step(int(i)) for i in match["indices"].split(":")[1:])
    return template, tuple(path)


def collect_overrides(params: Mapping[str, Any]) -> list[Override]:
    """Every override in a job's parameters, nested (cluster_utils 3) or flat dotted form.

    cluster_utils 3 sends ``{'config': {'rl_config': {'learning_rate': 0.1}}}``; a hand
    written file may say ``{'config.rl_config.learning_rate': 0.1}``; both mean the same.
    Giving one entry in both forms with different values is an error.
    """
    found: dict[str, Any] = {}
    for name, value in flatten(params):
        if not name.startswith(PREFIX + ".") or name == f"{PREFIX}.{TEMPLATES_KEY}":
            continue
        if isinstance(value, Mapping):  # an empty section sets nothing
            continue
        if name in found and found[name] != value:
            raise OverrideError(
                f"parameter {name!r} is given twice (nested and dotted) with different"
                f" values {found[name]!r} and {value!r}; keep one"
            )
        found[name] = value
    overrides = []
    for name, value in sorted(found.items()):
        template, path = parse_param_name(name)
        overrides.append(Override(name, template, path, plain(value)))
    return overrides


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _compatible(old: Any, new: Any) -> bool:
    """JSON types must match; an integer may replace a number; a null template entry takes any."""
    old_type, new_type = _json_type(old), _json_type(new)
    return (
        old_type == "null"
        or old_type == new_type
        or (old_type, new_type)
        == (
            "number",
            "integer",
        )
    )


def apply_override(document: Any, override: Override, source: str) -> None:
    """Set one entry of ``document`` in place; ``source`` names the template file in errors."""
    node = document
    walked = ""
    for i, step in enumerate(override.path):
        last = i == len(override.path) - 1
        where = f"{override.template}{walked}" if walked else override.template
        if isinstance(step.key, int):
            if not isinstance(node, list):
                raise OverrideError(
                    f"parameter {override.param!r}: '{where}' in {source} is"
                    f" {_json_type(node)}, not a list, so it has no index {step.key}"
                )
            if step.key >= len(node):
                raise OverrideError(
                    f"parameter {override.param!r}: index {step.key} is out of range for"
                    f" '{where}' in {source}, which has {len(node)} element(s)"
                    f" (valid: 0..{len(node) - 1})"
                )
        else:
            if not isinstance(node, dict):
                raise OverrideError(
                    f"parameter {override.param!r}: '{where}' in {source} is"
                    f" {_json_type(node)}, not an object, so it has no key {step.key!r}"
                )
            if step.key not in node:
                known = ", ".join(sorted(node)) or "none"
                raise OverrideError(
                    f"parameter {override.param!r}: {source} has no key {step.key!r}"
                    f" under '{where}' (keys there: {known}); add it to the template or"
                    " fix the parameter name"
                )
        walked += str(step)
        if last:
            old = node[step.key]
            if not _compatible(old, override.value):
                raise OverrideError(
                    f"parameter {override.param!r}: {source} has"
                    f" {_json_type(old)} {old!r} at '{override.location}', but the value"
                    f" {override.value!r} is {_json_type(override.value)}; sample a value"
                    f" of the template's type"
                )
            node[step.key] = plain(override.value)
        else:
            node = node[step.key]


def merge(
    templates: Mapping[str, Any],
    overrides: list[Override],
    sources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return deep copies of ``templates`` with every override applied.

    All problems are collected and raised together, so one failed job shows all of them.
    """
    sources = sources or {}
    merged = {name: copy.deepcopy(doc) for name, doc in templates.items()}
    problems = []
    for override in overrides:
        if override.template not in merged:
            known = ", ".join(sorted(merged)) or "none"
            problems.append(
                f"parameter {override.param!r}: no template named {override.template!r}"
                f" in the template index (names: {known})"
            )
            continue
        source = sources.get(override.template, override.template)
        try:
            apply_override(merged[override.template], override, source)
        except OverrideError as err:
            problems.append(str(err))
    if problems:
        raise OverrideError("\n".join(problems))
    return merged
