"""Nested and flat dotted parameters read alike (``rl_relay.paramtree.lookup``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rl_relay.paramtree import discard, lookup, set_dotted

names = st.text("abcxyz", min_size=1, max_size=4)
paths = st.lists(names, min_size=1, max_size=4).map(".".join)


def prefix_free(keys: list[str]) -> bool:
    """No key is a parent of another (one cannot be a value and a mapping at once)."""
    return not any(b.startswith(a + ".") for a in keys for b in keys)


@given(
    values=st.dictionaries(paths, st.integers(), min_size=1, max_size=6).filter(
        lambda d: prefix_free(list(d))
    ),
    absent=names,
)
def test_nested_and_flat_forms_give_the_same_value_and_a_default_for_an_absent_leaf(
    values: dict[str, int], absent: str
) -> None:
    nested: dict = {}
    for key, value in values.items():
        set_dotted(nested, key, value)
    for key, value in values.items():
        assert lookup(nested, key) == lookup(values, key) == value
        sibling = f"{key.rpartition('.')[0]}.{absent}_".lstrip(".")  # no generated name has _
        assert lookup(nested, sibling, "default") == lookup(values, sibling, "default")
        assert lookup(nested, sibling, "default") == "default"


def test_an_absent_leaf_under_an_existing_parent_is_the_default_or_a_key_error() -> None:
    params = {"config": {"rl_common_config": {"total_timesteps": 10}}}
    assert lookup(params, "config.rl_common_config.eval_seed", None) is None
    assert lookup(params, "config.rl_common_config.total_timesteps") == 10
    with pytest.raises(KeyError):
        lookup(params, "config.rl_common_config.eval_seed")


@given(
    values=st.dictionaries(paths, st.integers(), min_size=1, max_size=6).filter(
        lambda d: prefix_free(list(d))
    ),
    data=st.data(),
)
def test_discard_removes_a_key_in_either_form_and_keeps_the_others(values, data) -> None:
    gone = data.draw(st.sampled_from(sorted(values)))
    nested: dict = {}
    for key, value in values.items():
        set_dotted(nested, key, value)
    for params in (nested, dict(values)):
        discard(params, gone)
        assert lookup(params, gone, "gone") == "gone"
        assert all(lookup(params, k) == v for k, v in values.items() if k != gone)
        discard(params, gone)  # absent: nothing happens
