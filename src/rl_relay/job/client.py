"""The cluster_utils calls a job makes, behind one small protocol.

The job loop talks to a ``Server``; ``ClusterUtilsServer`` is cluster_utils' client API,
``exit_for_resume`` included, whose ``SystemExit`` stays inside this adapter (the loop
returns exit code 3 itself); tests use a fake with the same four methods.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol


class Server(Protocol):
    """What a job tells cluster_utils; no-ops when the job was started by hand."""

    #: True when the job was started by cluster_utils (it exits for resume after each step).
    connected: bool

    def announce_fraction_finished(self, fraction: float) -> None: ...
    def exit_for_resume(self) -> None: ...
    def finalize(self, metrics: dict[str, float]) -> None: ...
    def report_error(self, message: str) -> None: ...


class ClusterUtilsServer:
    """cluster_utils' client calls (``finalize`` also writes metrics.csv when by hand)."""

    def __init__(self, params: Any) -> None:
        from cluster_utils.client import submission_state

        self._params = params
        self.connected = bool(submission_state.connection_active)

    def announce_fraction_finished(self, fraction: float) -> None:
        from cluster_utils.client import announce_fraction_finished

        announce_fraction_finished(fraction)

    def exit_for_resume(self) -> None:
        """Tell the server to start this job again; cluster_utils' own call also exits."""
        from cluster_utils.client import exit_for_resume

        with contextlib.suppress(SystemExit):
            exit_for_resume()

    def finalize(self, metrics: dict[str, float]) -> None:
        from cluster_utils.client import finalize_job

        finalize_job(metrics, self._params)

    def report_error(self, message: str) -> None:
        if not self.connected:
            return
        from cluster_utils.base.communication import MessageTypes
        from cluster_utils.client import server_communication, submission_state

        server_communication.send_message(
            MessageTypes.ERROR_ENCOUNTERED, message=(submission_state.job_id, [message])
        )
