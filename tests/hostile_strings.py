"""Strings a shell would change or run, for the tests that values and paths reach a job exactly.

``CATALOGUE``: every kind of text bash interprets (command substitution, expansion, quotes of
both kinds, backslashes, newlines, globbing, redirection, comments, options), plus what
cluster_utils' and rl-relay's own argument parsing might trip on (leading dashes, ``=``,
``:``) and text outside ASCII. The ones that would run a command touch ``CANARY``. The
hypothesis strategies mix these fragments with arbitrary text.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import strategies as st

#: Created only if a shell ran a command found in a value.
CANARY = Path(tempfile.gettempdir()) / "rl-relay-shell-canary"

CATALOGUE = [
    f"`touch {CANARY}`",
    f"$(touch {CANARY})",
    f"x; touch {CANARY}",
    f"x && touch {CANARY} #",
    f"'; touch {CANARY}; '",
    f'"; touch {CANARY}; "',
    "$HOME",
    "${HOME}",
    "$0 $$ $? $@ $1",
    "a\\nb",
    "C:\\new\\table",
    "\\",
    "a\\\\b",
    'a"b',
    "it's",
    "'",
    '"',
    "\"'\"'",
    "a\nb",
    "tab\there\r",
    "  two  spaces  ",
    "",
    " ",
    "-x",
    "--job-id=9",
    "--parameter-dict",
    "a=b",
    "key=value:1",
    "a:b,c",
    "http://host:1/p?q=1&r=2",
    "ünïcödé ✓ 名前 🎲",
    "!! !$",
    "~ ~root",
    "* ? [a-z]",
    "{1+1} {a,b} {}",
    "#not a comment",
    "> /dev/null < /dev/null | cat",
    "%s %d %j %%",
    "\x1b[31mred\x1b[0m",
]

#: Any text a settings value can hold (no lone surrogates: they cannot be written as UTF-8;
#: no NUL: it cannot be in a command's arguments).
_any_char = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")

hostile_text = st.lists(
    st.one_of(st.sampled_from(CATALOGUE), st.text(_any_char, max_size=6)), max_size=4
).map("".join)

#: A file name (path component) with the same characters: no "/", not "." or "..", short.
hostile_name = (
    st.lists(st.one_of(st.sampled_from(CATALOGUE), st.text(_any_char, max_size=4)), max_size=3)
    .map(lambda parts: "".join(parts).replace("/", "_")[:40])
    .filter(lambda name: name not in ("", ".", "..") and len(name.encode()) < 120)
)
