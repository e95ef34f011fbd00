"""What happens at an iteration boundary: the seam between the job loop and the searches
that act between two training iterations of a run.

A job's runs are chains of training iterations, and every iteration ends with a checkpoint
and (in a cluster job) an exit for resume. That makes each boundary a decision point: PBT
(``rl_relay.pbt.boundary``) decides there with which hyperparameters and from whose
checkpoint the next iteration starts, or waits for the rest of its population; early
stopping decides whether a poor job goes on at all. The job loop knows only this protocol:
it asks ``before_step`` before every step, ``finish`` after the last one and ``give_up``
when a run failed for good, and saves the state it gets back before it acts on it, so a job
killed after a decision acts on the same decision when it starts again. A boundary is built
from the job's checked parameters and knows what it needs of the job from then on.

Implementations are found by the top-level job parameter that turns them on
(``BOUNDARIES``), as cluster_utils' optimisers are by ``optimizer_str``: the job package
does not import the searches, the searches import the job package.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from rl_relay.paramtree import top_level_names

if TYPE_CHECKING:
    from rl_relay.job.overrides import Override
    from rl_relay.job.params import JobParams
    from rl_relay.job.state import State, Step


class Action(enum.Enum):
    """What the loop does with the step it asked about."""

    #: run it (the state may carry a decided start: hyperparameters, checkpoint)
    RUN = "run"
    #: not yet decidable: exit for resume without holding a slot (by hand: ask again)
    WAIT = "wait"
    #: the run ends here (the state records why and its score)
    STOPPED = "stopped"


class Boundary(Protocol):
    """Decisions at a job's iteration boundaries (see the module docstring)."""

    #: Whether the job's runs must advance together (``Plan.interleaved``), so that every
    #: run has reached a boundary before it is decided.
    interleaved: bool
    #: Whether older checkpoints may be loaded again (PBT's exploit copies them), so that
    #: ``keep_checkpoints: "latest"`` must not remove them (``rl_relay.job.retention``).
    keeps_checkpoints: bool

    def before_step(self, state: State, step: Step) -> tuple[State, Action]:
        """Decide how ``step`` starts, if that is still open: the state to save and the action."""
        ...

    def finish(self, state: State) -> None:
        """Every run is done: record the end."""
        ...

    def give_up(self, state: State, reason: str) -> None:
        """A run failed for good: whoever waits for this job must stop waiting."""
        ...


#: The top-level job parameter that turns a boundary on -> "module:function" giving
#: ``(boundary or None, problem or None)`` from the job's parameters, checked parameters
#: and overrides.
BOUNDARIES = {
    "pbt": "rl_relay.pbt.boundary:from_params",
    "early_stopping": "rl_relay.stopping.boundary:from_params",
}


def boundary_for(
    params: Mapping[str, Any], job_params: JobParams, overrides: Sequence[Override]
) -> tuple[Boundary | None, str | None]:
    """The boundary the parameters ask for (None without one), or why they cannot have it."""
    asked = [section for section in BOUNDARIES if section in top_level_names(params)]
    if len(asked) > 1:
        return None, (
            f"parameters {' and '.join(map(repr, asked))} both decide at iteration boundaries;"
            " a job takes one of them"
        )
    if not asked:
        return None, None
    module_name, _, function = BOUNDARIES[asked[0]].partition(":")
    make = getattr(importlib.import_module(module_name), function)
    return make(params, job_params, overrides)
