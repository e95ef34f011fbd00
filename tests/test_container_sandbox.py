"""The container path under real isolation: jobs run in a bubblewrap sandbox.

tests/stand_ins/apptainer_bwrap is a STAND-IN for Apptainer that speaks its command line
and runs the command in namespaces where only host /usr, /etc, the image's Python
(read-only), a fresh /tmp, /proc, /dev and HOME, and what is bound are visible. The image
is a sandbox directory made from containers/rl_relay.def's %runscript and %environment,
whose software is this test run's Python environment. The wrapper itself runs with
``python -I -S`` (no site-packages): on the host it needs the standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, STAND_IN_LEARNER, local_settings, write_stand_in_templates

sys.path.insert(0, str(REPO / "tests" / "stand_ins"))
import bubblewrap  # noqa: E402
from sandbox_image import python_dirs, read_definition, write_sandbox  # noqa: E402

WRAPPER = REPO / "wrappers" / "run_singularity.py"
RUNTIME = REPO / "tests" / "stand_ins" / "apptainer_bwrap"
PROBE = r"""#!/usr/bin/env python3
import json, os, signal, sys, time
got = []
signal.signal(signal.SIGTERM, lambda *a: got.append("SIGTERM"))
params = json.load(open(next(a for a in sys.argv[1:] if a.endswith(".json"))))
checks = json.loads(os.environ["PROBE_CHECKS"])
def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w"):
            pass
        os.remove(os.path.join(path, ".probe"))
        return True
    except OSError:
        return False
report = {
    "argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ), "python": sys.prefix,
    "home": sorted(os.listdir(os.environ["HOME"])),
    "exists": {p: os.path.exists(p) for p in checks["exists"]},
    "writable": {p: writable(p) for p in checks["writable"]},
}
with open(os.path.join(params["working_dir"], "probe.json"), "w") as f:
    json.dump(report, f)
deadline = time.time() + float(os.environ.get("SLEEP", "0"))
while time.time() < deadline and not got:
    time.sleep(0.02)
if got:
    open(os.path.join(params["working_dir"], "signal.txt"), "w").write(got[0])
sys.exit(int(os.environ.get("EXIT", "0")))
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in image from the definition file, with this Python environment in it."""
    problem = bubblewrap.problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"the container tests cannot run: {problem}")
        pytest.skip(problem)
    read_only, bin_dir = python_dirs(sys.executable)
    return write_sandbox(tmp_path_factory.mktemp("image"), read_definition(), read_only, bin_dir)


@pytest.fixture
def outside() -> Iterator[Path]:
    """Host directories the job must not see: outside /tmp, the working and current dirs."""
    directory = Path(tempfile.mkdtemp(prefix="rl-relay-sandbox-", dir="/var/tmp"))
    (directory / "home").mkdir()
    (directory / "home" / "secret.txt").write_text("host home")
    (directory / "unbound").mkdir()
    (directory / "unbound" / "data.txt").write_text("not bound")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def host(tmp_path: Path, image: Path, outside: Path) -> dict[str, Any]:
    """The host side: the runtime on PATH as ``apptainer``, a HOME with a secret in it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apptainer").symlink_to(RUNTIME)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", HOME=str(outside / "home"))
    env.update(STAND_IN_RECORD=str(tmp_path / "runtime.jsonl"), RL_RELAY_HOST_ONLY="1")
    for name in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES"):
        env.pop(name, None)
    return {"tmp": tmp_path, "image": image, "outside": outside, "env": env}


