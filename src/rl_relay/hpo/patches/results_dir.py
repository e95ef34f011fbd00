"""Reuse an existing results directory without asking on the keyboard.

cluster_utils 3.0.0 defect: ``ensure_empty_dir(result_dir, defensive=True)`` asks "Delete
everything? (y/N)" on the keyboard when the results directory exists, even with
``no_user_interaction`` (an EOFError without a terminal). ``rl-relay hpo`` continues in an
existing directory, or ``--fresh`` has moved it aside before: never delete, never ask.
"""

from __future__ import annotations

from pathlib import Path


def ensure_dir(dir_name: str, defensive: bool = False) -> None:
    """``job_manager.ensure_empty_dir``: create the directory if needed, keep what it holds."""
    Path(dir_name).mkdir(parents=True, exist_ok=True)


def install() -> None:
    from cluster_utils.server import job_manager

    job_manager.ensure_empty_dir = ensure_dir
