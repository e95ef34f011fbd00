"""Putting one of rl-relay's backend classes where cluster_utils picks one of its own.

``local_jobs`` and ``slurm_jobs`` both replace a class that cluster_utils'
``job_manager.get_cluster_type`` returns; each wraps it once (a marker per swap, so
installing twice is harmless and the two swaps compose).
"""

from __future__ import annotations

from typing import Any

from rl_relay.hpo.patches.wrap_once import wrap_once


def with_backend(original: Any, upstream: type, ours: type) -> Any:
    """``get_cluster_type`` giving ``ours`` where ``original`` gives ``upstream``."""

    def get_cluster_type(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        return ours if found is upstream else found

    return get_cluster_type


def install_backend(upstream: type, ours: type, marker: str) -> None:
    """Wrap ``job_manager.get_cluster_type`` with this swap, unless it already is."""
    from cluster_utils.server import job_manager

    wrap_once(
        job_manager, "get_cluster_type", lambda found: with_backend(found, upstream, ours), marker
    )
