"""config.<file>.<param>[:index] parameters: parsing and merging into templates."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rl_relay.job.overrides import (
    Override,
    OverrideError,
    Step,
    collect_overrides,
    merge,
    parse_param_name,
)

TEMPLATES = {
    "rl_config": {
        "learning_rate": 0.0003,
        "n_steps": 128,
        "normalize_advantage": True,
        "policy": "MlpPolicy",
        "target_kl": None,
        "policy_kwargs": {"net_arch": [64, 64], "activation_fn": "tanh"},
        "load_path": "",
    },
    "env_config": {"id": "CartPole-v1", "kwargs": {}, "obs_bounds": [[0, 1], [2, 3]]},
}


def apply(**flat: object) -> dict:
    return merge(TEMPLATES, collect_overrides(flat))


# -- parsing ----------------------------------------------------------------------------


def test_nested_key_and_index_are_resolved_without_raw_key() -> None:
    merged = apply(**{"config.rl_config.policy_kwargs.net_arch:1": 256})
    assert merged["rl_config"]["policy_kwargs"]["net_arch"] == [64, 256]
    assert "net_arch:1" not in json.dumps(merged)


def test_multi_digit_index_the_original_read_as_one_digit() -> None:
    templates = {"c": {"xs": list(range(12))}}
    merged = merge(templates, collect_overrides({"config.c.xs:11": 99}))
    assert merged["c"]["xs"][11] == 99
    assert merged["c"]["xs"][1] == 1


def test_index_into_nested_lists() -> None:
    merged = apply(**{"config.env_config.obs_bounds:1:0": 7})
    assert merged["env_config"]["obs_bounds"] == [[0, 1], [7, 3]]


def test_nested_form_equals_flat_form() -> None:
    nested = {
        "config": {
            "config_templates": "./index.json",
            "rl_config": {"learning_rate": 0.002, "policy_kwargs": {"net_arch:1": 80}},
        },
        "learning_runs_per_job": 3,
        "working_dir": "/tmp/x",
    }
    flat = {
        "config.config_templates": "./index.json",
        "config.rl_config.learning_rate": 0.002,
        "config.rl_config.policy_kwargs.net_arch:1": 80,
    }
    assert collect_overrides(nested) == collect_overrides(flat)
    assert [o.param for o in collect_overrides(nested)] == [
        "config.rl_config.learning_rate",
        "config.rl_config.policy_kwargs.net_arch:1",
    ]


def test_same_entry_given_twice_with_different_values_is_an_error() -> None:
    with pytest.raises(OverrideError, match="given twice"):
        collect_overrides({"config": {"rl_config": {"n_steps": 1}}, "config.rl_config.n_steps": 2})


def test_int_may_replace_float_and_anything_may_replace_null() -> None:
    merged = apply(**{"config.rl_config.learning_rate": 1, "config.rl_config.target_kl": 0.02})
    assert merged["rl_config"]["learning_rate"] == 1
    assert merged["rl_config"]["target_kl"] == 0.02


def test_nothing_else_changes_and_input_is_untouched() -> None:
    before = copy.deepcopy(TEMPLATES)
    merged = apply(**{"config.rl_config.n_steps": 256})
    assert before == TEMPLATES
    expected = copy.deepcopy(TEMPLATES)
    expected["rl_config"]["n_steps"] = 256
    assert merged == expected


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("config.nope.learning_rate", 0.1, "no template named 'nope'.*rl_config"),
        ("config.rl_config.learning_rat", 0.1, "no key 'learning_rat'.*learning_rate"),
        ("config.rl_config.policy_kwargs.net_arch:2", 8, r"index 2 is out of range.*valid: 0\.\.1"),
        ("config.rl_config.n_steps", 0.5, "integer 128.*is number"),
        ("config.rl_config.n_steps", True, "integer 128.*is boolean"),
        ("config.rl_config.normalize_advantage", 1, "boolean True.*is integer"),
        ("config.rl_config.policy", 3, "string 'MlpPolicy'.*is integer"),
        ("config.rl_config.learning_rate:0", 1.0, "not a list"),
        ("config.rl_config.policy_kwargs.net_arch.x", 1, "not an object"),
    ],
)
def test_configuration_errors_name_parameter_and_template(param, value, message) -> None:
    with pytest.raises(OverrideError, match=message) as info:
        merge(TEMPLATES, collect_overrides({param: value}), {"rl_config": "/t/ppo.json"})
    assert param in str(info.value)


def test_all_errors_are_reported_together() -> None:
    with pytest.raises(OverrideError) as info:
        apply(**{"config.rl_config.a": 1, "config.rl_config.b": 2})
    assert "'a'" in str(info.value) and "'b'" in str(info.value)


@pytest.mark.parametrize(
    "name", ["config.rl_config", "config.rl_config.net:x", "config.rl_config.a[0]", "config.:1.a"]
)
def test_malformed_names_are_errors(name: str) -> None:
    with pytest.raises(OverrideError, match="parameter"):
        parse_param_name(name)


# -- properties ---------------------------------------------------------------------------

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=8)
indices = st.integers(min_value=0, max_value=10**6)


@st.composite
def paths(draw) -> tuple[Step, ...]:
    """A path starting with a key: keys and indices, indices only after a key."""
    steps = [Step(draw(keys))]
    for _ in range(draw(st.integers(0, 5))):
        steps.append(Step(draw(st.one_of(keys, indices))))
    return tuple(steps)


def render(template: str, path: tuple[Step, ...]) -> str:
    return "config." + template + "".join(str(s) for s in path)


@given(template=keys, path=paths())
def test_parse_inverts_render(template: str, path: tuple[Step, ...]) -> None:
    assert parse_param_name(render(template, path)) == (template, path)


json_leaves = st.one_of(
    st.integers(-100, 100),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
)
documents = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=4),
        st.dictionaries(keys, children, min_size=1, max_size=4),
    ),
    max_leaves=20,
).filter(lambda d: isinstance(d, dict))


def leaf_paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaf_paths(v, (*prefix, Step(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaf_paths(v, (*prefix, Step(i)))
    else:
        yield prefix, node


def same_type_value(old):
    if isinstance(old, bool):
        return not old
    if isinstance(old, int):
        return old + 1
    if isinstance(old, float):
        return old / 2 + 1.5
    if isinstance(old, str):
        return old + "!"
    return 42  # null takes anything


@given(doc=documents, data=st.data())
def test_merge_changes_exactly_the_addressed_leaf(doc, data) -> None:
    leaves = list(leaf_paths(doc))
    if not leaves:
        return
    path, old = data.draw(st.sampled_from(leaves))
    value = same_type_value(old)
    original = copy.deepcopy(doc)
    merged = merge({"t": doc}, [Override(render("t", path), "t", path, value)])["t"]
    assert doc == original
    changed = {p: v for p, v in leaf_paths(merged)}
    for p, v in leaf_paths(original):
        assert changed[p] == (value if p == path else v)


@given(doc=documents, data=st.data())
def test_parsed_name_of_a_leaf_applies_the_same_as_its_path(doc, data) -> None:
    leaves = list(leaf_paths(doc))
    if not leaves:
        return
    path, old = data.draw(st.sampled_from(leaves))
    if any(isinstance(s.key, str) and not s.key for s in path):
        return
    value = same_type_value(old)
    by_name = merge({"t": doc}, collect_overrides({render("t", path): value}))
    by_path = merge({"t": doc}, [Override("x", "t", path, value)])
    assert by_name == by_path
