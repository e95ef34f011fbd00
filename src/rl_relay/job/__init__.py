"""One job: what ``wrappers/run_learning.py`` runs for each sampled configuration.

Owns everything between cluster_utils handing a job its parameters and the job reporting a
reward: the parameters and their checks (``params``), the templates and the
``config.<file>.<param>[:index]`` overrides merged into them (``templates``, ``overrides``,
``config``), the runs/iterations/attempts state machine and its file (``state``,
``state_file``), one step and what its end means (``step``, ``outcome``, ``reward``), the
loop over steps (``loop``) and what may happen at an iteration boundary (``boundary``), the
child process and everything it started (``supervise``, ``containment``), the working
directory's lock, preemption signals, the resources the scheduler gave (``locks``,
``preemption``, ``resources``) and the calls to cluster_utils (``client``).

Standard library only at import time, as ``wrappers/run_singularity.py`` imports
``supervise`` and ``resources`` on the host.
"""
