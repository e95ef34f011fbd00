"""The ``optuna`` rule: Optuna's own pruners, on the ``tpe`` search's study.

With ``"optimizer_str": "tpe"`` and ``"early_stopping": {"rule": "optuna", ...}`` the search's
study lives in an Optuna journal file in the results directory (``optuna_journal.log``;
``optuna-dashboard results_dir/NAME/optuna_journal.log`` shows it) instead of in memory. A
job knows its trial (``early_stopping.trial``, set by the search when it asked the
configuration); at each rung it reports its score with ``trial.report(score, step=rung)`` and
stops when ``trial.should_prune()`` says so, as rl-baselines3-zoo's trials do; the driver
then tells the study the trial was PRUNED. The decision is recorded like the other rules'
(``records``) before the job acts on it: a job restarted after a kill does not ask again.
"""

from __future__ import annotations

import warnings
from typing import Any

from rl_relay.stopping.rules import CONTINUE, STOP, Decision
from rl_relay.stopping.settings import PRUNERS, StoppingSpec

#: The trial's user attribute naming the job, so that a decision's record names jobs.
JOB_ATTR = "rl_relay_job"


def make_pruner(values: dict[str, Any]) -> Any:
    """The Optuna pruner the settings name, with their arguments."""
    import optuna

    class_name, defaults = PRUNERS[values["pruner"]]
    kwargs = {key: values.get(key, default) for key, default in defaults.items()}
    return getattr(optuna.pruners, class_name)(**kwargs)


def journal_storage(path: str) -> Any:
    """An Optuna storage in a journal file (several processes and nodes may share it)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    # the open lock (O_EXCL) rather than the symlink lock: it works on every file system
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def decide(spec: StoppingSpec, trial_number: int, rung: int, score: float, job: int) -> Decision:
    """Report ``score`` at ``rung`` to the job's trial and ask the pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=spec.study_name,
        storage=journal_storage(spec.storage),
        pruner=make_pruner(dict(spec.values)),
    )
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, trial_number)
    trial = optuna.trial.Trial(study, trial_id)
    with warnings.catch_warnings():  # "already reported": a job restarted before recording
        warnings.simplefilter("ignore")
        trial.set_user_attr(JOB_ATTR, job)
        trial.report(score, step=rung)
    prune = trial.should_prune()
    compared = {
        int(t.user_attrs[JOB_ATTR]): float(t.intermediate_values[rung])
        for t in study.get_trials(deepcopy=False)
        if t.number != trial_number and rung in t.intermediate_values and JOB_ATTR in t.user_attrs
    }
    name = PRUNERS[spec.values["pruner"]][0]
    if prune:
        return Decision(STOP, f"Optuna's {name} prunes trial {trial_number}", None, compared)
    return Decision(CONTINUE, f"Optuna's {name} keeps trial {trial_number}", None, compared)
