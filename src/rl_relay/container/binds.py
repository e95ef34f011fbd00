"""Bind specifications for the container runtime's ``--bind``: parsed, expanded, checked.

Apptainer and Singularity read ``--bind src[:dest[:opts]]`` with a parser that cuts the
value at every ``,`` (several binds in one option), ``:`` (source, destination, options)
and ``^`` (its tokenising regular expression ``[^,^:]`` excludes that character too), and
trims white space around each piece. Backslash escapes for ``,`` and ``:`` exist only in
some versions, and Singularity 3 already splits at commas while reading the option, so a
path containing any of these cannot be bound portably: it is refused here, before the
container starts, instead of being mounted somewhere else or not at all. Every bind is
passed as its own ``--bind`` option.

Standard library only: run on the host by ``run_singularity``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Characters Apptainer's bind parser splits at; a path containing one cannot be bound.
SEPARATORS = (",", ":", "^")
OPTIONS = ("ro", "rw")


class BindError(ValueError):
    """A bind the runtime cannot express; the message says what to do instead."""


@dataclass(frozen=True)
class Bind:
    """One bind: host ``source`` appears at ``dest`` inside the container."""

    source: str
    dest: str
    read_only: bool = False

    def option(self) -> str:
        """The value of one ``--bind`` option: ``src``, ``src:dest`` or ``src:dest:ro``."""
        if self.read_only:
            return f"{self.source}:{self.dest}:ro"
        return self.source if self.source == self.dest else f"{self.source}:{self.dest}"

    def shows(self, path: str | os.PathLike[str]) -> bool:
        """True when host ``path`` is visible at the same path inside through this bind."""
        return self.source == self.dest and _is_within(str(path), self.source)


def _is_within(path: str, directory: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(directory))


def check_path(path: str, what: str) -> None:
    """Raise BindError when ``path`` cannot be written in a ``--bind`` option."""
    bad = [c for c in SEPARATORS if c in path]
    if bad:
        shown = " and ".join(repr(c) for c in bad)
        raise BindError(
            f"{what} {path!r} contains {shown}, which Apptainer and Singularity split --bind"
            " values at, so it cannot be bound: rename it, or bind a parent directory whose"
            f" path has no {', '.join(repr(c) for c in SEPARATORS)}"
        )
    if path != path.strip():
        raise BindError(
            f"{what} {path!r} starts or ends with white space, which the runtime strips from"
            " --bind values: rename it"
        )
    if "\0" in path or "\n" in path:
        raise BindError(f"{what} {path!r} contains a NUL or newline character: rename it")


def same_path(path: str | os.PathLike[str], what: str, read_only: bool = False) -> Bind:
    """A bind showing host ``path`` (absolute) at the same path inside."""
    text = os.fspath(path)
    check_path(text, what)
    return Bind(text, text, read_only)


def parse(spec: object, cwd: Path) -> Bind:
    """One element of ``singularity.binds``: ``src``, ``src:dest`` or ``src:dest:ro|rw``.

    ``~`` is expanded on the host in the source and the destination (Apptainer mounts the
    home directory at the same path inside); a relative source is taken relative to
    ``cwd``, the directory the job starts in. The destination must be absolute.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise BindError(
            f"{spec!r} is not a bind: write 'source', 'source:dest' or 'source:dest:ro'"
        )
    if "," in spec:
        raise BindError(
            f"{spec!r} contains ',': give each bind as its own list element; a path containing"
            " ',' cannot be bound (bind a parent directory instead)"
        )
    parts = spec.split(":")
    read_only = False
    if len(parts) == 3:
        if parts[2] not in OPTIONS:
            raise BindError(
                f"{spec!r}: {parts[2]!r} is not a bind option (use 'ro' or 'rw'); a path"
                " containing ':' cannot be bound (bind a parent directory instead)"
            )
        read_only = parts[2] == "ro"
    elif len(parts) > 3:
        raise BindError(
            f"{spec!r} has more than two ':'; a path containing ':' cannot be bound (bind a"
            " parent directory instead)"
        )
    source = os.path.expanduser(parts[0])
    source = os.path.normpath(os.path.join(cwd, source))
    dest = os.path.expanduser(parts[1]) if len(parts) > 1 else source
    if not os.path.isabs(dest):
        raise BindError(
            f"{spec!r}: the destination {dest!r} is not an absolute path; a path containing"
            " ':' cannot be bound (bind a parent directory instead)"
        )
    check_path(source, "the source")
    check_path(dest, "the destination")
    return Bind(source, os.path.normpath(dest), read_only)


def visible(path: str | os.PathLike[str], binds: Iterable[Bind]) -> bool:
    """True when host ``path`` is seen at the same path inside through one of ``binds``."""
    return any(bind.shows(path) for bind in binds)


def options(binds: Sequence[Bind]) -> list[str]:
    """``--bind`` options, one per bind, first occurrence kept."""
    found: list[str] = []
    for value in dict.fromkeys(bind.option() for bind in binds):
        found += ["--bind", value]
    return found
