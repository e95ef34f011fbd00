"""wrappers/run_singularity.py against a RECORDING stand-in runtime (tests/stand_ins/apptainer).

No Apptainer/Singularity can be installed here; this stand-in records how it was called and
runs the command on the host, so the exact argument lists and environment the wrapper hands
the runtime are checked here. What a job can do under real isolation is checked with the
bubblewrap stand-in in test_container_sandbox.py.
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

import pytest
from conftest import (
    REPO,
    STAND_IN_LEARNER,
    hp_optimization,
    local_settings,
    write_stand_in_templates,
)

from rl_relay.container import runtime as container

WRAPPER = REPO / "wrappers" / "run_singularity.py"
STAND_IN_RUNTIME = REPO / "tests" / "stand_ins" / "apptainer"
INNER = """#!/usr/bin/env python3
import json, os, signal, sys, time
got = []
signal.signal(signal.SIGTERM, lambda *a: got.append("SIGTERM"))
print("inner stdout", flush=True)
print("inner stderr", file=sys.stderr, flush=True)
with open(os.environ["INNER_RECORD"], "w") as f:
    json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(), "FOO": os.environ.get("FOO")}, f)
deadline = time.time() + float(os.environ.get("INNER_SLEEP", "0"))
while time.time() < deadline and not got:
    time.sleep(0.02)
if got:
    open(os.environ["INNER_RECORD"] + ".signal", "w").write(got[0])
sys.exit(int(os.environ.get("INNER_EXIT", "0")))
"""


@pytest.fixture
def box(tmp_path: Path) -> dict:
    """A PATH with the stand-in runtime first, an image file and an executable inner script."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(STAND_IN_RUNTIME, bin_dir / "apptainer")
    image = tmp_path / "image.sif"
    image.write_text("not really an image")
    script = tmp_path / "inner.py"
    script.write_text(INNER)
    script.chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        STAND_IN_RECORD=str(tmp_path / "runtime.jsonl"),
        INNER_RECORD=str(tmp_path / "inner.json"),
    )
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return {"tmp": tmp_path, "bin": bin_dir, "image": image, "script": script, "env": env}


def params_file(box: dict, **singularity) -> Path:
    path = box["tmp"] / "params.json"
    sing = {"image": str(box["image"]), "script": "inner.py", **singularity}
    path.write_text(json.dumps({"singularity": sing, "working_dir": str(box["tmp"] / "wd")}))
    return path


def run(box: dict, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(WRAPPER), *args],
        cwd=box["tmp"],
        env={**box["env"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def runtime_calls(box: dict) -> list[dict]:
    lines = (box["tmp"] / "runtime.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_exact_command_line_binds_environment_and_logs(box: dict) -> None:
    params = params_file(box, binds=["/srv/data"], args=["--cleanenv"], env={"FOO": "bar"})
    job_args = ["--job-id", "7", "--cluster-utils-server", "127.0.0.1:9", str(params), "x=1"]
    proc = run(box, *job_args)
    assert proc.returncode == 0, proc.stderr
    tmp, wd = box["tmp"], box["tmp"] / "wd"
    (call,) = runtime_calls(box)
    assert call["argv"] == [
        str(box["bin"] / "apptainer"),
        "run",
        *("--bind", "/tmp", "--bind", str(wd), "--bind", str(tmp), "--bind", "/srv/data"),
        "--pwd",
        str(tmp),
        "--containall",
        "--cleanenv",
        str(box["image"]),
        str(tmp / "inner.py"),
        *job_args,
    ]
    assert call["env"]["APPTAINERENV_FOO"] == "bar"
    inner = json.loads((tmp / "inner.json").read_text())
    assert inner == {"argv": job_args, "cwd": str(tmp), "FOO": "bar"}  # passed on unchanged
    assert "inner stdout" in (wd / "stdout.txt").read_text()
    assert "inner stderr" in (wd / "stderr.txt").read_text()
    assert "inner stdout" in proc.stdout and "inner stderr" in proc.stderr


def test_parameter_dict_form_exec_and_gpus(box: dict) -> None:
    params = {
        "singularity.image": str(box["image"]),
        "singularity.script": "inner.py",
        "singularity.use_run": False,
        "working_dir": str(box["tmp"] / "wd"),
    }
    proc = run(box, "--job-id", "1", "--parameter-dict", repr(params), CUDA_VISIBLE_DEVICES="0")
    assert proc.returncode == 0, proc.stderr
    argv = runtime_calls(box)[0]["argv"]
    assert argv[1] == "exec" and "--nv" in argv  # a GPU given -> --nv by default
    assert argv[-3:] == ["1", "--parameter-dict", repr(params)]


def test_by_hand_overrides_are_read_as_cluster_utils_reads_them(box: dict) -> None:
    params = params_file(box, env={"FOO": "bar"})
    proc = run(box, str(params), " singularity.env = {'FOO': 'baz'} ")  # spaces stripped
    assert proc.returncode == 0, proc.stderr
    assert runtime_calls(box)[0]["env"]["APPTAINERENV_FOO"] == "baz"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["seed=abc", "singularity.use_run=true"], ["'seed=\"abc\"'", "True for true"]),
        (["seed"], ["override 'seed': give key=value"]),
        (["--parameter-dict", "{'seed': "], ["is not a Python dict literal"]),
    ],
)
def test_unreadable_job_arguments_say_how_to_write_them(
    box: dict, args: list[str], says: list[str]
) -> None:
    if args[0] != "--parameter-dict":
        args = [str(params_file(box)), *args]
    proc = run(box, *args)
    assert proc.returncode == 1
    assert all(part in proc.stderr for part in says), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (box["tmp"] / "runtime.jsonl").exists()


