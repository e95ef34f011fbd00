"""rl-relay check: every problem found before submission, with file, key and what to do."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, local_settings, stand_in_settings
from hostile_strings import CATALOGUE
from hypothesis import given
from hypothesis import settings as settings_hypothesis
from hypothesis import strategies as st


def check(
    settings: Path,
    *overrides: str,
    env: dict | None = None,
    local: bool = True,
    cluster_utils: bool = False,
) -> subprocess.CompletedProcess:
    flags = (["--local"] if local else []) + (["--cluster-utils"] if cluster_utils else [])
    return subprocess.run(
        [sys.executable, "-m", "rl_relay.cli", "check", *flags, str(settings), *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env or dict(os.environ),
    )


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    return stand_in_settings(tmp_path, learning_runs_per_job=1)


def edit(path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_good_settings_pass_with_exit_0(settings: Path) -> None:
    proc = check(settings)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All checks passed." in proc.stdout
    assert "ok    a sampled configuration" in proc.stdout


def test_every_problem_is_reported_with_file_and_key(settings: Path) -> None:
    def break_it(s: dict) -> None:
        s["fixed_params"]["config.rl_config.nokey"] = 1
        s["optimization_setting"]["metric_to_optimize"] = "reward"
        s["no_user_interaction"] = False
        del s["environment_setup"]
        del s["optimization_setting"]["run_local"]
        s["script_relative_path"] = "wrappers/nope.py"

    proc = check(edit(settings, break_it))
    assert proc.returncode == 1
    out = proc.stdout
    expected = [
        "fixed_params: parameter 'config.rl_config.nokey'",
        "has no key 'nokey'",
        "metric_to_optimize: 'reward' is never reported",
        "no_user_interaction: is not true",
        "environment_setup: cluster_utils 3 fails with AttributeError",
        "optimization_setting.run_local: is not set",
        "script_relative_path: ",
        "skip  search space",
    ]
    for text in expected:
        assert text in out, text
    assert all(
        line.startswith(f"  FAIL  {settings}: ") for line in out.splitlines() if "FAIL" in line
    )


def test_search_space_types_and_indices(settings: Path) -> None:
    def add(s: dict) -> None:
        s["optimized_params"] += [
            {
                "param": "config.rl_config.ticks",
                "distribution": "TruncatedNormal",
                "bounds": [1, 5],
            },
            {
                "param": "config.rl_config.policy_kwargs.net_arch:4",
                "distribution": "IntNormal",
                "bounds": [1, 5],
            },
            {"param": "config.rl_config.ticks", "distribution": "Gaussian", "bounds": [1, 5]},
        ]

    proc = check(edit(settings, add))
    assert proc.returncode == 1
    assert "optimized_params[2]: TruncatedNormal samples a float" in proc.stdout
    assert "use IntNormal/IntLogNormal for integers" in proc.stdout
    assert "optimized_params[3]: IntNormal samples 1" in proc.stdout
    assert "index 4 is out of range" in proc.stdout
    assert "optimized_params[4].distribution: 'Gaussian' is not one of" in proc.stdout


def test_command_line_overrides_are_read_like_cluster_utils(settings: Path) -> None:
    results = json.loads(settings.read_text())["results_dir"]
    Path(results, "local_test").mkdir(parents=True)
    assert check(settings).returncode == 0  # rl-relay hpo continues it
    proc = check(settings, cluster_utils=True)  # plain cluster_utils would ask to delete it
    assert proc.returncode == 1
    assert "optimization_procedure_name: the results directory" in proc.stdout
    assert (
        check(settings, 'optimization_procedure_name="another"', cluster_utils=True).returncode == 0
    )


def test_slurm_requirements_when_sbatch_is_on_path(settings: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text("#!/bin/sh\nexit 0\n")  # only its presence matters to cluster_utils
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc = check(settings, env=env, local=False)
    assert proc.returncode == 1
    assert "(engine: slurm)" in proc.stdout
    for key in ("partition", "memory_in_mb", "request_time"):
        assert f"cluster_requirements.{key}: is missing, and slurm" in proc.stdout
    assert "cluster_requirements.request_cpus" not in proc.stdout


def test_unreadable_settings_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    proc = check(bad)
    assert proc.returncode == 1
    assert f"FAIL {bad}: cannot be read as cluster_utils reads it" in proc.stdout


def test_overrides_cluster_utils_cannot_read_say_how_to_write_them(settings: Path) -> None:
    proc = check(
        settings,
        "optimization_procedure_name=run_2",
        'early_stopping={"rule": "median", "startup_jobs": null, "x": true}',
    )
    assert proc.returncode == 1
    out = proc.stdout
    assert f"FAIL {settings}: override 'optimization_procedure_name=run_2'" in out
    assert """quote text, e.g. 'optimization_procedure_name="run_2"'""" in out
    assert "write None for null, True for true" in out
    assert "Failed to parse value" not in out  # cluster_utils' own message says neither


#: Python literals as the overrides' values, and the same data written as JSON (true, null)
_literals = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(
    key=st.sampled_from(["k", " k ", ""]),
    value=st.one_of(
        st.text(max_size=30),
        st.sampled_from(CATALOGUE),
        _literals.map(repr),
        _literals.map(json.dumps),
    ),
)
@settings_hypothesis(max_examples=400, deadline=None)
def test_an_override_is_refused_exactly_when_cluster_utils_cannot_read_it(
    key: str, value: str
) -> None:
    from cluster_utils.base.settings import add_cmd_line_params

    from rl_relay.override_strings import unreadable_override

    override = f"{key}={value}"
    try:
        add_cmd_line_params({"k": 0}, [override])
        readable = True
    except Exception:  # noqa: BLE001 - cluster_utils' SettingsError
        readable = False
    problem = unreadable_override(override)
    assert (problem is None) == readable, (override, problem)
    if problem:
        assert problem.startswith("override ") and len(problem) < 400


def test_learner_schema_bounds_env_id_and_container(tmp_path: Path) -> None:
    settings = local_settings(
        tmp_path,
        {
            "config.config_templates": str(REPO / "hp_optim" / "config_templates_ppo.json"),
            "config.env_config.id": "NoSuchEnv-v0",
            "singularity.image": str(tmp_path / "missing.sif"),
            "singularity.script": "wrappers/run_learning.py",
        },
    )

    def change(s: dict) -> None:
        s["script_relative_path"] = "wrappers/run_singularity.py"
        s["optimized_params"] = [
            {
                "param": "config.rl_config.learning_rate",
                "distribution": "TruncatedNormal",
                "bounds": [-0.01, 0.01],
            },
            {
                "param": "config.rl_config.gamma",
                "distribution": "TruncatedNormal",
                "bounds": [0.9, 0.999],
            },
        ]

    proc = check(edit(settings, change))
    assert proc.returncode == 1
    out = proc.stdout
    assert (
        "optimized_params[0]: config.rl_config.learning_rate = -0.01 (an end of its range)"
        " is not allowed by the learner" in out
    )
    assert "learning_rate: -0.01 is less than or equal to the minimum of 0" in out
    assert "optimized_params[1]" not in out
    assert "'NoSuchEnv-v0' is not a registered Gymnasium environment" in out
    assert f"singularity.image {tmp_path / 'missing.sif'} does not exist" in out


def test_values_and_paths_plain_cluster_utils_would_alter_are_named(tmp_path: Path) -> None:
    """Plain cluster_utils pastes values and paths into its job script; ``rl-relay hpo``
    passes a parameter file and quotes every path (hpo.patches.job_script), so only
    ``--cluster-utils`` names them."""
    command = [sys.executable, "-c", "pass", "$HOME/logs", "--note=it's"]
    settings = stand_in_settings(tmp_path, learning_runs_per_job=1, learning_command=command)
    venv = tmp_path / "my venv"
    venv.symlink_to(sys.prefix)
    edit(settings, lambda data: data.update(environment_setup={"virtual_env_path": str(venv)}))
    env = dict(os.environ, CLUSTER_UTILS_CACHE_DIR=str(tmp_path / "cache dir"))
    proc = check(settings, env=env)
    assert proc.returncode == 0, proc.stdout
    assert "cluster_utils' job script" not in proc.stdout
    proc = check(settings, env=env, cluster_utils=True)
    assert proc.returncode == 1
    out = proc.stdout
    assert f"FAIL  {settings}: fixed_params.learning_command[3]: '$HOME/logs' would" in out
    assert "where $ is interpreted; start the HPO with `rl-relay hpo`" in out
    assert f'FAIL  {settings}: fixed_params.learning_command[4]: "--note=it\'s"' in out
    assert "a ' makes Python quote the value" in out
    assert "learning_command[2]" not in out  # "pass" is harmless
    assert f"environment_setup.virtual_env_path: '{venv}' would be pasted unquoted" in out
    assert f"CLUSTER_UTILS_CACHE_DIR (the jobs directory): '{tmp_path / 'cache dir'}'" in out
    assert "script_relative_path" not in out  # wrappers/run_learning.py is harmless


def test_values_the_settings_loader_changes_are_named(tmp_path: Path) -> None:
    """cluster_utils' loader evaluates every string of the settings file as an f-string
    (smart_settings' dynamic values): a backslash escape changes before any job sees it."""
    command = [sys.executable, "-c", "pass", "C:\\new", "x{1+1}", "plain"]
    settings = stand_in_settings(tmp_path, learning_runs_per_job=1, learning_command=command)
    proc = check(settings, "fixed_params.learning_runs_per_job=1")
    assert proc.returncode == 1
    out = proc.stdout
    assert (
        f"FAIL  {settings}: fixed_params.learning_command[3]: is written 'C:\\\\new' but"
        " cluster_utils reads 'C:\\new': it evaluates every string" in out
    )
    assert "double each backslash to keep it" in out
    assert "learning_command[4]" not in out  # "x{1+1}" is a dynamic value on purpose
    assert out.count("FAIL") == 1
    doubled = [sys.executable, "-c", "pass", "C:\\\\new"]
    proc = check(settings, f"fixed_params.learning_command={doubled!r}")  # not evaluated
    assert "values as written reach the jobs" in proc.stdout and proc.returncode == 0


def test_names_slurm_job_files_cannot_hold_are_named(tmp_path: Path) -> None:
    settings = stand_in_settings(tmp_path, learning_runs_per_job=1)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\n")
    (bin_dir / "sbatch").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc = check(settings, 'optimization_procedure_name="two\\nlines"', env=env, local=False)
    assert proc.returncode == 1
    assert "optimization_procedure_name: 'two\\nlines' holds a control character" in proc.stdout


def _through_cluster_utils_job_script(value: str) -> str:
    """What a job gets for ``value``: cluster_utils 3.0 writes the parameters' repr into
    ``--parameter-dict "..."`` of a bash script (server/job.py); the client literal_evals."""
    import ast

    script = f'printf %s "{ {"v": value} }"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    try:
        return ast.literal_eval(out.stdout)["v"]
    except (SyntaxError, ValueError, KeyError, TypeError):
        return "<not a dict>"


@settings_hypothesis(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=12))
def test_a_value_the_check_lets_through_reaches_the_job_unchanged(value: str) -> None:
    from rl_relay.check.settings_checks import _shell_problem

    if _shell_problem("f: k", value) is None:
        assert _through_cluster_utils_job_script(value) == value


