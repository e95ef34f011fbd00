"""An optimiser's state on disk, atomically and soon after every result, never O(results²).

cluster_utils 3.0 writes ``status.pickle`` (and ``all_data.csv``, ``reduced_data.csv``)
only after each optimiser iteration, i.e. every ``n_jobs_per_iteration`` results, and not
atomically: one killed while writing leaves a truncated pickle that cannot be continued.
``Continuable`` is mixed into every optimiser ``rl-relay hpo`` runs (cluster_utils' own ones
included) and rewrites the three files atomically (``rl_relay.atomic``).

Each save rewrites every result, so saving after every result costs O(results) per
result, O(results²) over a search (at 1,000 jobs a fifth of a second per result, most of
the driver's time). A result is not lost for not being saved yet: its job's working
directory holds it (``metrics.csv``, written before the driver hears of it) and a
restarted driver tells it again (``hpo.patches.continuing.recover_results``). So a result
is saved once saving has had its share: after a save that took s seconds the next comes
no sooner than s / ``save_share`` seconds later (saving takes at most 5% of the driver's
time, and a result waits a few seconds at most); small searches save after every result
as before. Every optimiser iteration still ends with a save when cluster_utils removes the
working directories there (``remove_working_dirs``, its default), before they go, and the
driver saves whatever is left when it ends (``flush``).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from rl_relay.atomic import atomic_path
from rl_relay.layout import ResultsPaths

logger = logging.getLogger(__name__)


class ContinueError(ValueError):
    """A results directory's saved state cannot be continued with these settings."""


def save_state(optimizer: Any, directory: str | os.PathLike[str]) -> None:
    """Write ``all_data.csv``, ``reduced_data.csv`` and ``status.pickle``, each atomically.

    The pickle is written last: a loader finds it together with CSVs at least as new.
    """
    paths = ResultsPaths(Path(directory))
    write_result_file(paths.all_data, optimizer.full_df.to_csv().encode())
    write_result_file(paths.reduced_data, optimizer.minimal_df.to_csv().encode())
    write_result_file(paths.status_pickle, pickle.dumps(optimizer))


