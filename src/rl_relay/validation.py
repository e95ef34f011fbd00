"""JSON Schemas shipped with the package, and their errors as (key, message) problems.

Every file format rl-relay reads (job parameters, ``restarts.json``, the learner's configs,
PBT settings) is described by a JSON Schema in ``rl_relay/schemas/`` (the learner's in
``rl_relay/learner/schemas/``); this module loads them and turns jsonschema's errors into
one problem per violation, each with the dotted key it concerns, for messages that name
the file and the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema


@dataclass(frozen=True)
class SchemaProblem:
    """One violation: the dotted key (or "(top level)"), jsonschema's message, the rule."""

    key: str
    message: str
    rule: str


@cache
def load_schema(name: str, package: str = "rl_relay") -> dict[str, Any]:
    """``<package>/schemas/<name>.schema.json``, parsed (cached)."""
    text = resources.files(package).joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    return json.loads(text)


def problems(schema: dict[str, Any], document: Any) -> list[SchemaProblem]:
    """Every violation of ``schema`` by ``document``, ordered by key."""
    validator = jsonschema.Draft202012Validator(schema)
    found = []
    for err in sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path]):
        key = ".".join(str(p) for p in err.absolute_path)
        if not key and err.validator == "required":
            key = err.message.split("'")[1]  # "'x' is a required property"
        found.append(SchemaProblem(key or "(top level)", err.message, str(err.validator)))
    return found
