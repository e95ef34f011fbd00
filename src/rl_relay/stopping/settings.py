"""The ``early_stopping`` section of HPO settings, its checks, and the job parameters.

    "early_stopping": {"rule": "asha", "reduction_factor": 3, "grace_iterations": 1,
                       "min_jobs_per_rung": 3}
    "early_stopping": {"rule": "median", "startup_jobs": 5, "warmup_iterations": 1}
    "early_stopping": {"rule": "optuna", "pruner": "median", "n_startup_trials": 5}

``optuna`` (with ``"optimizer_str": "tpe"`` only) uses one of Optuna's pruners on the tpe
search's own study; its other keys are the pruner's constructor arguments. ``rl-relay hpo``
passes the section on to every job as flat ``early_stopping.*`` parameters (``job_params``),
together with where decisions are recorded and whether the metric is minimised; a job reads
them back with ``StoppingSpec.from_job_params``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_relay.layout import ResultsPaths
from rl_relay.paramtree import lookup, subtree

#: The section of the settings file and the prefix of the job parameters.
SECTION = "early_stopping"
#: rule -> its settings with their defaults (``rule`` itself aside).
RULES: dict[str, dict[str, Any]] = {
    "asha": {"reduction_factor": 3, "grace_iterations": 1, "min_jobs_per_rung": 3},
    "median": {"startup_jobs": 5, "warmup_iterations": 1},
    "optuna": {"pruner": "median"},
}
#: Optuna's pruners by the name the settings give, with the constructor arguments they take
#: here and their defaults (Optuna's own).
PRUNERS: dict[str, tuple[str, dict[str, Any]]] = {
    "median": (
        "MedianPruner",
        {"n_startup_trials": 5, "n_warmup_steps": 0, "interval_steps": 1, "n_min_trials": 1},
    ),
    "successive_halving": (
        "SuccessiveHalvingPruner",
        {"min_resource": "auto", "reduction_factor": 4, "min_early_stopping_rate": 0},
    ),
    "hyperband": (
        "HyperbandPruner",
        {"min_resource": 1, "max_resource": "auto", "reduction_factor": 3},
    ),
}
#: Settings that are counts of iterations before which no job stops (must leave a boundary).
_GRACE = ("grace_iterations", "warmup_iterations")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown(key: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"is not a setting of {what}; {hint}it takes {', '.join(known)}"


def _value_problem(key: str, value: Any) -> str | None:
    """What is wrong with one setting's value, or None."""
    if key == "reduction_factor":
        if not _is_int(value) or value < 2:
            return f"is {value!r}; give a whole number >= 2 (3 keeps the best third)"
        return None
    if key in ("min_resource", "max_resource"):
        if value == "auto" or (_is_int(value) and value >= 1):
            return None
        return f'is {value!r}; give a whole number of iterations >= 1, or "auto"'
    if key == "n_min_trials" or key == "interval_steps":
        if not _is_int(value) or value < 1:
            return f"is {value!r}; give a whole number >= 1"
        return None
    if key == "min_jobs_per_rung":
        if not _is_int(value) or value < 1:
            return f"is {value!r}; give a whole number of jobs >= 1"
        return None
    if not _is_int(value) or value < 0:
        return f"is {value!r}; give a whole number >= 0"
    return None