def write_result_file(target: Path, data: bytes) -> None:
    """Atomically, readable like the files cluster_utils writes (umask, not 0600)."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
        tmp.chmod(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_state(
    file: str | os.PathLike[str],
    expected: type,
    metric_to_optimize: str,
    minimize: bool,
) -> Any | None:
    """The optimiser pickled in ``file``, checked against the settings; None if absent."""
    file = Path(file)
    if not file.exists():
        return None
    try:
        with open(file, "rb") as f:
            optimizer = _RenamingUnpickler(f).load()
    except Exception as err:  # a pickle of another version or a damaged file  # noqa: BLE001
        raise ContinueError(
            f"{file} cannot be read ({type(err).__name__}: {err}); start over with --fresh"
        ) from err
    if not isinstance(optimizer, expected):
        raise ContinueError(
            f"{file} holds the state of a {type(optimizer).__name__} optimiser, the settings"
            f" ask for {expected.__name__}: continue with the optimizer_str it was started"
            " with, or start over with --fresh or another optimization_procedure_name"
        )
    saved = (optimizer.metric_to_optimize, bool(optimizer.minimize))
    if saved != (metric_to_optimize, bool(minimize)):
        raise ContinueError(
            f"{file} optimises {saved[0]} (minimize={saved[1]}), the settings"
            f" {metric_to_optimize} (minimize={minimize}): continue with the same"
            " optimization_setting, or start over with --fresh"
        )
    return optimizer


def load_to_continue(
    file: str | os.PathLike[str],
    expected: type,
    optimized_params: Sequence[Any],
    metric_to_optimize: str,
    minimize: bool,
    report_hooks: Any,
    same_params: bool = True,
) -> Any | None:
    """What every optimiser's ``try_load_from_pickle`` starts with: the saved optimiser,
    checked against the settings (class, metric and, with ``same_params``, the parameter
    names), with this driver's ``optimized_params`` and ``report_hooks``; None when nothing
    was saved."""
    optimizer = load_state(file, expected, metric_to_optimize, minimize)
    if optimizer is None:
        return None
    if same_params:
        check_same_params(optimizer, [d.param_name for d in optimized_params], file)
    optimizer.optimized_params = optimized_params
    optimizer.report_hooks = report_hooks or []
    return optimizer


def continuable(optimizer: Any, cls: type) -> Any:
    """A state saved by plain cluster_utils becomes the continuable subclass ``cls``."""
    if isinstance(optimizer, cls):
        return optimizer
    converted = cls.__new__(cls)
    converted.__dict__.update(optimizer.__dict__)
    converted.n_told = len(optimizer.full_df)
    return converted


#: Modules whose classes states saved before the package layout of 0.1 name: a results
#: directory started with the old layout continues with the new one.
MOVED_MODULES = {
    "rl_relay.cluster_utils_patches": {
        "ContinuableMetaoptimizer": "rl_relay.hpo.patches.cem_continue",
        "ContinuableNGOptimizer": "rl_relay.hpo.patches.nevergrad_continue",
    },
}


class _RenamingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, {}).get(name, module), name)


def check_same_params(optimizer: Any, names: list[str], file: str | os.PathLike[str]) -> None:
    """A saved search over other parameters cannot go on: say so instead of failing later."""
    if list(optimizer.params) != list(names):
        raise ContinueError(
            f"{file} searches {list(optimizer.params)}, the settings {names}: continue with"
            " the same optimized_params, or start over with --fresh"
        )


#: Attributes of a driver's run, not of the search: never pickled.
_RUNTIME = ("state_dir", "save_every_iteration", "_changed", "_next_save")


class Continuable:
    """Mixin for cluster_utils ``Optimizer`` subclasses: state saved soon after every result.

    ``state_dir`` is set by the driver (``rl-relay hpo``) and deliberately not pickled: a
    moved results directory must not make a continued optimiser write into the old place.
    ``n_asked``/``n_told`` count the configurations asked and results told over the whole
    HPO, across restarts of the driver.
    """

    state_dir: str | None = None
    n_asked: int = 0
    n_told: int = 0
    #: Saving may take at most this share of the time (see the module's doc).
    save_share: ClassVar[float] = 0.05
    #: Save at every optimiser iteration's end whatever the share (set by the driver: True
    #: when cluster_utils removes the working directories there).
    save_every_iteration: bool = True
    #: Whether results (or an iteration's end) came since the last save, and when
    #: (``time.monotonic``) the next save may be.
    _changed: bool = False
    _next_save: float = 0.0
    #: The class a saved state must be an instance of (None: this class; cluster_utils'
    #: own class for its optimisers, whose states plain cluster_utils may have saved).
    saved_class: ClassVar[type | None] = None

    @classmethod
    def try_load_from_pickle(
        cls,
        file: str,
        optimized_params: Sequence[Any],
        metric_to_optimize: str,
        minimize: bool,
        report_hooks: Any,
        **optimizer_settings: Any,
    ) -> Any | None:
        """cluster_utils' loader of a continued HPO: the saved optimiser, checked against the
        settings and converted to this class; None when nothing was saved."""
        loaded = load_to_continue(
            file,
            cls.saved_class or cls,
            optimized_params,
            metric_to_optimize,
            minimize,
            report_hooks,
        )
        if loaded is None:
            return None
        optimizer = continuable(loaded, cls)
        optimizer.continue_with(file, optimized_params, dict(optimizer_settings))
        return optimizer

    def continue_with(
        self, file: str, optimized_params: Sequence[Any], settings: dict[str, Any]
    ) -> None:
        """Check and take what the settings say now (subclasses; ContinueError if it cannot
        go on with them)."""

    def ask(self) -> Any:
        settings = super().ask()  # type: ignore[misc]
        self.n_asked += 1
        return settings

    def tell(self, jobs: Any) -> None:
        """Learn the results (cluster_utils' loop calls this every 0.2 s, often with none),
        and save when results wait and saving has had its share of the time."""
        jobs = list(jobs) if isinstance(jobs, list | tuple) else [jobs]
        with_results = [job for job in jobs if job.get_results() is not None]
        super().tell(jobs)  # type: ignore[misc]
        if with_results:
            self.n_told += len(with_results)
            self._changed = True
        self._save_if_due()

    def _save_if_due(self) -> None:
        if self._changed and self.state_dir is not None and time.monotonic() >= self._next_save:
            self.save_now()

    def save_now(self) -> None:
        """Write the state into ``state_dir`` at once."""
        assert self.state_dir is not None
        start = time.monotonic()
        self.write_state(self.state_dir)
        end = time.monotonic()
        self._changed = False
        self._next_save = end + (end - start) / self.save_share

    def flush(self) -> None:
        """Save what changed since the last save (the driver ends)."""
        if self._changed and self.state_dir is not None:
            self.save_now()

    def save_data_and_self(self, directory: str) -> None:
        """cluster_utils' save, at the end of every optimiser iteration of its loop."""
        if self.state_dir is None or Path(directory) != Path(self.state_dir):
            self.write_state(directory)  # not rl-relay's driver: as cluster_utils does
            return
        self._changed = True  # the iteration count at least
        if self.save_every_iteration:
            self.save_now()
        else:
            self._save_if_due()

    def write_state(self, directory: str) -> None:
        """The files of the state (subclasses add theirs)."""
        save_state(self, directory)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in _RUNTIME:
            state.pop(name, None)
        return state


def finite(value: Any) -> bool:
    """A metric the searches can rank (a job may report NaN or inf)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
