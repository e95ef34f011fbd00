"""The quick schema check: it vouches only for documents jsonschema accepts.

``validation.problems`` skips importing jsonschema when ``certainly_valid`` vouches for a
document (a job and a learner process pay that import once per chained iteration
otherwise). These tests mutate valid documents of every schema, key by key, and check the
promise on each mutant; and that the documents a job and a learner read every iteration
are vouched for, so the fast path is taken where it matters.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from rl_relay.job.state import Plan, new_state
from rl_relay.job.state_file import state_to_dict
from rl_relay.learner.config import schema as learner_schema
from rl_relay.validation import certainly_valid, load_schema, problems

REPO = Path(__file__).resolve().parent.parent
REPLACEMENTS: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 0.5, -0.5, 2**40, "", "x", "auto", [], [1], ["a"], {},
    {"a": 1}, [1, "step"], [0, []],
]  # fmt: skip


def _config(name: str, **extra: Any) -> dict[str, Any]:
    return {**json.loads((REPO / "config_templates" / name).read_text()), **extra}


PATHS = {"load_path": "", "save_path": "/w/model", "log_path": "/w/logs"}
COMMON = {"training_iteration": 1, "training_iterations": 3, "seed": 5}
JOB_PARAMS = {
    "config.config_templates": "./hp_optim/config_templates_ppo.json",
    "working_dir": "/tmp/w",
    "learning_runs_per_job": 2,
    "max_attempts": 3,
    "training_iterations": 4,
    "seed": 0,
    "seed_scope": "job",
    "learning_command": ["python3", "learner.py"],
    "learning_timeout": 30.5,
    "reward_column": "eval/mean_reward",
    "reward_window": 2,
    "id": 7,
    "replay_schedule": [[0, []], [2, [["config.rl_config.learning_rate", 0.1]]]],
}


def _restarts() -> dict[str, Any]:
    state = new_state(Plan(2, 3, 2, 0, "job", 4), {"configs": {"rl_config": "abc"}})
    return state_to_dict(state)


def _hpo_settings(name: str) -> dict[str, Any]:
    return json.loads((REPO / "hp_optim" / name).read_text())


CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("rl_config ppo", learner_schema("rl_config"), _config("ppo_default.json", **PATHS)),
    ("rl_config sac", learner_schema("rl_config"), _config("sac_default.json", **PATHS)),
    (
        "rl_common_config",
        learner_schema("rl_common_config"),
        _config("rl_common_default.json", **COMMON),
    ),
    ("env_config cartpole", learner_schema("env_config"), _config("env_cartpole.json")),
    ("env_config pendulum", learner_schema("env_config"), _config("env_pendulum.json")),
    ("job_params", load_schema("job_params"), JOB_PARAMS),
    ("restarts", load_schema("restarts"), _restarts()),
    (
        "pbt_settings",
        load_schema("pbt_settings"),
        _hpo_settings("hp_optim_ppo_pbt.json")["optimizer_settings"],
    ),
    ("hpo_settings ppo", load_schema("hpo_settings"), _hpo_settings("hp_optim_ppo.json")),
    ("hpo_settings asha", load_schema("hpo_settings"), _hpo_settings("hp_optim_ppo_asha.json")),
]
#: What a job and a learner read at every chained iteration: the fast path must hold.
HOT = {
    "rl_config ppo",
    "rl_config sac",
    "rl_common_config",
    "env_config cartpole",
    "env_config pendulum",
    "job_params",
    "restarts",
}


def _paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _delete(doc: Any, path: tuple) -> Any:
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return doc


def mutants(doc: Any) -> Iterator[Any]:
    """The document with every value replaced by each of ``REPLACEMENTS``, every key and
    item removed, and an unknown key added to every object."""
    for path in _paths(doc):
        for value in REPLACEMENTS:
            yield _set(doc, path, value)
        if path:
            yield _delete(doc, path)
        node = doc
        for key in path:
            node = node[key]
        if isinstance(node, dict):
            yield _set(doc, path, {**node, "no_such_key": 1})


@pytest.mark.parametrize(("name", "schema", "doc"), CASES, ids=[c[0] for c in CASES])
def test_the_quick_check_vouches_only_for_what_jsonschema_accepts(name, schema, doc) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(doc)), "the seed document itself must be valid"
    if name in HOT:
        assert certainly_valid(schema, doc)
    vouched = valid = 0
    for mutant in mutants(doc):
        errors = list(validator.iter_errors(mutant))
        valid += not errors
        if certainly_valid(schema, mutant):
            vouched += 1
            assert not errors, (mutant, errors[0].message)
        assert (problems(schema, mutant) == []) == (not errors)
    if name in HOT:
        assert vouched >= valid // 2, "the quick check falls back to jsonschema too often"


def test_a_job_and_a_learner_do_not_import_jsonschema_for_valid_documents() -> None:
    code = (
        "import sys\n"
        "from rl_relay.job.params import JobParams\n"
        "from rl_relay.learner.config import validate_configs\n"
        f"JobParams.from_params({JOB_PARAMS!r}, 'params')\n"
        f"configs = {{'rl_config': {CASES[0][2]!r}, 'rl_common_config': {CASES[2][2]!r},"
        f" 'env_config': {CASES[3][2]!r}}}\n"
        "assert validate_configs(configs, {}) == []\n"
        "print('jsonschema' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_problems_still_name_every_violation() -> None:
    schema = learner_schema("rl_common_config")
    doc = _config("rl_common_default.json", **COMMON, total_timesteps=0, verbose=5)
    found = {(p.key, p.rule) for p in problems(schema, doc)}
    assert found == {("total_timesteps", "minimum"), ("verbose", "maximum")}
