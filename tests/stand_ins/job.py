#!/usr/bin/env python3
"""STAND-IN job script for the driver's tests, not rl-relay's job: cluster_utils runs it as
it runs ``wrappers/run_learning.py``.

It registers with the server (``initialize_job``) and records in
``<working_dir>/stand_in_job.json`` what it was given: its CPU affinity, the CPU list in
``RL_RELAY_JOB_CPUS`` (null when unset), its pid and its start time; ``end`` is added when
it finishes. Then, by its parameters:

- ``meet`` (a directory): it writes its start there and waits (at most ``meet_seconds``)
  until another job that has not ended is there too, so that jobs run at the same time;
- ``seconds``: it sleeps that long;
- ``exit_2_ids``: a job whose id is listed ends with ``os._exit(2)`` (no message, no
  ``atexit``: the server is never told), ``kill_ids``: it SIGKILLs itself;
- otherwise it reports ``mean_eprewmean`` = its ``x`` and exits 0.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

from cluster_utils import finalize_job, initialize_job

params = initialize_job()
job_id = int(params["id"])
wd = Path(params["working_dir"])
record = {
    "id": job_id,
    "pid": os.getpid(),
    "affinity": sorted(os.sched_getaffinity(0)),
    "given": os.environ.get("RL_RELAY_JOB_CPUS"),
    "start": time.time(),
}
(wd / "stand_in_job.json").write_text(json.dumps(record))
meet = params.get("meet")
if meet:
    here = Path(meet)
    here.mkdir(parents=True, exist_ok=True)
    (here / f"{job_id}.start").write_text(str(record["start"]))
    deadline = time.monotonic() + float(params.get("meet_seconds", 20))
    while time.monotonic() < deadline:
        others = {p.stem for p in here.glob("*.start")} - {str(job_id)}
        if others - {p.stem for p in here.glob("*.end")}:
            break
        time.sleep(0.05)
time.sleep(float(params.get("seconds", 0)))
if job_id in params.get("exit_2_ids", ()):
    print(f"stand-in job {job_id} exits 2 without a word to the server", file=sys.stderr)
    sys.stderr.flush()
    os._exit(2)
if job_id in params.get("kill_ids", ()):
    print(f"stand-in job {job_id} kills itself", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
record["end"] = time.time()
(wd / "stand_in_job.json").write_text(json.dumps(record))
if meet:
    (Path(meet) / f"{job_id}.end").write_text(str(record["end"]))
finalize_job({"mean_eprewmean": float(params["x"])}, params)
