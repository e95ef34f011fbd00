"""containers/rl_relay.def: parsed with spython, the sections a job relies on are there,
and %post and %test run for real in the bubblewrap sandbox (what that proves and what only
a real ``apptainer build`` can: docs/containers.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from spython.main.parse.parsers import SingularityParser

sys.path.insert(0, str(REPO / "tests" / "stand_ins"))
import bubblewrap  # noqa: E402
from sandbox_image import read_definition, write_sandbox  # noqa: E402

DEF_FILE = REPO / "containers" / "rl_relay.def"
RUNTIME = REPO / "tests" / "stand_ins" / "apptainer_bwrap"


@pytest.fixture(scope="module")
def recipe():
    (recipe,) = SingularityParser(str(DEF_FILE)).recipe.values()
    return recipe


def section(name: str) -> list[str]:
    """The raw lines of one %section (spython folds %runscript into its own script)."""
    text = DEF_FILE.read_text()
    match = re.search(rf"^%{name}\n(.*?)(?=^%|\Z)", text, re.S | re.M)
    assert match, f"no %{name} section"
    return [line.strip() for line in match[1].splitlines() if line.strip()]


def test_base_image_and_project_files(recipe) -> None:
    assert DEF_FILE.read_text().startswith("Bootstrap: docker\n")
    assert recipe.fromHeader.startswith("python:3.11")
    copied = {line.split()[0] for line in recipe.files}
    assert {"pyproject.toml", "constraints.txt", "src"} <= copied
    for source in copied:
        assert (REPO / source).exists(), source


def test_installs_pinned_cpu_torch_then_the_project(recipe) -> None:
    install = "\n".join(recipe.install)
    assert "-c /opt/rl-relay/constraints.txt torch" in install
    assert "--index-url {{ TORCH_INDEX }}" in install
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cpu" in section("arguments")
    assert re.search(r"pip install -c /opt/rl-relay/constraints.txt /opt/rl-relay$", install, re.M)
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text()


def test_thread_variables_follow_the_job(recipe) -> None:
    environ = "\n".join(recipe.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        assert f"{name}=" in environ
    assert "SLURM_CPUS_PER_TASK" in environ


def test_runscript_ends_by_running_the_given_command() -> None:
    assert section("runscript")[-1] == 'exec "$@"'


def test_help_says_how_to_build() -> None:
    assert any(
        "apptainer build rl_relay.sif containers/rl_relay.def" in line for line in section("help")
    )
    assert Path(DEF_FILE).read_text().count("%post") == 1


# -- %post and %test, run for real ------------------------------------------------------------

#: The build argument a user passes; the default (download.pytorch.org) is not reachable here.
BUILD_ARGS = {"TORCH_INDEX": "https://pypi.org/simple"}


def local_wheel_dirs() -> list[str]:
    """The local wheel directories this machine's pip finds packages in (``find-links``).

    The CPU torch wheel is reachable here only from such a directory; the build gets it as
    ``PIP_FIND_LINKS`` and everything else from PyPI, as a real build does.
    """
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    values = [os.environ.get("PIP_FIND_LINKS", "")]
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.endswith(".find-links"):
            values.append(value.strip("'"))
    words = (w.removeprefix("file://") for v in values for w in v.split())
    return sorted({w for w in words if w.startswith("/") and Path(w).is_dir()})


@pytest.mark.slow
def test_post_and_test_sections_build_an_image_a_job_runs_in(tmp_path: Path) -> None:
    """%files and %post (with the build arguments) in a throwaway Python environment inside
    the sandbox, then %test inside the sandbox with that environment as the image, then a
    real PPO job through run_singularity in it."""
    problem = bubblewrap.problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"the image build test cannot run: {problem}")
        pytest.skip(problem)
    definition = read_definition(DEF_FILE)
    base = Path(os.path.realpath(sys.executable)).parent.parent  # what python:3.11 gives
    env_dir = tmp_path / "env"
    subprocess.run([str(base / "bin" / "python3"), "-m", "venv", str(env_dir)], check=True)
    files = tmp_path / "files"
    for source, dest in definition.files:
        target = files / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (REPO / source).is_dir() else shutil.copy2
        copy(REPO / source, target)
    image = write_sandbox(
        tmp_path / "image", definition, [str(env_dir), str(base)], str(env_dir / "bin")
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apptainer").symlink_to(RUNTIME)
    wheels = local_wheel_dirs()
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    env["APPTAINERENV_PIP_FIND_LINKS"] = " ".join(wheels)
    binds = [f"{files / 'opt' / 'rl-relay'}:/opt/rl-relay"]
    binds += [f"{d}:{d}:ro" for d in wheels]
    post = definition.script("post", BUILD_ARGS)
    assert "{{" not in post
    build = subprocess.run(
        ["apptainer", "exec", "--containall", "--writable"]
        + [*(f"--bind={b}" for b in binds), str(image)]
        + ["/bin/sh", "-c", post],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    torch_version = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert torch_version.split("+")[0] == "2.13.0"  # pinned by constraints.txt

    test = subprocess.run(
        ["apptainer", "test", "--containall", str(image)], env=env, capture_output=True, text=True
    )
    assert test.returncode == 0, test.stderr[-3000:]
    assert "rl-relay image ok" in test.stdout

    params = tmp_path / "params.json"
    params.write_text(
        json.dumps(
            {
                "singularity.image": str(image),
                "singularity.script": "wrappers/run_learning.py",
                "config.config_templates": str(REPO / "hp_optim" / "config_templates_ppo.json"),
                "config.rl_common_config.total_timesteps": 2000,
                "config.rl_common_config.eval_episodes": 2,
                "config.env_config.n_envs": 2,
                "config.rl_config.n_steps": 16,
                "config.rl_config.batch_size": 32,
                "config.rl_config.n_epochs": 2,
                "learning_runs_per_job": 1,
                "working_dir": str(tmp_path / "wd"),
            }
        )
    )
    job = subprocess.run(
        [sys.executable, "-I", "-S", str(REPO / "wrappers" / "run_singularity.py"), str(params)],
        cwd=REPO,
        env=dict(os.environ, PATH=env["PATH"]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    state = json.loads((tmp_path / "wd" / "restarts.json").read_text())
    assert state["runs"][0]["done"] and state["runs"][0]["reward"] > 0
    assert (tmp_path / "wd" / "run_0.0-0" / "model.zip").exists()