def test_singularity_is_used_when_there_is_no_apptainer(box: dict) -> None:
    (box["bin"] / "apptainer").rename(box["bin"] / "singularity")
    path = f"{box['bin']}:{Path(sys.executable).parent}:/usr/bin:/bin"
    proc = run(box, str(params_file(box, nv=True, containall=False)), PATH=path)
    assert proc.returncode == 0, proc.stderr
    argv = runtime_calls(box)[0]["argv"]
    assert argv[0] == str(box["bin"] / "singularity")
    assert "--nv" in argv and "--containall" not in argv


@pytest.mark.parametrize("code", [0, 1, 3])
def test_exit_code_of_the_container_is_passed_on(box: dict, code: int) -> None:
    proc = run(box, str(params_file(box)), INNER_EXIT=str(code))
    assert proc.returncode == code


def test_sigterm_to_the_wrapper_reaches_the_script(box: dict) -> None:
    job = subprocess.Popen(
        [sys.executable, str(WRAPPER), str(params_file(box))],
        cwd=box["tmp"],
        env={**box["env"], "INNER_SLEEP": "30", "INNER_EXIT": "3"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (box["tmp"] / "inner.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    job.communicate(timeout=30)
    assert (box["tmp"] / "inner.json.signal").read_text() == "SIGTERM"
    assert job.returncode == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-singularity", "no singularity parameters"),
        ("no-image", "singularity.image"),
        ("not-executable", "is not executable; it needs a shebang"),
        ("no-runtime", "no container runtime on PATH (looked for apptainer, singularity)"),
    ],
)
def test_clear_errors_before_anything_starts(box: dict, change: str, message: str) -> None:
    params, env = params_file(box), {}
    if change == "no-singularity":
        params.write_text(json.dumps({"working_dir": str(box["tmp"] / "wd")}))
    elif change == "no-image":
        box["image"].unlink()
    elif change == "not-executable":
        box["script"].chmod(0o644)
    else:
        env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    proc = run(box, str(params), **env)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert not (box["tmp"] / "runtime.jsonl").exists()


@pytest.mark.slow
def test_hp_optimization_through_run_singularity_end_to_end(box: dict) -> None:
    index = write_stand_in_templates(box["tmp"] / "templates")
    settings = local_settings(
        box["tmp"],
        {
            "singularity.image": str(box["image"]),
            "singularity.script": "wrappers/run_learning.py",
            "config.config_templates": str(index),
            "learning_runs_per_job": 1,
            "training_iterations": 2,
            "learning_command": [sys.executable, str(STAND_IN_LEARNER)],
        },
        samples=2,
    )
    data = json.loads(settings.read_text())
    data["script_relative_path"] = "wrappers/run_singularity.py"
    settings.write_text(json.dumps(data))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", box["env"]["PATH"])
        patch.setenv("STAND_IN_RECORD", box["env"]["STAND_IN_RECORD"])
        proc = hp_optimization(settings)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = box["tmp"] / "results" / "local_test"
    working_dirs = [d for d in (results / "working_directories").iterdir() if d.is_dir()]
    assert len(working_dirs) >= 2
    for wd in working_dirs:
        assert (wd / "metrics.csv").exists()
        assert "exiting for resume" in (wd / "run_learning.log").read_text()
        assert "stand-in learner" in (wd / "stdout.txt").read_text()  # teed by the wrapper
    calls = runtime_calls(box)
    assert len(calls) >= 2 * len(working_dirs)  # every step went through the container
    inner_script = str(REPO / "wrappers" / "run_learning.py")
    for call in calls:  # the wrapper's named arguments, passed on unchanged
        argv = call["argv"]
        assert argv[1] == "run"
        assert argv[argv.index(inner_script) + 1].startswith("--job-id")


def test_each_bind_is_its_own_option_and_tilde_is_expanded(box: dict) -> None:
    home = box["tmp"] / "home"
    params = params_file(box, binds=["~/data:/data", "~/models:/models:ro", "rel"])
    proc = run(box, str(params), HOME=str(home))
    assert proc.returncode == 0, proc.stderr
    argv = runtime_calls(box)[0]["argv"]
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert binds[3:] == [f"{home}/data:/data", f"{home}/models:/models:ro", str(box["tmp"] / "rel")]
    assert all("," not in b for b in binds)


@pytest.mark.parametrize(
    ("singularity", "wd_name", "message"),
    [
        ({"binds": ["/data/a,b"]}, "wd", "singularity.binds[0]: '/data/a,b' contains ','"),
        (
            {"binds": ["/data/x^y"]},
            "wd",
            "singularity.binds[0]: the source '/data/x^y' contains '^'",
        ),
        ({"binds": ["/data/a:b:/c"]}, "wd", "'/c' is not a bind option"),
        ({"binds": ["/data/a:b"]}, "wd", "the destination 'b' is not an absolute path"),
        ({}, "wd:2024-01-01T10:00", "working_dir, the job's working directory, "),
        ({}, "wd,1", "contains ','"),
    ],
)
def test_paths_the_runtime_cannot_express_are_refused(
    box: dict, singularity: dict, wd_name: str, message: str
) -> None:
    params = params_file(box, **singularity)
    data = json.loads(params.read_text())
    data["working_dir"] = str(box["tmp"] / wd_name)
    params.write_text(json.dumps(data))
    proc = run(box, str(params))
    assert proc.returncode == 1
    assert str(params) in proc.stderr and message in proc.stderr
    assert "cannot be bound" in proc.stderr or "bind option" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (box["tmp"] / "runtime.jsonl").exists()


@pytest.mark.parametrize("key", ["MY-VAR", "1X", "A B", ""])
def test_env_keys_that_are_not_variable_names_are_refused(box: dict, key: str) -> None:
    proc = run(box, str(params_file(box, env={"GOOD": "1", key: "x"})))
    assert proc.returncode == 1
    assert f"singularity.env key {key!r} is not a variable name" in proc.stderr
    assert not (box["tmp"] / "runtime.jsonl").exists()


def test_job_resource_variables_survive_containall(box: dict) -> None:
    """--containall implies --cleanenv: what the learner sizes itself by is passed by name."""
    proc = run(box, str(params_file(box)), SLURM_CPUS_PER_TASK="2", CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 0, proc.stderr
    env = runtime_calls(box)[0]["env"]
    assert env["APPTAINERENV_SLURM_CPUS_PER_TASK"] == "2"
    assert env["APPTAINERENV_CUDA_VISIBLE_DEVICES"] == ""


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory outside /tmp, the working directory and the current directory."""
    directory = Path(tempfile.mkdtemp(prefix="rl-relay-test-", dir="/var/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_a_parameter_file_elsewhere_is_bound_read_only(box: dict, outside: Path) -> None:
    params = outside / "params.json"
    params.write_text(params_file(box).read_text())
    proc = run(box, str(params))
    assert proc.returncode == 0, proc.stderr
    argv = runtime_calls(box)[0]["argv"]
    assert f"{params}:{params}:ro" in argv
    inside = params_file(box)  # in the current directory: visible without a bind of its own
    (box["tmp"] / "runtime.jsonl").unlink()
    assert run(box, str(inside)).returncode == 0
    assert not any(a.endswith(":ro") for a in runtime_calls(box)[0]["argv"])


def test_a_script_outside_every_bind_is_refused(box: dict, outside: Path) -> None:
    script = outside / "inner.py"
    script.write_text(INNER)
    script.chmod(0o755)
    proc = run(box, str(params_file(box, script=str(script), binds=["/srv"])))
    assert proc.returncode == 1
    assert "is outside every directory bound into the container" in proc.stderr
    assert not (box["tmp"] / "runtime.jsonl").exists()


def test_a_sandbox_directory_is_an_image(box: dict) -> None:
    sandbox = box["tmp"] / "sandbox"
    sandbox.mkdir()
    proc = run(box, str(params_file(box, image=str(sandbox))))
    assert proc.returncode == 0, proc.stderr
    assert runtime_calls(box)[0]["argv"][-3] == str(sandbox)


def test_rl_relay_check_reports_unbindable_settings_before_submission(box: dict) -> None:
    settings = {
        "script_relative_path": "wrappers/run_singularity.py",
        "results_dir": str(box["tmp"] / "results"),
        "optimization_procedure_name": "run_2024-01-01T10:00",
        "fixed_params": {
            "singularity.image": str(box["image"]),
            "singularity.script": "inner.py",
            "singularity.binds": ["/data/a,b", "~/ok"],
            "singularity.env": {"BAD-KEY": "1", "GOOD": 2},
            "singularity.executable": str(box["bin"] / "apptainer"),
        },
    }
    problems = container.check_settings(settings, box["tmp"])
    assert [where for where, _ in problems] == ["fixed_params", "fixed_params", "results_dir"]
    text = "\n".join(message for _, message in problems)
    assert "singularity.binds[0]: '/data/a,b' contains ','" in text
    assert "singularity.env key 'BAD-KEY' is not a variable name" in text
    assert "run_2024-01-01T10:00' contains ':'" in text and "cannot be bound" in text
