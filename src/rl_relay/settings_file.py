"""An HPO's settings file as cluster_utils' ``hp_optimization`` reads it, and the CLI
arguments that name it (``rl-relay hpo`` and ``rl-relay check`` take the same)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rl_relay.paramtree import plain
from rl_relay.validation import load_schema

#: The section whose keys cluster_utils passes to its hp_optimization as arguments.
SECTION = "optimization_setting"


def known_keys(section: str | None = None) -> tuple[str, ...]:
    """The keys a settings file may hold (top level, or in ``section``): the one list is the
    ``properties`` of its JSON Schema, every key cluster_utils 3.0's hp_optimization reads
    and rl-relay's own."""
    schema = load_schema("hpo_settings")
    if section is not None:
        schema = schema["properties"][section]
    return tuple(schema["properties"])


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """``SETTINGS.json ['key=value' ...]``, as for ``python -m cluster_utils.hp_optimization``."""
    parser.add_argument("settings_file", type=Path, help="the hp_optimization settings JSON")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="the override strings hp_optimization takes, e.g."
        " 'optimization_procedure_name=\"ppo_run_2\"'",
    )


def add_local_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--local``: cluster_utils' local backend even where sbatch/condor_q are installed."""
    parser.add_argument("--local", action="store_true", help=help_text)


def load_settings(settings_file: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """The settings exactly as cluster_utils reads them (its loader, the same overrides),
    as plain JSON values (its tuples made lists, its enums their names)."""
    from cluster_utils.server.settings import read_main_script_params_from_args

    args = argparse.Namespace(settings_file=settings_file, settings=list(overrides))
    return plain(read_main_script_params_from_args(args))


def load_written_settings(settings_file: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """The settings as written: like ``load_settings`` but without smart_settings' dynamic
    values (cluster_utils' loader evaluates every string as a Python f-string)."""
    import os

    import smart_settings
    from cluster_utils.base.settings import add_cmd_line_params

    return plain(
        smart_settings.load(
            os.fspath(settings_file),
            dynamic=False,
            make_immutable=False,
            post_unpack_hooks=[lambda tree: add_cmd_line_params(tree, list(overrides))],
        )
    )


def job_file_problems(
    settings: Mapping[str, Any], engine: str, environ: Mapping[str, str]
) -> list[tuple[str, str]]:
    """``(key, what)`` for what a Slurm or HTCondor job's files cannot hold: the
    ``#SBATCH`` lines and HTCondor's submit description are read line by line, and they name
    the procedure and the jobs directory in ``CLUSTER_UTILS_CACHE_DIR``, so neither may hold
    a control character (``hpo.patches.job_script`` quotes everything else)."""
    if engine == "local":
        return []
    found = []
    for key, text in (
        ("optimization_procedure_name", str(settings.get("optimization_procedure_name", ""))),
        ("CLUSTER_UTILS_CACHE_DIR (environment)", environ.get("CLUSTER_UTILS_CACHE_DIR", "")),
    ):
        if not text.isprintable():
            found.append(
                (
                    key,
                    f"{text!r} holds a control character (a newline, a tab), which the {engine}"
                    " job files cannot hold; remove it",
                )
            )
    return found
