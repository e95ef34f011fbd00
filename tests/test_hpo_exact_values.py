"""``rl-relay hpo``: parameter values and paths reach a job exactly, whatever they hold.

Whole local HPOs (``hpo.patches.job_script``) with the stand-in learner, which records the
arguments and the rl_config ``note`` it got: hostile values (tests/hostile_strings.py) as
learner arguments, as a sampled option and as a fixed value merged into a config;
directories with spaces and shell characters to run from, clone from, write results and
job scripts into; the same through run_singularity. On real Slurm: test_slurm_hpo.py.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, STAND_IN_LEARNER, local_settings, write_stand_in_templates
from hostile_strings import CANARY, CATALOGUE, hostile_text
from hpo_helpers import assert_no_survivors, run_hpo
from hypothesis import HealthCheck, example, given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st

from rl_relay.settings_file import load_settings

pytestmark = pytest.mark.slow

#: A fixed parameter merged into rl_config (cluster_utils allows only [0-9a-zA-Z_.:-] in names).
ODD_KEY = "odd"
#: Directory names: spaces, both quotes, expansion, command substitution, unicode.
ODD_DIR = 'dir with $HOME `touch rl-relay-canary` it\'s "q" ü'


def hostile_hpo(
    tmp: Path, argv: list[str], note: str, odd_value: str, fixed: dict[str, Any] | None = None
) -> tuple[Path, list[str]]:
    """Settings for one job of the stand-in learner, and the override strings that carry the
    values: the learner's arguments (``learning_command``), the one option of a sampled
    ``Discrete`` (rl_config's ``note``) and a fixed value under ``ODD_KEY``. Override strings
    are Python literals that nothing evaluates further: what the job must get."""
    index = write_stand_in_templates(tmp / "templates", {"note": "", ODD_KEY: ""})
    fixed = {
        "config.config_templates": str(index),
        "learning_runs_per_job": 1,
        "learning_command": [sys.executable, str(STAND_IN_LEARNER), *argv],
        f"config.rl_config.{ODD_KEY}": odd_value,
        **(fixed or {}),
    }
    space = [{"param": "config.rl_config.note", "distribution": "Discrete", "options": [note]}]
    return local_settings(tmp, {}, samples=1), [
        f"fixed_params={fixed!r}",
        f"optimized_params={space!r}",
    ]


def job_record(results: Path) -> dict[str, Any]:
    """What job 0's learner got: its arguments, ``note`` and the merged value of ODD_KEY."""
    wd = results / "working_directories" / "0"
    [call] = [json.loads(line) for line in (wd / "calls.jsonl").read_text().splitlines()]
    merged = json.loads((wd / "run_0.0-0" / "config" / "rl_config.json").read_text())
    return {"argv": call["argv"], "note": call["note"], "odd": merged[ODD_KEY]}


@settings_hypothesis(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@example(argv=CATALOGUE, note="".join(CATALOGUE), odd_value="\n".join(reversed(CATALOGUE)))
@given(argv=st.lists(hostile_text, max_size=8), note=hostile_text, odd_value=hostile_text)
def test_hostile_values_reach_the_learner_exactly(
    argv: list[str], note: str, odd_value: str
) -> None:
    CANARY.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        settings, overrides = hostile_hpo(tmp, argv, note, odd_value)
        code, out = run_hpo(settings, *overrides)
        assert code == 0, out[-3000:]
        got = job_record(tmp / "results" / "local_test")
        assert got == {"argv": argv, "note": note, "odd": odd_value}
        assert_no_survivors(tmp)
    assert not CANARY.exists()


def test_values_the_settings_loader_would_change_are_refused_before_any_job(
    tmp_path: Path,
) -> None:
    """The settings file is smart_settings' language: every string is evaluated as a
    Python f-string when it is read, so a backslash escape would be processed then. Since
    ``rl-relay hpo`` runs ``rl-relay check``'s rules, such a value is refused before anything
    runs, naming it and the fix; the rest of the catalogue reaches the job exactly."""
    index = write_stand_in_templates(tmp_path / "templates")
    fixed = {
        "config.config_templates": str(index),
        "learning_runs_per_job": 1,
        "learning_command": [sys.executable, str(STAND_IN_LEARNER), *CATALOGUE],
    }
    settings = local_settings(tmp_path, fixed, samples=1)
    read = load_settings(settings, [])["fixed_params"]["learning_command"][2:]
    changed = {w: r for w, r in zip(CATALOGUE, read, strict=True) if w != r}
    assert changed == {"a\\nb": "a\nb", "C:\\new\\table": "C:\new\table", "a\\\\b": "a\\b"}
    CANARY.unlink(missing_ok=True)
    code, out = run_hpo(settings)
    assert code == 1 and "Nothing was started" in out, out[-3000:]
    for written in changed:
        assert f"is written {written!r}" in out and "double each backslash" in out
    assert not (tmp_path / "results" / "local_test" / "working_directories").exists()
    kept = [w for w in CATALOGUE if w not in changed]  # the others go through untouched
    fixed["learning_command"] = [sys.executable, str(STAND_IN_LEARNER), *kept]
    settings = local_settings(tmp_path, fixed, samples=1)
    code, out = run_hpo(settings)
    assert code == 0, out[-3000:]
    wd = tmp_path / "results" / "local_test" / "working_directories" / "0"
    [call] = [json.loads(line) for line in (wd / "calls.jsonl").read_text().splitlines()]
    assert call["argv"] == kept
    assert not CANARY.exists()


def project_copy(directory: Path, git: bool) -> Path:
    """The parts of this repository a job runs (wrappers/, src/); with ``git``, a clone of a
    repository holding them (cluster_utils clones the working copy's ``origin``, a URL: a
    local path would have to have an ``origin`` of its own)."""
    source = directory.with_name(directory.name + " origin") if git else directory
    source.mkdir(parents=True)
    for part in ("wrappers", "src"):
        shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    if git:
        for cmd in (
            ["git", "init", "-q"],
            ["git", "add", "-A"],
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
            ["git", "clone", "-q", f"file://{source}", str(directory)],
        ):
            subprocess.run(cmd, cwd=source, check=True, capture_output=True)
    return directory


@pytest.mark.parametrize("clone", [False, True], ids=["run_in_working_dir", "clone"])
def test_an_hpo_from_directories_with_spaces_and_shell_characters(
    tmp_path: Path, clone: bool
) -> None:
    """The directory the HPO runs from (or the repository it clones), the virtual
    environment, ``results_dir``, ``optimization_procedure_name`` and
    ``CLUSTER_UTILS_CACHE_DIR`` (job scripts, the clone) hold spaces, quotes, command
    substitutions and ``$`` (not where cluster_utils clones: GitPython expands ``$VAR`` in
    the paths of repositories). cluster_utils 3.0 stops at ``cd: too many arguments``."""
    dollar = "" if clone else "$"
    base = tmp_path / ODD_DIR.replace("$", dollar)
    base.mkdir()
    project = project_copy(base / f"project {dollar}P", git=clone)
    venv = base / "venv 'v'"
    venv.symlink_to(sys.prefix)
    cache = base / f'cache "c" {dollar}C'
    cache.mkdir()
    index = write_stand_in_templates(base / "templates")
    fixed = {
        "config.config_templates": str(index),
        "learning_runs_per_job": 1,
        "learning_command": [sys.executable, str(STAND_IN_LEARNER)],
    }
    settings = local_settings(base, fixed, samples=2)
    data = json.loads(settings.read_text())
    name = f"hpo 'n' {dollar}N `x`"
    results = base / "results $R"
    data.update(
        results_dir=str(results),
        optimization_procedure_name=name,
        environment_setup={"virtual_env_path": str(venv)},
        run_in_working_dir=not clone,
    )
    settings.write_text(json.dumps(data))
    env = dict(os.environ, CLUSTER_UTILS_CACHE_DIR=str(cache))
    code, out = run_hpo(settings, cwd=project, env=env)
    assert code == 0, out[-3000:]
    assert len(list((results / name).glob("working_directories/*/metrics.csv"))) == 2, out
    [jobs_dir] = cache.glob("hpo*-jobs")
    script = next(jobs_dir.glob("*.sh")).read_text().splitlines()
    [main] = [shlex.split(line)[1] for line in script if line.startswith("cd ")]
    if clone:  # cluster_utils' clone, removed at the end
        assert Path(main).parent == cache and Path(main).name.startswith(name)
    else:
        assert main == str(project)
    assert f"source {shlex.quote(str(venv / 'bin' / 'activate'))}" in script
    assert not list(tmp_path.rglob("rl-relay-canary"))
    assert_no_survivors(tmp_path)


def test_hostile_values_through_run_singularity(tmp_path: Path) -> None:
    """run_singularity passes the parameter file's path into the container unchanged (the
    recording stand-in runtime runs the command on the host); the job inside reads it.
    Apptainer's bind syntax cannot express "," or ":" in a path: none here."""
    start = project_copy(tmp_path / "start dir $HOME `x` it's", git=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(REPO / "tests" / "stand_ins" / "apptainer", bin_dir / "apptainer")
    image = tmp_path / "image $i.sif"
    image.write_text("not really an image")
    container = {"singularity.image": str(image), "singularity.script": "wrappers/run_learning.py"}
    note, odd = "`touch rl-relay-canary` $HOME it's", 'a"b\\nc'
    settings, overrides = hostile_hpo(tmp_path, CATALOGUE, note, odd, fixed=container)
    data = json.loads(settings.read_text())
    data["script_relative_path"] = "wrappers/run_singularity.py"
    data["run_in_working_dir"] = True
    settings.write_text(json.dumps(data))
    record = tmp_path / "runtime.jsonl"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STAND_IN_RECORD=str(record))
    CANARY.unlink(missing_ok=True)
    code, out = run_hpo(settings, *overrides, cwd=start, env=env)
    assert code == 0, out[-3000:]
    results = tmp_path / "results" / "local_test"
    assert job_record(results) == {"argv": CATALOGUE, "note": note, "odd": odd}
    params_file = results / "working_directories" / "0" / "job_parameters.json"
    for call in [json.loads(line) for line in record.read_text().splitlines()]:
        assert call["argv"][-3].startswith("--job-id=") and call["argv"][-1] == str(params_file)
    assert not CANARY.exists() and not list(tmp_path.rglob("rl-relay-canary"))
    assert_no_survivors(tmp_path)


def test_a_name_slurm_job_files_cannot_hold_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    """A newline in the procedure's name cannot be written into an ``#SBATCH`` line."""
    settings, _ = hostile_hpo(tmp_path, [], "", "")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_relay.cli",
            "hpo",
            str(settings),
            'optimization_procedure_name="a\\nb"',
        ],
        cwd=REPO,
        env=dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "optimization_procedure_name: 'a\\nb' holds a control character" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "results").exists()
