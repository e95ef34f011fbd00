"""``restarts.json``: a job's state on disk, written atomically, read back with checks.

Everything a restarted job needs is in this file, rewritten after every step (temporary
file, fsync, rename), so a job killed at any moment restarts from the last recorded step.
It also records the job's identity (what decides its result), so a working directory is
never continued by a different job; version 1 files (rl-relay 0.1) are upgraded.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rl_relay.atomic import atomic_write_json
from rl_relay.job.state import (
    FIXED_PLAN,
    Failure,
    Plan,
    RunState,
    State,
    StateError,
    new_state,
)
from rl_relay.layout import STATE_FILE
from rl_relay.validation import load_schema, problems

VERSION = 2


def state_to_dict(state: State) -> dict[str, Any]:
    return {
        "version": VERSION,
        "plan": asdict(state.plan),
        "identity": state.identity,
        "runs": [asdict(r) for r in state.runs],
    }


def _upgrade_v1(data: dict[str, Any], plan: Plan, identity: dict[str, Any]) -> dict[str, Any]:
    """A version 1 file (rl-relay 0.1): seeds were shared by all jobs; no identity.

    Its recorded seeds are kept; its plan gets this job's new fields, and its identity is
    taken to be this job's (version 1 recorded none to compare with).
    """
    upgraded = dict(data, version=VERSION, identity=identity)
    if isinstance(data.get("plan"), dict):
        upgraded["plan"] = {
            **data["plan"],
            "seed_scope": plan.seed_scope,
            "job_id": plan.job_id,
        }
    return upgraded


def state_from_dict(
    data: Any,
    source: str = STATE_FILE,
    plan: Plan | None = None,
    identity: dict[str, Any] | None = None,
) -> State:
    """Rebuild a State, with an error naming ``source`` for anything unexpected."""
    if isinstance(data, dict) and data.get("version") == 1 and plan is not None:
        data = _upgrade_v1(data, plan, identity or {})
    if isinstance(data, dict) and "version" in data and data["version"] != VERSION:
        raise StateError(
            f"{source} has version {data['version']!r}, but this rl-relay reads versions 1"
            f" and {VERSION}; finish this job with the rl-relay version that started it, or"
            " move the working directory away to start over"
        )
    found = problems(load_schema("restarts"), data)
    if found:
        where = found[0].key.replace(".", "/")
        raise StateError(
            f"{source} is corrupt at '{where}': {found[0].message}; move it away to start the"
            " job over (its run directories stay as they are)"
        )
    saved_plan = Plan(**data["plan"])
    runs = []
    for raw in data["runs"]:
        raw = dict(raw)
        raw["failures"] = [Failure(**f) for f in raw["failures"]]
        runs.append(RunState(**raw))
    if len(runs) != saved_plan.runs or [r.run for r in runs] != list(range(saved_plan.runs)):
        raise StateError(f"{source} is corrupt: its runs do not match runs={saved_plan.runs}")
    return State(plan=saved_plan, runs=runs, identity=data["identity"])


def identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two job identities, one line per setting, for the message."""
    lines = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for sub in sorted(set(old) | set(new)):
                if old.get(sub) != new.get(sub):
                    lines.append(f"{key} {sub}: was {old.get(sub)!r}, now {new.get(sub)!r}")
        else:
            lines.append(f"{key}: was {old!r}, now {new!r}")
    return lines


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StateError(
            f"{path} cannot be read ({err}); move it away to start the job over"
        ) from None


def read_state(path: Path) -> State:
    """The state saved in ``path`` as it stands, for readers that do not run the job (the
    benchmarks): nothing to check it against. StateError when it is missing or unusable."""
    return state_from_dict(_read(path), str(path))


def load_state(path: Path, plan: Plan, identity: dict[str, Any] | None = None) -> State:
    """The saved state of this job, or a new one if none was saved yet.

    Raises StateError if the file is unreadable or was written by another job: other
    settings, other configs, another learning command. ``max_attempts`` may change between
    starts (raise it to give a failed job more tries), and so may ``reward_column`` and
    ``reward_window`` while no reward has been read with the old ones (the fix for a wrong
    column).
    """
    identity = dict(identity or {})
    if not path.exists():
        return new_state(plan, identity)
    state = state_from_dict(_read(path), str(path), plan, identity)
    saved = state.plan
    for name, setting in FIXED_PLAN.items():
        if getattr(saved, name) != getattr(plan, name):
            raise StateError(
                f"{path} was written with {setting}={getattr(saved, name)!r}, but this job has"
                f" {setting}={getattr(plan, name)!r}; restore the setting to resume, or use a"
                " fresh working_dir (or delete the file) to start over"
            )
    if identity:
        comparable = dict(state.identity)
        if not state.rewards():  # no reward read yet: the way to read it may still change
            for how in ("reward_column", "reward_window"):
                comparable.pop(how, None)
                if how in identity:
                    comparable[how] = identity[how]
        differences = identity_differences(comparable, identity)
        if differences:
            raise StateError(
                f"{path} belongs to a different job; what differs:\n  "
                + "\n  ".join(differences)
                + "\nRestore these settings to continue that job, or use a fresh"
                " working_dir (or delete the file) to start this one over"
            )
        state.identity = identity
    state.plan = plan
    return state


def save_state(path: Path, state: State) -> None:
    """Write the state atomically (temp file, fsync, rename)."""
    atomic_write_json(path, state_to_dict(state))
