"""Population Based Training over rl-relay's chained training iterations.

Each member of the population is one cluster job chaining its training iterations as any
rl-relay job does; at every ``perturbation_interval`` iterations it writes a record into
``<results_dir>/population/`` and decides, from the records of the other members, whether
to continue with its own model or to copy a better member's checkpoint and perturbed
hyperparameters (Ray Tune's ``PopulationBasedTraining``). Modules:

- ``settings``: the ``optimizer_settings`` of ``"optimizer_str": "pbt"``, the hyperparameters
  the default learner can change mid-training, and the pre-submission checks;
- ``explore``: sampling and perturbing one member's hyperparameters (pure);
- ``decide``: the exploit/explore decision of one member at one boundary (pure);
- ``records``: the write-once record and decision files of the population directory;
- ``history``: schedules, lineage, exploit events and the best member, read from records;
- ``spec``: the ``pbt.*`` job parameters and ``MemberSpec``, what a member job knows;
- ``member``: the boundary step a member job runs after each training iteration;
- ``dead_member``: the failure the driver records for a member that died without a word;
- ``optimizer``: the cluster_utils optimiser ``"pbt"`` and the job parameters it needs.

Nothing here imports torch or stable-baselines3.
"""
