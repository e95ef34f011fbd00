"""The job script's arguments, read on the host with cluster_utils 3's grammar.

``rl-relay hpo`` starts a job script as ``SCRIPT --job-id=N --cluster-utils-server=IP:PORT
WORKING_DIR/job_parameters.json``, plain cluster_utils with ``--parameter-dict "{...}"`` in
place of the file; by hand it is ``SCRIPT params.json [key=value ...]``.
run_singularity must read the parameters (its ``singularity.*`` settings, the working
directory) without cluster_utils, which lives only in the image: standard library only.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_relay.override_strings import clip, read_overrides
from rl_relay.paramtree import set_dotted


class JobArgvError(ValueError):
    """The job's arguments cannot be read: a configuration error."""


@dataclass(frozen=True)
class JobArgs:
    """What cluster_utils gave the job script, parsed with cluster_utils' grammar."""

    params: dict[str, Any]
    #: Where the parameters came from, for error messages.
    source: str
    #: The script's arguments, to pass on unchanged.
    argv: tuple[str, ...]
    #: The working directory to use when the parameters name none.
    default_working_dir: Path
    #: The parameter file, when the job was given one (not ``--parameter-dict``).
    params_file: Path | None = None


def parse_job_args(argv: Sequence[str]) -> JobArgs:
    """``[--job-id N] [--cluster-utils-server IP:PORT] [--parameter-dict] P [key=value ...]``.

    P is a Python dict literal (with ``--parameter-dict``) or a JSON parameter file. The
    grammar is cluster_utils 3's (``cluster_utils.client``), re-implemented so that the
    host needs no cluster_utils.
    """
    args = list(argv)
    positional: list[str] = []
    is_dict = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--parameter-dict":
            is_dict = True
        elif arg in ("--job-id", "--cluster-utils-server"):
            i += 1
        elif arg.startswith(("--job-id=", "--cluster-utils-server=")):
            pass
        elif arg.startswith("--"):
            raise JobArgvError(f"unknown option {arg!r} in the job's arguments")
        else:
            positional.append(arg)
        i += 1
    if not positional:
        raise JobArgvError("no parameters given: expected a parameter file or --parameter-dict")
    first, overrides = positional[0], positional[1:]
    params_file = None
    if is_dict:
        source, default_wd = "the job's --parameter-dict", Path.cwd()
        try:
            params = ast.literal_eval(first)
        except Exception:  # noqa: BLE001 - whatever literal_eval raises (also deep nesting)
            raise JobArgvError(
                f"{source} {clip(first)!r} is not a Python dict literal, e.g. \"{{'seed': 1}}\""
            ) from None
    else:
        params_file = Path(first).absolute()
        try:
            params = json.loads(params_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise JobArgvError(f"the parameter file {first} cannot be read: {err}") from None
        source, default_wd = first, params_file.resolve().parent
    if not isinstance(params, dict):
        raise JobArgvError(f"{source} must be a dictionary of parameters")
    try:
        pairs = read_overrides(overrides)
    except ValueError as err:
        raise JobArgvError(f"the job's arguments: {err}") from None
    for key, value in pairs:
        set_dotted(params, key, value)
    return JobArgs(params, source, tuple(argv), default_wd, params_file)