def section_problems(section: Any) -> list[tuple[str, str]]:
    """(settings key, what is wrong and what to do) for the section on its own."""
    if not isinstance(section, Mapping):
        return [(SECTION, f'is {section!r}; give an object such as {{"rule": "asha"}}')]
    rule = section.get("rule")
    if rule not in RULES:
        close = difflib.get_close_matches(str(rule), list(RULES), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        shown = "is missing" if rule is None else f"is {rule!r}"
        return [(f"{SECTION}.rule", f"{shown}; {hint}use one of {', '.join(RULES)}")]
    known = dict(RULES[rule])
    what = f"rule {rule!r}"
    problems: list[tuple[str, str]] = []
    if rule == "optuna":
        pruner = section.get("pruner", known["pruner"])
        if pruner not in PRUNERS:
            close = difflib.get_close_matches(str(pruner), list(PRUNERS), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return [
                (
                    f"{SECTION}.pruner",
                    f"is {pruner!r}; {hint}use one of {', '.join(PRUNERS)} (Optuna's pruners)",
                )
            ]
        known.update(PRUNERS[pruner][1])
        what = f"Optuna's {PRUNERS[pruner][0]}"
    for key, value in section.items():
        if key in ("rule", "pruner"):
            continue
        if key not in known:
            problems.append((f"{SECTION}.{key}", _unknown(key, [*known], what)))
        elif (problem := _value_problem(key, value)) is not None:
            problems.append((f"{SECTION}.{key}", problem))
    return problems


def whole_file_problems(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems of the section within the whole settings file ([] without a section)."""
    if SECTION not in settings:
        return []
    section = settings[SECTION]
    problems = section_problems(section)
    if problems:
        return problems
    optimizer = settings.get("optimizer_str")
    if optimizer == "pbt":
        return [
            (
                SECTION,
                "does not go with optimizer_str 'pbt', whose members decide at the same"
                " boundaries (its stop settings end poor members): remove one of the two",
            )
        ]
    if section["rule"] == "optuna" and optimizer != "tpe":
        return [
            (
                f"{SECTION}.rule",
                f"'optuna' prunes the trials of the 'tpe' search's Optuna study, but"
                f" optimizer_str is {optimizer!r}: use rule 'asha' or 'median', or"
                " optimizer_str 'tpe'",
            )
        ]
    iterations = lookup(settings.get("fixed_params") or {}, "training_iterations", 1)
    if not _is_int(iterations) or iterations < 2:
        return [
            (
                SECTION,
                f"needs boundaries between chained training iterations, but"
                f" fixed_params.training_iterations is {iterations!r}: set it to 2 or more"
                " (each job's training is then split into that many cluster jobs)",
            )
        ]
    for key in _GRACE:
        grace = section.get(key, RULES[section["rule"]].get(key))
        if grace is not None and grace > iterations - 1:
            problems.append(
                (
                    f"{SECTION}.{key}",
                    f"is {grace}, but with training_iterations {iterations} the last boundary"
                    f" is after {iterations - 1} iteration(s): no job could ever stop; lower"
                    f" it to at most {iterations - 1}, or raise training_iterations",
                )
            )
    return problems


#: rule (or Optuna pruner) -> the setting that counts jobs before any can stop, and whether
#: the deciding job is one of them (ASHA's rung counts its own score; the others wait for
#: that many *other* jobs to finish)
_STARTUP = {
    "asha": ("min_jobs_per_rung", True),
    "median": ("startup_jobs", False),
    "optuna.median": ("n_startup_trials", False),
}


def whole_file_warnings(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What runs but stops nothing: a start-up count that ``number_of_samples`` never reaches.

    The search then trains every job to the end in chained iterations, paying for the
    boundaries and saving nothing; easy to fall into when 2 learning runs per job halve the
    jobs and the count stays the zoo's 10. A warning, not a refusal: continuing the search
    with more samples lets it stop jobs later.
    """
    if SECTION not in settings or whole_file_problems(settings):
        return []
    section = settings[SECTION]
    values = filled(section)
    rule = section["rule"]
    name = f"optuna.{values['pruner']}" if rule == "optuna" else rule
    if name not in _STARTUP:
        return []
    key, counts_itself = _STARTUP[name]
    needed = values[key]
    samples = (settings.get("optimization_setting") or {}).get("number_of_samples")
    if not _is_int(samples) or samples < 1:
        return []  # cluster_utils' own check reports it
    if (needed > samples) if counts_itself else (needed >= samples):
        before = "jobs at a rung" if counts_itself else "jobs to train to the end"
        return [
            (
                f"{SECTION}.{key}",
                f"is {needed}, but optimization_setting.number_of_samples is {samples}: the"
                f" rule waits for {needed} {before} before it stops any, so no job would"
                f" stop; lower {key} (e.g. to {max(1, samples // 2)}) or raise"
                " number_of_samples",
            )
        ]
    return []


@dataclass(frozen=True)
class StoppingSpec:
    """What a job needs to know to decide at its boundaries."""

    rule: str
    #: the rule's settings, defaults filled in (for ``optuna``: ``pruner`` and its arguments)
    values: Mapping[str, Any]
    #: where decisions are recorded (``<results_dir>/early_stopping``)
    records_dir: Path
    minimize: bool
    #: ``optuna``: the study's journal file and name
    storage: str = ""
    study_name: str = ""

    @classmethod
    def from_job_params(cls, params: Mapping[str, Any]) -> StoppingSpec:
        """Read the ``early_stopping.*`` parameters ``rl-relay hpo`` sets; ValueError if bad."""
        tree = subtree(params, SECTION)
        section = {k: v for k, v in tree.items() if k not in _INTERNAL}
        problems = section_problems(section)
        if problems:
            raise ValueError("; ".join(f"{key} {what}" for key, what in problems))
        try:
            return cls(
                rule=section["rule"],
                values=filled(section),
                records_dir=Path(tree["records_dir"]),
                minimize=bool(tree["minimize"]),
                storage=str(tree.get("storage", "")),
                study_name=str(tree.get("study_name", "")),
            )
        except KeyError as err:
            raise ValueError(
                f"the job parameter {SECTION}.{err.args[0]} is missing; rl-relay hpo sets it"
                f" for settings with an {SECTION!r} section"
            ) from None


#: Parameters ``rl-relay hpo`` adds to the user's section.
_INTERNAL = ("records_dir", "minimize", "storage", "study_name", "trial")


def filled(section: Mapping[str, Any]) -> dict[str, Any]:
    """The section's settings with every default filled in (``rule`` aside)."""
    values = dict(RULES[section["rule"]])
    if section["rule"] == "optuna":
        values.update(PRUNERS[section.get("pruner", values["pruner"])][1])
    values.update({k: v for k, v in section.items() if k != "rule"})
    return values


def optimizer_settings(settings: Mapping[str, Any], results_dir: Path) -> dict[str, Any]:
    """What the ``tpe`` search needs besides its own settings for rule ``optuna``: where its
    study lives and under which name ({} otherwise)."""
    section = settings.get(SECTION)
    if not isinstance(section, Mapping) or section.get("rule") != "optuna":
        return {}
    return {
        "storage": str(ResultsPaths(Path(results_dir)).optuna_journal),
        "study_name": str(settings.get("optimization_procedure_name") or "rl-relay"),
    }


def job_params(settings: Mapping[str, Any], results_dir: Path) -> dict[str, Any]:
    """The flat ``early_stopping.*`` fixed parameters for every job of an HPO ({} without)."""
    section = settings.get(SECTION)
    if not isinstance(section, Mapping):
        return {}
    paths = ResultsPaths(Path(results_dir))
    minimize = lookup(settings.get("optimization_setting") or {}, "minimize", False)
    values: dict[str, Any] = {
        **dict(section),
        "records_dir": str(paths.early_stopping),
        "minimize": bool(minimize),
    }
    values.update(optimizer_settings(settings, results_dir))
    return {f"{SECTION}.{key}": value for key, value in values.items()}
