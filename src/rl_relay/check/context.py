"""What every check looks at: the settings as cluster_utils reads them, and the engine."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_relay.layout import results_root


@dataclass(frozen=True)
class Problem:
    """One thing to fix: where (file and key), what is wrong, what to do.

    A warning is printed but refuses nothing: it is about the machines the jobs run on,
    which this one (a login node) may not be.
    """

    where: str
    what: str
    warning: bool = False


@dataclass
class Context:
    """What every check may look at."""

    settings_file: Path
    #: The settings as plain JSON values (cluster_utils' tuples made lists).
    settings: Mapping[str, Any]
    engine: str
    interactive: bool
    cwd: Path
    #: Top-level settings keys whose shape is wrong: checks that read them are skipped.
    broken: set[str] = field(default_factory=set)
    #: Filled by the job-parameter check, used by later ones (None if it failed).
    job: Any = None
    #: Checking for plain ``python -m cluster_utils.hp_optimization`` rather than
    #: ``rl-relay hpo`` (which continues existing results, knows rl-relay's optimisers and
    #: quotes what it puts into job scripts).
    plain_cluster_utils: bool = False
    #: The settings as written: without smart_settings' dynamic values (None if unreadable).
    written: Mapping[str, Any] | None = None

    def at(self, key: str) -> str:
        return f"{self.settings_file}: {key}"

    def section(self, key: str) -> Mapping[str, Any]:
        value = self.settings.get(key, {})
        return value if isinstance(value, Mapping) else {}

    @property
    def optimized_params(self) -> list[tuple[int, dict[str, Any]]]:
        """``(index, item)`` of every well-formed dimension of the search space."""
        items = self.settings.get("optimized_params", [])
        if not isinstance(items, list):
            return []
        return [
            (i, item)
            for i, item in enumerate(items)
            if isinstance(item, dict) and f"optimized_params[{i}]" not in self.broken
        ]


def detect_engine(local: bool = False) -> str:
    """The backend cluster_utils will pick: it looks at the PATH in this order."""
    if local:  # rl-relay hpo --local
        return "local"
    if shutil.which("condor_q"):
        return "htcondor"
    if shutil.which("sbatch"):
        return "slurm"
    return "local"


def results_path(settings: Mapping[str, Any]) -> Path | None:
    """Where cluster_utils writes the results (it joins results_dir onto the home directory,
    so an absolute results_dir wins)."""
    if "results_dir" not in settings or "optimization_procedure_name" not in settings:
        return None
    return results_root(settings)
