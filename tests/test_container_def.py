"""containers/rl_relay.def: parsed with spython, the sections a job relies on are there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO
from spython.main.parse.parsers import SingularityParser

DEF_FILE = REPO / "containers" / "rl_relay.def"


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
