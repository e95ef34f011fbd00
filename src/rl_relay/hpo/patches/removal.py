"""Remove a directory without sleeping first, and return at once when it is gone.

cluster_utils 3.0.0 defect: ``rm_dir_full`` sleeps 0.5 s before it looks whether the
directory exists. With ``remove_working_dirs`` (cluster_utils' default) every optimiser
iteration ends with it on the working directory of *every* job told so far, removed or
not, so the driver sleeps O(results) half-seconds per iteration, O(results²) over a search
(1,000 jobs at 20 per iteration: about 3.5 hours, during which no job is submitted), and
0.5 s more for each outdated copy in ``best_jobs/`` and for the jobs directory at the end.
This version removes a directory that exists and sleeps (1 s, as cluster_utils does) only
before the one retry of a removal that a slow file system did not finish.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

#: Before the retry of a removal the file system did not finish (cluster_utils' 1 s).
RETRY_AFTER = 1.0


def rm_dir_full(dir_name: str) -> None:
    """``utils.rm_dir_full``: remove ``dir_name`` and everything in it, if it exists."""
    if not os.path.exists(dir_name):
        return
    shutil.rmtree(dir_name, ignore_errors=True)
    if os.path.exists(dir_name):  # NFS may still list files being closed: once more
        time.sleep(RETRY_AFTER)
        shutil.rmtree(dir_name, ignore_errors=True)
    if os.path.exists(dir_name):
        logging.getLogger("cluster_utils").warning("Removing of dir %s failed", dir_name)


def install() -> None:
    from cluster_utils.server import cluster_system, git_utils, job_manager

    # the modules that imported cluster_utils' function under this name
    for module in (job_manager, cluster_system, git_utils):
        module.rm_dir_full = rm_dir_full
