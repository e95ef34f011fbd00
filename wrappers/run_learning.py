#!/usr/bin/env python3
"""cluster_utils job script: merge the sampled parameters into configs, train, report.

Run by ``rl-relay hpo`` as ``run_learning.py --job-id=N --cluster-utils-server=IP:PORT
WORKING_DIR/job_parameters.json``, by plain cluster_utils with ``--parameter-dict "{...}"``
in place of the file, or by hand as ``run_learning.py params.json``. The package is
imported from this checkout's ``src/`` first, so a job runs the code of the checkout that
cluster_utils cloned for it, not whatever version happens to be installed. Preemption
signals are recorded from the first instruction on (``rl_relay.job.preemption``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from rl_relay.job import preemption  # noqa: E402

preemption.install()

from rl_relay.job.run_learning import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
