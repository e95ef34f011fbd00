"""The methods the benchmark compares: the compact syntax users type, and readable names.

A method is typed (``--methods``) and saved (``searches/<method>-r<repeat>.json``) in a
compact syntax, ``base[@R][+KxM][~ce][~free][~late][~fit][~STOPPING][%P]`` with STOPPING
one of ``STOPPING_FLAGS`` (e.g. ``tpe@2~ce~late``, ``cem~asha%80``); every table and plot
shows its readable name instead, derived by a rule from the parts
(``TPE, 2 runs per job, shared eval episodes, late-window score``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

#: rl_zoo3's searches -> their ``--pruner``
ZOO_METHODS = {"zoo": "none", "zoo-median": "median", "zoo-native": "none"}
#: rl-relay's searches -> cluster_utils' ``optimizer_str``
RL_RELAY_METHODS = {
    "cem": "cem_metaoptimizer",
    "random": "nevergrad",
    "twopointsde": "nevergrad",
    "genetic": "genetic",
    "dgd": "dgd",
    "tpe": "tpe",
    "pbt": "pbt",
}
#: Methods that exist but are not compared by this benchmark, and why (a row says so).
NOT_COMPARED = {
    "pbt": "a PBT result is a hyperparameter schedule for one longer training (a population"
    " of chained iterations), not a configuration to re-train at the trials' budget; its"
    " honest score is `rl-relay reevaluate` of the PBT run (docs/pbt.md)",
}
#: the readable name of each base method
BASE_NAMES = {
    "zoo": "rl-zoo3 TPE",
    "zoo-median": "rl-zoo3 TPE + median pruner",
    "zoo-native": "rl-zoo3 TPE on its own space",
    "cem": "CEM",
    "random": "random search (nevergrad)",
    "twopointsde": "differential evolution (nevergrad)",
    "genetic": "genetic",
    "dgd": "grid descent (DGD)",
    "tpe": "TPE",
    "pbt": "PBT",
}
#: the ``~`` suffixes of a method name, each with its readable name (the error message
#: lists them; the Method docstring says what each does)
METHOD_FLAGS = {
    "ce": "shared eval episodes",
    "free": "ask when a worker is free",
    "late": "late-window score",
    "fit": "rounds within the budget",
}
#: the ``~`` suffixes that turn on early stopping (at most one), with their readable names
STOPPING_FLAGS = {
    "asha": "ASHA early stopping",
    "ashahalf": "ASHA early stopping from half the training",
    "median": "median-rule early stopping",
    "pruned": "Optuna's median pruner",
    "prunedhalf": "Optuna's median pruner from half the training",
}
#: the stopping flags that use Optuna's pruners, which need tpe's study
OPTUNA_STOPPING = ("pruned", "prunedhalf")


@dataclass(frozen=True)
class Method:
    """A method name taken apart: ``base[@R][+KxM][~ce][~free][~late]``.

    ``@R``: R learning runs per job (rl-relay). ``+KxM``: rl-relay's own workflow against
    luck, inside the same budget: the search gets ``K x M`` trainings fewer, then
    ``rl-relay reevaluate --top K --runs M`` re-runs its K best configurations on fresh seeds
    and the one with the best re-evaluated mean is the choice. ``~ce``: common evaluation
    episodes, every job of the search evaluated on the same start states. ``~free``: the
    search asks for a configuration only when a worker is free, as the zoo's threads do
    (``n_jobs_per_iteration`` = workers), not up to a quarter of the budget ahead of results.
    ``~late``: a run's score is the mean of its last 3 of 5 evaluations spread over the
    training (at 60, 80 and 100% of it), not the final one alone: a configuration that
    learned early and stayed good beats one that got a lucky last snapshot.
    ``~asha``, ``~ashahalf``, ``~median``, ``~pruned``, ``~prunedhalf`` (``half``: stopping no
    job before half its training): each training is split into chained iterations whose
    boundaries are rungs where poor jobs stop (docs/early_stopping.md); the search runs more
    jobs until it has used ``%P`` percent of the zoo's nominal budget (with ``+KxM``, less the
    re-runs' trainings, which that budget includes). With them ``~late``
    scores a run (and each rung) by the mean of its last 2 iteration-end evaluations, read
    back across its iterations. ``~fit`` (with early stopping): every round of the search
    runs only as many jobs as the budget left holds at their full cost, so the search stays
    within ``%P`` even when nothing is stopped; without it the first round is the zoo's trial
    count and later rounds are sized by the mean cost per job so far.
    """

    base: str
    runs_per_job: int | None = None
    top: int = 0
    reruns: int = 0
    shared_episodes: bool = False  # ~ce
    ask_when_free: bool = False  # ~free
    late_window: bool = False  # ~late
    fit_rounds: bool = False  # ~fit
    #: ``~asha``, ``~ashahalf``, ``~median``, ``~pruned`` or ``~prunedhalf`` (the last two
    #: tpe only): early stopping at the boundaries of chained iterations; the search then
    #: runs jobs until it has used ``share`` percent of the zoo's nominal env steps (``%P``,
    #: 100 by default)
    stopping: str = ""
    share: int = 100

    @property
    def picks(self) -> bool:
        return self.top > 0

    @property
    def pick_trainings(self) -> int:
        return self.top * self.reruns

    def search_share(self, trials: int, unit: int = 1) -> int:
        """What the search itself may use of ``trials`` trainings of ``unit`` env steps each
        (in trainings by default): ``%P`` of them, less the ``+KxM`` re-runs, which are part
        of that budget."""
        return trials * unit * self.share // 100 - self.pick_trainings * unit

    @property
    def label(self) -> str:
        """The readable name: the base's, then each part, e.g. "TPE, 2 runs per job"."""
        parts = [BASE_NAMES.get(self.base, self.base)]
        if self.runs_per_job:
            parts.append(f"{self.runs_per_job} run{'s' * (self.runs_per_job > 1)} per job")
        if self.picks:
            parts.append(f"best {self.top} re-run {self.reruns} times")
        flags = (self.shared_episodes, self.ask_when_free, self.late_window, self.fit_rounds)
        parts += [name for name, on in zip(METHOD_FLAGS.values(), flags, strict=True) if on]
        if self.stopping:
            parts.append(STOPPING_FLAGS[self.stopping])
        if self.share != 100:
            parts.append(f"{self.share}% of the env steps")
        return ", ".join(parts)


