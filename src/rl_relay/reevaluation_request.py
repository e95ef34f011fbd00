"""Which re-evaluation directory a request continues, and which is the latest (pure).

cluster_utils' grid search numbers its jobs 0, 1, ... and, told to load existing results,
takes a finished job with the same number as done, whatever that job ran: continuing a
directory with another request would report old runs as new ones (``--runs 5`` after
``--runs 3`` reported 3) or another configuration's (0 runs for a new best job). So a
re-evaluation directory is continued only by the same request: the same configurations in
the same order, the same runs, the same overrides. Any other request is a new
re-evaluation beside the old ones (``reevaluation/``, ``reevaluation-2/``, ...); ``--fresh``
moves the same request's directory aside to start it over. Each directory's
``request.json`` records its request and when it was last started: the latest started is
the one ``rl-relay report`` shows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rl_relay.override_strings import read_override
from rl_relay.paramtree import plain

#: ``request.json``'s format.
REQUEST_VERSION = 1


class OverrideError(ValueError):
    """A ``key=value`` string that is not one (the message says which)."""


def parse_overrides(texts: Sequence[str]) -> list[tuple[str, Any]]:
    """``key=value`` strings as (dotted key, Python literal that JSON can hold), in order."""
    parsed = []
    for text in texts:
        try:
            key, literal = read_override(text)  # read as cluster_utils reads them
        except ValueError as err:
            raise OverrideError(str(err)) from None
        try:
            json.dumps(literal, allow_nan=False)
        except (ValueError, TypeError):
            raise OverrideError(
                f"{text!r}: the value is a Python literal JSON cannot hold (a set, bytes,"
                " nan or inf); give a number, text, True/False/None, a list or a dict"
            ) from None
        parsed.append((key, literal))
    return parsed


def identity(
    configurations: Sequence[tuple[int, Mapping[str, Any]]],
    runs: int,
    overrides: Sequence[tuple[str, Any]],
) -> dict[str, Any]:
    """What decides a re-evaluation's jobs, as plain JSON: (search job, parameter values)
    per configuration in job order, the runs per configuration, the overrides in order."""
    data = {
        "configurations": [
            {"search_job": job, "values": dict(values)} for job, values in configurations
        ],
        "runs": runs,
        "overrides": [[key, value] for key, value in overrides],
    }
    return json.loads(json.dumps(plain(data), sort_keys=True))


def request_record(
    wanted: Mapping[str, Any],
    top: int,
    base_seed: int,
    now: str,
    previous: Mapping[str, Any] | None = None,
    runs_per_job: int | None = None,
) -> dict[str, Any]:
    """``request.json``: the request, the base seed its jobs' seeds come from and how many
    runs each job trains (both kept when it is continued: they number its jobs), when it was
    first and last started (``now``, ISO 8601 UTC)."""
    first = (previous or {}).get("first_started")
    return {
        "version": REQUEST_VERSION,
        "identity": dict(wanted),
        "top": top,
        "base_seed": base_seed,
        **({"runs_per_job": runs_per_job} if runs_per_job is not None else {}),
        "first_started": first if isinstance(first, str) else now,
        "last_started": now,
    }


@dataclass(frozen=True)
class Earlier:
    """A re-evaluation directory already in the results directory."""

    number: int
    name: str
    #: Its ``request.json``; None when it has none (made by an rl-relay before requests were
    #: recorded): such a directory is never continued.
    request: Mapping[str, Any] | None

    @property
    def identity(self) -> Any:
        return None if self.request is None else self.request.get("identity")

    @property
    def last_started(self) -> str:
        """ISO 8601 UTC time of its last start; "" when unknown (older than any known)."""
        started = (self.request or {}).get("last_started")
        return started if isinstance(started, str) else ""


@dataclass(frozen=True)
class Choice:
    """Where a request runs: directory ``number``, continuing ``same`` (the same request's
    directory) unless ``fresh``, which moves ``same`` aside first."""

    number: int
    same: Earlier | None
    fresh: bool

    @property
    def continues(self) -> bool:
        return self.same is not None and not self.fresh


def choose_directory(wanted: Mapping[str, Any], earlier: Sequence[Earlier], fresh: bool) -> Choice:
    """The same request's directory, else the next number after every directory present."""
    same = [e for e in earlier if e.identity == wanted]
    if same:
        target = max(same, key=lambda e: e.number)
        return Choice(target.number, target, fresh)
    return Choice(max((e.number for e in earlier), default=0) + 1, None, fresh)


def latest(earlier: Sequence[Earlier]) -> Earlier | None:
    """The one started last (unknown times count as oldest, then the higher number)."""
    return max(earlier, key=lambda e: (e.last_started, e.number), default=None)


def describe(request_identity: Any, seeds: str = "") -> str:
    """``2 configuration(s) (search job(s) 4, 9) x 5 runs{seeds}, overrides a=1``."""
    if not isinstance(request_identity, Mapping):
        return "a request that is not recorded"
    configurations = request_identity.get("configurations") or []
    jobs = ", ".join(str(c.get("search_job")) for c in configurations if isinstance(c, Mapping))
    text = (
        f"{len(configurations)} configuration(s) (search job(s) {jobs}) x"
        f" {request_identity.get('runs')} runs{seeds}"
    )
    overrides = request_identity.get("overrides") or []
    if overrides:
        text += ", overrides " + " ".join(
            f"{o[0]}={o[1]!r}" for o in overrides if isinstance(o, list) and len(o) == 2
        )
    return text


def announcement(
    choice: Choice,
    wanted: Mapping[str, Any],
    earlier: Sequence[Earlier],
    directory: str,
    base_seed: int,
    moved_to: str | None = None,
) -> str:
    """The one line that says what this start does: continue, start over, or a new one."""
    what = describe(wanted, f" on fresh seeds (base seed {base_seed})")
    if choice.continues:
        return (
            f"Continuing the re-evaluation in {directory}: {what}, the same request as before"
            " (finished jobs are not run again)."
        )
    if choice.same is not None:
        return (
            f"Re-evaluating from the start in {directory}: {what}; its old directory was moved"
            f" to {moved_to} (nothing deleted)."
        )
    text = f"Re-evaluating in {directory}: {what}"
    last = latest(earlier)
    if last is not None:
        names = ", ".join(f"{e.name}/" for e in earlier)
        text += (
            f"; a new re-evaluation beside {names}, which hold(s) other requests and stay as"
            f" they are (the latest, {last.name}/: {describe(last.identity)})"
        )
    if choice.fresh:
        text += "; --fresh: no re-evaluation of this request to move aside"
    return text + "."
