"""rl_relay.container.binds: every bind given to the runtime means what the user wrote.

Apptainer cuts a --bind value into pieces with the regular expression ``[^,^:]+`` and
trims each piece; ``apptainer_pieces`` below does the same, so the properties check that
each option the wrapper writes is read back as exactly one bind with our source, destination
and options, and that every path the runtime would cut is refused instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rl_relay.container.binds import Bind, BindError, options, parse, same_path, visible

SAFE = st.text(
    alphabet=st.characters(blacklist_characters=",:^/\0\n", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
).filter(lambda s: s == s.strip() and s not in (".", ".."))
ANY = st.text(alphabet=st.sampled_from("ab ,:^~.-_é"), min_size=1, max_size=10).filter(
    lambda s: s not in (".", "..")
)


def absolute(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def apptainer_pieces(value: str) -> list[str]:
    """How Apptainer's bind parser cuts one --bind value (its tokenising expression)."""
    return [piece.strip() for piece in re.findall(r"[^,^:]+", value)]


@given(
    st.lists(SAFE, min_size=1, max_size=4), st.lists(SAFE, min_size=1, max_size=4), st.booleans()
)
def test_written_binds_are_read_back_as_one_bind(source, dest, read_only) -> None:
    bind = Bind(absolute(source), absolute(dest), read_only)
    value = bind.option()
    expected = [bind.source] if value == bind.source else [bind.source, bind.dest]
    assert apptainer_pieces(value) == expected + (["ro"] if read_only else [])
    assert parse(value, Path("/elsewhere")) == bind


@given(st.lists(ANY, min_size=1, max_size=4))
def test_paths_the_runtime_would_cut_are_refused(parts) -> None:
    path = absolute(parts)
    cut = any(c in path for c in ",:^") or path != path.strip()
    if cut:
        with pytest.raises(BindError, match="cannot be bound|white space"):
            same_path(path, "the path")
    else:
        assert apptainer_pieces(same_path(path, "the path").option()) == [path]


@given(st.lists(ANY, min_size=1, max_size=3), st.lists(ANY, min_size=1, max_size=3))
def test_parse_never_returns_a_bind_the_runtime_would_misread(source, dest) -> None:
    for spec in (absolute(source), f"{absolute(source)}:{absolute(dest)}"):
        try:
            bind = parse(spec, Path("/start"))
        except BindError:
            continue
        pieces = apptainer_pieces(bind.option())
        assert pieces[0] == bind.source and pieces[-1] in (bind.source, bind.dest)


def test_tilde_is_expanded_in_source_and_destination(monkeypatch) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    assert parse("~/data", Path("/start")) == Bind("/home/me/data", "/home/me/data")
    assert parse("~/data:/data:ro", Path("/start")) == Bind("/home/me/data", "/data", True)
    assert parse("/srv:~/srv", Path("/start")) == Bind("/srv", "/home/me/srv")


def test_relative_sources_are_relative_to_where_the_job_starts() -> None:
    assert parse("models/../data", Path("/start")) == Bind("/start/data", "/start/data")
    assert parse("data:/data:rw", Path("/start")) == Bind("/start/data", "/data")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/a,/b", "give each bind as its own list element"),
        ("/a:/b:/c:ro", "more than two ':'"),
        ("/a:/b:rx", "'rx' is not a bind option"),
        ("/a:b", "is not an absolute path"),
        ("", "is not a bind"),
        (3, "is not a bind"),
        ("/a b :/x", "white space"),
    ],
)
def test_bad_specs_say_what_to_do(spec, message) -> None:
    with pytest.raises(BindError, match=re.escape(message)):
        parse(spec, Path("/start"))


def test_visible_only_at_the_same_path() -> None:
    binds = [Bind("/tmp", "/tmp"), Bind("/data", "/mnt/data"), Bind("/srv", "/srv", True)]
    assert visible("/tmp/x/params.json", binds)
    assert visible("/srv/params.json", binds)  # read-only is still visible
    assert not visible("/data/params.json", binds)  # it is at /mnt/data/params.json inside
    assert not visible("/tmpx/params.json", binds)


def test_one_option_per_bind_duplicates_dropped() -> None:
    binds = [Bind("/tmp", "/tmp"), Bind("/w", "/w"), Bind("/tmp", "/tmp"), Bind("/d", "/e", True)]
    assert options(binds) == ["--bind", "/tmp", "--bind", "/w", "--bind", "/d:/e:ro"]