def wrapper(host: dict, *args: str, cwd: Path, **env: str) -> subprocess.Popen:
    """run_singularity.py by hand, with the host's Python in isolated mode, no site-packages."""
    return subprocess.Popen(
        [sys.executable, "-I", "-S", str(WRAPPER), *args],
        cwd=cwd,
        env={**host["env"], **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_wrapper(host: dict, *args: str, cwd: Path, timeout: float = 120, **env: str):
    proc = wrapper(host, *args, cwd=cwd, **env)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def probe_job(host: dict, **singularity: Any) -> tuple[Path, Path]:
    """A start directory with the probe script and a parameter file; returns both."""
    start = host["tmp"] / "start"
    start.mkdir(exist_ok=True)
    script = start / "probe.py"
    script.write_text(PROBE)
    script.chmod(0o755)
    outside = host["outside"]
    checks = {
        "exists": [str(outside / "home" / "secret.txt"), str(outside / "unbound" / "data.txt")],
        "writable": ["/usr", sys.prefix, str(host["tmp"] / "wd"), "/tmp", str(start)],
    }
    env = {"PROBE_CHECKS": json.dumps(checks), **singularity.pop("env", {})}
    params = start / "params.json"
    sing = {"image": str(host["image"]), "script": "probe.py", "env": env, **singularity}
    params.write_text(json.dumps({"singularity": sing, "working_dir": str(host["tmp"] / "wd")}))
    return start, params


def test_the_job_sees_only_what_it_was_given(host: dict) -> None:
    start, params = probe_job(host, env={"FOO": "a b,c:d$e"})
    code, _, err = run_wrapper(host, str(params), "x=1", cwd=start, SLURM_CPUS_PER_TASK="2")
    assert code == 0, err
    wd = host["tmp"] / "wd"
    report = json.loads((wd / "probe.json").read_text())
    outside = host["outside"]
    assert report["argv"] == [str(params), "x=1"]  # passed on unchanged
    assert report["cwd"] == str(start)
    assert report["exists"] == {
        str(outside / "home" / "secret.txt"): False,  # the host's home is not there
        str(outside / "unbound" / "data.txt"): False,  # nor anything not bound
    }
    assert report["writable"] == {
        "/usr": False,  # host system read-only
        sys.prefix: False,  # the image's Python read-only
        str(wd): True,  # the job writes its results through the binds
        "/tmp": True,
        str(start): True,
    }
    env = report["env"]
    assert env["HOME"] == str(outside / "home") and report["home"] == []  # fresh and empty
    assert env["FOO"] == "a b,c:d$e"  # singularity.env, verbatim
    assert "RL_RELAY_HOST_ONLY" not in env  # --containall: the host environment stays out
    assert env["SLURM_CPUS_PER_TASK"] == "2" and env["OMP_NUM_THREADS"] == "2"
    assert env["APPTAINER_CONTAINER"] == str(host["image"])
    assert report["python"] == sys.prefix  # the image's python (its PATH), not the host's


@pytest.mark.parametrize("code", [0, 1, 3])
def test_exit_codes_of_the_job_inside_pass_through(host: dict, code: int) -> None:
    start, params = probe_job(host, env={"EXIT": str(code)})
    assert run_wrapper(host, str(params), cwd=start)[0] == code


def test_sigterm_reaches_the_job_inside(host: dict) -> None:
    start, params = probe_job(host, env={"SLEEP": "60", "EXIT": "3"})
    job = wrapper(host, str(params), cwd=start)
    wd = host["tmp"] / "wd"
    deadline = time.monotonic() + 60
    while not (wd / "probe.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    job.communicate(timeout=60)
    assert (wd / "signal.txt").read_text() == "SIGTERM"
    assert job.returncode == 3


def stand_in_params(host: dict, where: Path, **params: Any) -> Path:
    index = write_stand_in_templates(host["tmp"] / "templates")
    full = {
        "singularity": {"image": str(host["image"]), "script": "wrappers/run_learning.py"},
        "config": {"config_templates": str(index)},
        "learning_command": ["python3", str(STAND_IN_LEARNER)],
        "working_dir": str(host["tmp"] / "wd"),
        "learning_runs_per_job": 1,
        **params,
    }
    path = where / "params.json"
    path.write_text(json.dumps(full))
    return path


def test_a_parameter_file_outside_every_bind_is_read_inside(host: dict) -> None:
    """By hand with the parameter file elsewhere: it is bound read-only, the job runs."""
    params = stand_in_params(host, host["outside"] / "unbound")
    code, _, err = run_wrapper(host, str(params), cwd=REPO)
    assert code == 0, err
    assert "cannot read the job parameters" not in err
    state = json.loads((host["tmp"] / "wd" / "restarts.json").read_text())
    assert state["runs"][0]["done"]


# -- the default learner in the sandbox -------------------------------------------------------

PPO_PARAMS = {
    "config.config_templates": str(REPO / "hp_optim" / "config_templates_ppo.json"),
    "config.rl_common_config.total_timesteps": 3000,
    "config.rl_common_config.eval_episodes": 2,
    "config.env_config.n_envs": 2,
    "config.rl_config.n_steps": 16,
    "config.rl_config.batch_size": 32,
    "config.rl_config.n_epochs": 2,
    "config.rl_config.policy_kwargs.net_arch": [16, 16],
    "learning_runs_per_job": 1,
    "training_iterations": 1,
}


def ppo_params(host: dict, name: str) -> Path:
    path = host["outside"] / "unbound" / f"{name}.json"
    sing = {
        "singularity.image": str(host["image"]),
        "singularity.script": "wrappers/run_learning.py",
    }
    path.write_text(json.dumps({**PPO_PARAMS, **sing, "working_dir": str(host["tmp"] / name)}))
    return path


@pytest.mark.slow
def test_real_learner_preempted_inside_resumes_to_the_same_model(host: dict) -> None:
    """run_singularity -> run_learning -> PPO in the sandbox; SIGTERM mid-training
    checkpoints and exits 3, the same command continues, and the final model equals the
    one of the same job run without interruption."""
    import torch

    from rl_relay.learner import checkpoint

    one_cpu = {"SLURM_CPUS_PER_TASK": "1"}  # same torch threads in every process
    code, _, err = run_wrapper(
        host, str(ppo_params(host, "clean")), cwd=REPO, timeout=600, **one_cpu
    )
    assert code == 0, err[-3000:]

    job = wrapper(host, str(ppo_params(host, "preempted")), cwd=REPO, **one_cpu)
    progress = host["tmp"] / "preempted" / "run_0.0-0" / "logs" / "progress.csv"
    deadline = time.monotonic() + 300
    while (
        time.monotonic() < deadline
        and job.poll() is None
        and (not progress.exists() or len(progress.read_text().splitlines()) < 5)
    ):
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=300)
    assert job.returncode == 3, err[-3000:]
    wd = host["tmp"] / "preempted"
    assert "preempted at" in (wd / "run_0.0-0" / "stderr.txt").read_text()
    code, _, err = run_wrapper(
        host, str(ppo_params(host, "preempted")), cwd=REPO, timeout=600, **one_cpu
    )
    assert code == 0, err[-3000:]

    state = json.loads((wd / "restarts.json").read_text())
    assert state["runs"][0]["resumes"] == 1 and state["runs"][0]["failures"] == []
    a = checkpoint.load(str(wd / "run_0.0-0" / "model")).model
    b = checkpoint.load(str(host["tmp"] / "clean" / "run_0.0-0" / "model")).model
    assert a.num_timesteps == b.num_timesteps >= 3000
    pa, pb = a.get_parameters()["policy"], b.get_parameters()["policy"]
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert "run_learning" in (wd / "stderr.txt").read_text()  # the container's log, teed


# -- a small HPO whose jobs all run in the sandbox --------------------------------------------

#: The stand-in learner, started only inside the stand-in container (which sets
#: APPTAINER_CONTAINER).
IN_CONTAINER_LEARNER = f"""#!/bin/sh
test -n "$APPTAINER_CONTAINER" || {{ echo "not in a container" >&2; exit 7; }}
exec python3 {STAND_IN_LEARNER} "$@"
"""


def run_hpo(settings: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The local HPO command (``rl-relay hpo`` once it lands)."""
    return subprocess.run(
        [sys.executable, "-m", "rl_relay.cli", "hpo", "--local", str(settings)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env=env,
    )


@pytest.mark.slow
def test_small_local_hpo_runs_every_job_in_the_sandbox(host: dict) -> None:
    index = write_stand_in_templates(host["tmp"] / "templates")
    learner = host["tmp"] / "in_container_learner.sh"
    learner.write_text(IN_CONTAINER_LEARNER)
    learner.chmod(0o755)
    settings = local_settings(
        host["tmp"],
        {
            "singularity.image": str(host["image"]),
            "singularity.script": "wrappers/run_learning.py",
            "config.config_templates": str(index),
            "learning_runs_per_job": 1,
            "training_iterations": 2,
            "learning_command": [str(learner)],
        },
        samples=2,
    )
    data = json.loads(settings.read_text())
    data["script_relative_path"] = "wrappers/run_singularity.py"
    settings.write_text(json.dumps(data))
    proc = run_hpo(settings, host["env"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = host["tmp"] / "results" / "local_test"
    working_dirs = [d for d in (results / "working_directories").iterdir() if d.is_dir()]
    assert len(working_dirs) >= 2
    for wd in working_dirs:
        assert (wd / "metrics.csv").exists(), wd
        assert "exiting for resume" in (wd / "run_learning.log").read_text()
        assert "stand-in learner" in (wd / "stdout.txt").read_text()
    calls = [json.loads(line) for line in (host["tmp"] / "runtime.jsonl").read_text().splitlines()]
    assert len(calls) >= 2 * len(working_dirs)  # every step of every job
    for call in calls:
        assert call["bwrap"][0] == "bwrap"
        assert call["argv"][-1].endswith("/job_parameters.json")  # rl-relay hpo's parameter file
