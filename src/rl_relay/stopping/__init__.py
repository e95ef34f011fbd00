"""Early stopping of poor jobs at the boundaries between chained training iterations.

Every rl-relay job already stops at the end of each training iteration, checkpoints and
exits to be resumed; with an ``early_stopping`` section in the HPO settings, each of those
boundaries (a *rung*) is also a decision point: a job whose score there is poor against the
other jobs' scores at the same rung ends, reporting its score so far, and its slot goes to
a new configuration. Modules:

- ``settings``: the ``early_stopping`` section (rules ``asha``, ``median`` and ``optuna``),
  its checks and the ``early_stopping.*`` job parameters ``rl-relay hpo`` passes on;
- ``rules``: ASHA's and the median rule's decision from recorded scores (pure);
- ``records``: the write-once record of every decision in the results directory;
- ``pruner``: the ``optuna`` rule, Optuna's own pruners on the ``tpe`` search's study;
- ``boundary``: the job's side (``rl_relay.job.boundary``): score, decide, record, act.

Nothing here imports torch or stable-baselines3.
"""