@pytest.mark.parametrize("value", ["a$b", "`id`", 'say "hi"', "C:\\new", "it's"])
def test_each_character_the_check_names_does_change_the_value(value: str) -> None:
    from rl_relay.check.settings_checks import _shell_problem

    assert _shell_problem("f: k", value) is not None
    assert _through_cluster_utils_job_script(value) != value


def test_a_pbt_file_names_each_problem_once(tmp_path: Path) -> None:
    """The optimiser's own settings check and PBT's whole-file check both read
    ``optimizer_settings``; the user must see each problem once, not once per check."""
    data = json.loads((REPO / "hp_optim/hp_optim_ppo_pbt.json").read_text())
    data["optimizer_settings"]["quantile_fraction"] = 0.75  # optimizer_settings' own problem
    data["fixed_params"]["learning_runs_per_job"] = 2  # a whole-file problem
    path = tmp_path / "pbt.json"
    path.write_text(json.dumps(data))
    proc = check(path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert out.count("optimizer_settings.quantile_fraction") == 1, out
    assert out.count("fixed_params.learning_runs_per_job") == 1, out


def test_every_key_cluster_utils_or_rl_relay_reads_is_accepted(settings: Path) -> None:
    """The optional sections of cluster_utils 3.0's hp_optimization, and rl-relay's
    ``early_stopping``, are no unknown keys."""
    from rl_relay.check.rules import check_settings_file

    def add(s: dict) -> None:
        s.update(
            git_params={"branch": "main"},
            kill_bad_jobs_early=False,
            early_killing_params={},
            remove_jobs_dir=True,
            early_stopping={"rule": "asha"},
        )
        s["optimization_setting"]["n_completed_jobs_before_resubmit"] = 2
        s["fixed_params"]["training_iterations"] = 2  # early stopping needs a boundary

    verdict = check_settings_file(edit(settings, add), [], local=True, cwd=REPO)
    assert verdict.problems == (), verdict.problems
