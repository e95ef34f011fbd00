"""JSON Schemas shipped with the package, and their errors as (key, message) problems.

Every file format rl-relay reads (job parameters, ``restarts.json``, the learner's configs,
PBT settings) is described by a JSON Schema in ``rl_relay/schemas/`` (the learner's in
``rl_relay/learner/schemas/``); this module loads them and turns jsonschema's errors into
one problem per violation, each with the dotted key it concerns, for messages that name
the file and the key.

``jsonschema`` takes about a tenth of a second to import, paid by every job process and
every learner process of every chained iteration, where the documents are nearly always
valid. So ``problems`` first asks ``certainly_valid``, a small conservative check of the
keywords these schemas use, and imports jsonschema only when that cannot vouch for the
document: every message still comes from jsonschema, and a document the quick check
accepts is one jsonschema accepts (tested on every schema).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


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


#: Keywords that only annotate: they never make a document invalid.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "title", "description", "examples", "$comment"}
)
#: Keywords judged together with others (``properties`` by ``additionalProperties``, ...).
_GROUPED = frozenset({"properties", "additionalProperties", "items", "prefixItems"})
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "boolean": (bool,),
    "null": (type(None),),
}
#: A verdict: True (valid), False (invalid), None (this check cannot tell).
Verdict = bool | None


def _all(verdicts: list[Verdict]) -> Verdict:
    if False in verdicts:
        return False
    return True if all(v is True for v in verdicts) else None


def _any(verdicts: list[Verdict]) -> Verdict:
    if True in verdicts:
        return True
    return False if all(v is False for v in verdicts) else None


def _type_verdict(name: str, instance: Any) -> Verdict:
    """Whether ``instance`` is of JSON type ``name`` as jsonschema decides."""
    if name in ("integer", "number"):
        if isinstance(instance, bool) or not isinstance(instance, int | float):
            return False
        if isinstance(instance, int) or name == "number":
            return True
        return None if instance.is_integer() else False  # 1.0 is an integer to jsonschema
    if name not in _TYPES:
        return None
    return isinstance(instance, _TYPES[name])


def _same(a: Any, b: Any) -> Verdict:
    """Equal as JSON values (True is not 1); None when the types make it unclear."""
    if type(a) is not type(b):
        both_numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
        return None if both_numbers else False
    return a == b if isinstance(a, str | bool | int | float | type(None)) else None


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _keyword(keyword: str, value: Any, instance: Any, root: Mapping[str, Any]) -> Verdict:
    """The verdict of one keyword that is not in ``_GROUPED``."""
    if keyword == "type":
        names = value if isinstance(value, list) else [value]
        return _any([_type_verdict(str(n), instance) for n in names])
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if not _is_number(instance):
            return True  # applies to numbers only
        if not _is_number(value):
            return None
        return {
            "minimum": instance >= value,
            "maximum": instance <= value,
            "exclusiveMinimum": instance > value,
            "exclusiveMaximum": instance < value,
        }[keyword]
    if keyword in ("minLength", "maxLength"):
        if not isinstance(instance, str):
            return True
        return len(instance) >= value if keyword == "minLength" else len(instance) <= value
    if keyword in ("minItems", "maxItems"):
        if not isinstance(instance, list):
            return True
        return len(instance) >= value if keyword == "minItems" else len(instance) <= value
    if keyword in ("enum", "const"):
        options = value if keyword == "enum" else [value]
        return _any([_same(option, instance) for option in options])
    if keyword == "pattern":
        return not isinstance(instance, str) or re.search(value, instance) is not None
    if keyword == "required":
        return not isinstance(instance, dict) or all(k in instance for k in value)
    if keyword in ("oneOf", "anyOf"):
        verdicts = [_verdict(branch, instance, root) for branch in value]
        if keyword == "anyOf":
            return _any(verdicts)
        if verdicts.count(True) > 1:
            return False
        if verdicts.count(True) == 1:
            return True if verdicts.count(False) == len(verdicts) - 1 else None
        return False if all(v is False for v in verdicts) else None
    if keyword == "$ref":
        if not isinstance(value, str) or not value.startswith("#/$defs/"):
            return None
        target = root.get("$defs", {}).get(value.removeprefix("#/$defs/"))
        return None if target is None else _verdict(target, instance, root)
    return None  # a keyword this check does not know


def _object(schema: Mapping[str, Any], instance: Any, root: Mapping[str, Any]) -> Verdict:
    """``properties`` and ``additionalProperties``, which decide together."""
    if not isinstance(instance, dict):
        return True
    known = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    verdicts = []
    for key, value in instance.items():
        verdicts.append(_verdict(known.get(key, extra), value, root))
    return _all(verdicts)


def _array(schema: Mapping[str, Any], instance: Any, root: Mapping[str, Any]) -> Verdict:
    """``prefixItems`` and ``items``, which decide together which items each checks."""
    if not isinstance(instance, list):
        return True
    prefix = schema.get("prefixItems", [])
    verdicts = [_verdict(s, v, root) for s, v in zip(prefix, instance, strict=False)]
    rest = schema.get("items", True)
    verdicts += [_verdict(rest, v, root) for v in instance[len(prefix) :]]
    return _all(verdicts)


def _verdict(schema: Any, instance: Any, root: Mapping[str, Any]) -> Verdict:
    """Whether ``instance`` satisfies ``schema`` (True, False, or None: cannot tell)."""
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        return None
    if "patternProperties" in schema or "unevaluatedProperties" in schema:
        return None
    verdicts = [
        _keyword(k, v, instance, root)
        for k, v in schema.items()
        if k not in _ANNOTATIONS and k not in _GROUPED
    ]
    if _GROUPED & schema.keys():
        verdicts += [_object(schema, instance, root), _array(schema, instance, root)]
    return _all(verdicts)


def certainly_valid(schema: Mapping[str, Any], document: Any) -> bool:
    """True only when ``document`` satisfies ``schema`` for sure (False: ask jsonschema)."""
    return _verdict(schema, document, schema) is True


def problems(schema: dict[str, Any], document: Any) -> list[SchemaProblem]:
    """Every violation of ``schema`` by ``document``, ordered by key."""
    if certainly_valid(schema, document):
        return []
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    found = []
    for err in sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path]):
        key = ".".join(str(p) for p in err.absolute_path)
        if not key and err.validator == "required":
            key = err.message.split("'")[1]  # "'x' is a required property"
        found.append(SchemaProblem(key or "(top level)", err.message, str(err.validator)))
    return found