def parse_method(name: str) -> Method:
    """``Method`` of ``name``; ValueError saying what is wrong."""
    full = name
    name, percent, share = name.partition("%")
    if percent and not (share.isdigit() and 1 <= int(share) <= 100):
        raise ValueError(f"{full!r}: %P needs a whole percentage from 1 to 100")
    core, *flags = name.split("~")
    every = {**METHOD_FLAGS, **STOPPING_FLAGS}
    stopping = [f for f in flags if f in STOPPING_FLAGS]
    if any(f not in every for f in flags) or len(set(flags)) < len(flags) or len(stopping) > 1:
        known = " and ".join(f"~{flag} ({what})" for flag, what in every.items())
        raise ValueError(
            f"{full!r}: the ~ suffixes are {known}, each at most once, one early stopping"
        )
    stopping_flags = ", ".join(f"~{flag}" for flag in STOPPING_FLAGS)
    if percent and not stopping:
        raise ValueError(f"{full!r}: %P goes with early stopping ({stopping_flags})")
    if "fit" in flags and not stopping:
        raise ValueError(f"{full!r}: ~fit goes with early stopping ({stopping_flags})")
    head, plus, pick = core.partition("+")
    base, at, runs = head.partition("@")
    method = Method(base)
    if at:
        if not (runs.isdigit() and int(runs) > 0):
            raise ValueError(f"{name!r}: @R needs a whole number of runs per job >= 1")
        method = Method(base, int(runs))
    if plus:
        top, x, reruns = pick.partition("x")
        if not (x and top.isdigit() and reruns.isdigit() and int(top) >= 1 and int(reruns) >= 2):
            raise ValueError(
                f"{name!r}: +KxM needs K >= 1 configurations re-run M >= 2 times (e.g. +2x2)"
            )
        method = Method(base, method.runs_per_job, int(top), int(reruns))
    return dataclasses.replace(
        method,
        shared_episodes="ce" in flags,
        ask_when_free="free" in flags,
        late_window="late" in flags,
        fit_rounds="fit" in flags,
        stopping=stopping[0] if stopping else "",
        share=int(share) if percent else 100,
    )


def is_known(name: str) -> bool:
    """Whether ``name`` is a method this benchmark runs (a zoo method takes no suffix)."""
    try:
        m = parse_method(name)
    except ValueError:
        return False
    if m.base in ZOO_METHODS:
        return m == Method(m.base)
    if m.stopping in OPTUNA_STOPPING and m.base != "tpe":
        return False  # Optuna's pruner needs tpe's study
    return m.base in RL_RELAY_METHODS


def label(name: str) -> str:
    """The readable name of the method typed as ``name`` (``name`` itself if unparsable)."""
    try:
        return parse_method(name).label
    except ValueError:
        return name
