"""A real single-node Slurm cluster for the tests, started from Debian's packages.

``python tests/slurm_cluster.py start [DIR]`` / ``stop [DIR]`` by hand, or ``SlurmCluster``
from a test fixture. Installs ``slurm-wlm munge slurmdbd mariadb-server`` if missing,
writes the configuration into DIR, starts munge, MariaDB, slurmdbd, slurmctld and slurmd
(no systemd: the daemons run in the foreground as our children, so stopping is ending
them), and waits until the node is idle. Clients find the cluster through ``SLURM_CONF``.
Accounting (slurmdbd + MariaDB) is needed because cluster_utils asks ``sacct`` for job states.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

PACKAGES = ("slurm-wlm", "munge", "slurmdbd", "mariadb-server")
CLUSTER = "rlrelay"
DB_USER, DB_PASS, DB_NAME = "slurm", "slurm-test-only", "slurm_acct_db"


class SlurmUnavailable(RuntimeError):
    """This machine cannot run the test cluster (not root, packages not installable)."""


def install() -> None:
    if all(shutil.which(cmd) for cmd in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd")):
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable("installing Slurm needs root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")


def _wait(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise RuntimeError(f"timed out waiting for {what}")


class SlurmCluster:
    """Start and stop the daemons; ``env`` is what clients (sbatch, cluster_utils) need."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory).resolve()
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.dir / "slurm.conf"
        self.children: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def _write_config(self) -> None:
        for sub in ("state", "spool", "log", "mysql-run"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "\n".join(
                [
                    f"ClusterName={CLUSTER}",
                    f"SlurmctldHost={self.host}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    f"StateSaveLocation={self.dir / 'state'}",
                    f"SlurmdSpoolDir={self.dir / 'spool'}",
                    f"SlurmctldPidFile={self.dir / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.dir / 'slurmd.pid'}",
                    f"SlurmctldLogFile={self.dir / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={self.dir / 'log' / 'slurmd.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_CPU",
                    "AccountingStorageType=accounting_storage/slurmdbd",
                    "AccountingStorageHost=localhost",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    "SchedulerParameters=batch_sched_delay=0",
                    # the accounting database outlives the cluster: job ids it has not seen,
                    # or cluster_utils' sacct reads the state of an old job with the same id
                    f"FirstJobId={(int(time.time()) % 600_000) * 100 + 1}",
                    f"NodeName={self.host} CPUs={os.cpu_count()} RealMemory=4000 State=UNKNOWN",
                    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        dbd = self.dir / "slurmdbd.conf"
        dbd.write_text(
            "\n".join(
                [
                    "AuthType=auth/munge",
                    "DbdHost=localhost",
                    "SlurmUser=root",
                    f"PidFile={self.dir / 'slurmdbd.pid'}",
                    f"LogFile={self.dir / 'log' / 'slurmdbd.log'}",
                    "StorageType=accounting_storage/mysql",
                    "StorageHost=localhost",
                    f"StorageUser={DB_USER}",
                    f"StoragePass={DB_PASS}",
                    f"StorageLoc={DB_NAME}",
                    "",
                ]
            )
        )
        dbd.chmod(0o600)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.dir / "log" / f"{name}.out", "ab")  # noqa: SIM115 (lives with the child)
        proc = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append(proc)
        (self.dir / "pids.json").write_text(json.dumps([p.pid for p in self.children]))
        return proc

    def _run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, **kwargs)

    def start(self) -> None:
        install()
        self._write_config()
        run_munge = Path("/run/munge")
        run_munge.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_munge, "munge", "munge")
        self._spawn("munged", ["runuser", "-u", "munge", "--", "munged", "--foreground"])
        _wait(lambda: Path("/run/munge/munge.socket.2").exists(), "munged")
        mysql_run = Path("/run/mysqld")
        mysql_run.mkdir(parents=True, exist_ok=True)
        shutil.chown(mysql_run, "mysql", "mysql")
        self._spawn(
            "mariadb",
            ["mariadbd", "--user=mysql", "--skip-networking=0", "--bind-address=127.0.0.1"],
        )
        _wait(lambda: self._run(["mariadb", "-e", "select 1"]).returncode == 0, "MariaDB")
        sql = (
            f"CREATE DATABASE IF NOT EXISTS {DB_NAME};"
            f" CREATE USER IF NOT EXISTS '{DB_USER}'@'localhost' IDENTIFIED BY '{DB_PASS}';"
            f" GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'localhost'; FLUSH PRIVILEGES;"
        )
        self._run(["mariadb", "-e", sql], check=True)
        self._spawn("slurmdbd", ["slurmdbd", "-D"])
        _wait(lambda: self._run(["sacctmgr", "-n", "list", "cluster"]).returncode == 0, "slurmdbd")
        self._run(["sacctmgr", "-i", "add", "cluster", CLUSTER])
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._spawn("slurmd", ["slurmd", "-D"])
        _wait(lambda: "idle" in self._run(["sinfo", "-h", "-o", "%T"]).stdout, "an idle node")
        logger.info("Slurm cluster up (SLURM_CONF=%s)", self.conf)

    def stop(self) -> None:
        pids = [p.pid for p in self.children]
        if not pids and (self.dir / "pids.json").exists():
            pids = json.loads((self.dir / "pids.json").read_text())
        for pid in reversed(pids):  # slurmd, slurmctld, slurmdbd, mariadb, munged
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                    if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                        break
                except (ProcessLookupError, FileNotFoundError):
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
        for proc in self.children:
            proc.poll()
        self.children.clear()
        (self.dir / "pids.json").unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO)
    if not argv or argv[0] not in ("start", "stop"):
        print("usage: python tests/slurm_cluster.py start|stop [DIR]", file=sys.stderr)
        return 2
    cluster = SlurmCluster(Path(argv[1] if len(argv) > 1 else "/tmp/rl-relay-slurm"))
    if argv[0] == "start":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
