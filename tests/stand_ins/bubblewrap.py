"""Debian's bubblewrap for the container tests: installed when missing, checked that it runs.

``python tests/stand_ins/bubblewrap.py`` installs it and says whether it works here.
bwrap needs either root or unprivileged user namespaces; as root (CI, these machines) it
runs with ``--unshare-all --share-net --die-with-parent --new-session``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

PACKAGE = "bubblewrap"


def install() -> str | None:
    """Install bubblewrap with apt-get when it is missing; the problem, or None."""
    if shutil.which("bwrap"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "bwrap is not installed and cannot be (installing needs root and apt-get)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

    def apt_get(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["apt-get", *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )

    proc = apt_get("install", "-y", "-qq", PACKAGE)
    if proc.returncode != 0:  # package lists missing or stale on a fresh machine
        apt_get("update", "-qq")
        proc = apt_get("install", "-y", "-qq", PACKAGE)
    if proc.returncode != 0 or not shutil.which("bwrap"):
        return f"apt-get install {PACKAGE} failed: {proc.stderr[-1000:]}"
    return None


def problem() -> str | None:
    """Why the bubblewrap stand-in runtime cannot run here, or None when it can."""
    missing = install()
    if missing:
        return missing
    proc = subprocess.run(
        [
            "bwrap",
            *("--unshare-all", "--share-net", "--die-with-parent", "--new-session"),
            *("--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return (
            f"bwrap cannot create namespaces here ({proc.stderr.strip()}); it needs root or"
            " unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
        )
    return None


if __name__ == "__main__":
    found = problem()
    print(found or f"bubblewrap works: {shutil.which('bwrap')}")
    sys.exit(1 if found else 0)
