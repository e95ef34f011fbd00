"""Every bad input: exit code 1, one message naming the file and the key, no traceback, and
nothing already done lost. Checked over generated catalogues (hypothesis), in-process.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import STAND_IN_LEARNER, stand_in_params, write_stand_in_templates
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rl_relay import atomic, exit_codes
from rl_relay.check import command as check
from rl_relay.job.run_learning import main

SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.fixture(autouse=True)
def _restore_process_state() -> Iterator[None]:
    """main() installs signal handlers and log handlers, as a job process does."""
    handlers = {
        sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
    }
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A job that has finished one of its two runs: what must never be lost."""
    tmp = tmp_path_factory.mktemp("finished")
    params = stand_in_params(tmp, max_attempts=1)
    # run 1 fails: the job gives up after run 0 is done
    rl = json.loads((tmp / "templates" / "rl.json").read_text())
    (tmp / "templates" / "rl.json").write_text(json.dumps({**rl, "fail_dirs": ["run_1.0-0"]}))
    (tmp / "params.json").write_text(json.dumps(params))
    assert main(["run_learning.py", str(tmp / "params.json")]) == exit_codes.FAILURE
    (tmp / "templates" / "rl.json").write_text(json.dumps(rl))
    return tmp, params


def copy_job(finished: tuple[Path, dict[str, Any]], target: Path) -> dict[str, Any]:
    source, params = finished
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source / "wd", target / "wd")
    return {**params, "working_dir": str(target / "wd")}


BAD_VALUES = {
    "learning_runs_per_job": ["abc", 0, -1, 1.5, [2], {"a": 1}],
    "max_attempts": [0, "3", 2.5],
    "training_iterations": [0, "two", None],
    "seed": [-1, "x", 0.5],
    "seed_scope": ["other", 3],
    "learning_command": [5, [], ["no-such-learner-xyz"], [1, 2]],
    "learning_timeout": [-1, 0, "soon"],
    "reward_column": ["", 5],
    "working_dir": ["", 5],
    "config": [{"config_templates": "/no/such/index.json"}, {"config_templates": 7}],
}
KEYS = {**{key: key for key in BAD_VALUES}, "config": "config_templates"}

bad_key_values = st.sampled_from(sorted(BAD_VALUES)).flatmap(
    lambda key: st.tuples(st.just(key), st.sampled_from(BAD_VALUES[key]))
)
bad_overrides = st.sampled_from(
    [
        ({"rl_config": {"no_such_key": 1}}, "no_such_key"),
        ({"rl_config": {"ticks": "many"}}, "ticks"),
        ({"rl_config": {"policy_kwargs": {"net_arch:7": 3}}}, "net_arch:7"),
        ({"rl_common_config": {"seed": 4}}, "rl_common_config.seed"),
        ({"rl_config": {"save_path": "/x"}}, "rl_config.save_path"),
        ({"nope": {"x": 1}}, "nope"),
    ]
)
unknown_names = st.sampled_from(
    ["learning_runs_per_jobs", "max_attempt", "trainings_iterations", "rl_config", "sed"]
)


def run_main(params_file: Path, *extra: str) -> int:
    return main(["run_learning.py", str(params_file), *extra])


def assert_one_clear_error(caplog: pytest.LogCaptureFixture, *names: str) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "no error message"
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"
    text = "\n".join(r.getMessage() for r in errors)
    for name in names:
        assert name in text, (name, text)


def state_unchanged(target: Path, finished: tuple[Path, dict[str, Any]]) -> bool:
    source, _ = finished
    return (target / "wd" / "restarts.json").read_bytes() == (
        source / "wd" / "restarts.json"
    ).read_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=SUPPRESS)
@given(bad=bad_key_values)
def test_bad_parameter_values(finished, tmp_path, caplog, bad) -> None:
    key, value = bad
    params = copy_job(finished, tmp_path / "job")
    params[key] = value
    path = tmp_path / "job" / "params.json"
    path.write_text(json.dumps(params))
    caplog.clear()
    assert run_main(path) == exit_codes.FAILURE
    assert_one_clear_error(caplog, str(path), KEYS[key])
    assert state_unchanged(tmp_path / "job", finished)


@settings(max_examples=20, deadline=None, suppress_health_check=SUPPRESS)
@given(bad=bad_overrides, unknown=st.one_of(st.none(), unknown_names))
def test_bad_template_overrides_and_unknown_names(finished, tmp_path, caplog, bad, unknown) -> None:
    change, name = bad
    params = copy_job(finished, tmp_path / "job")
    params["config"] = {**params["config"], **change}
    if unknown is not None:
        params[unknown] = 1
    path = tmp_path / "job" / "params.json"
    path.write_text(json.dumps(params))
    caplog.clear()
    assert run_main(path) == exit_codes.FAILURE
    assert_one_clear_error(caplog, name, *([unknown] if unknown else []))
    assert state_unchanged(tmp_path / "job", finished)


@settings(max_examples=20, deadline=None, suppress_health_check=SUPPRESS)
@given(
    content=st.sampled_from(["[1, 2]", '"params"', "3", "{not json", "null"]),
    extra=st.sampled_from([(), ("foo",), ("learning_runs_per_job=abc",), ("a.b=1",)]),
)
def test_unreadable_parameter_files_and_override_strings(
    finished, tmp_path, caplog, content, extra
) -> None:
    copy_job(finished, tmp_path / "job")
    path = tmp_path / "job" / "params.json"
    path.write_text(content)
    caplog.clear()
    assert run_main(path, *extra) == exit_codes.FAILURE
    assert_one_clear_error(caplog, str(path))
    assert state_unchanged(tmp_path / "job", finished)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("foo", "give key=value"),
        ("learning_runs_per_job=abc", "quote text, e.g. 'learning_runs_per_job=\"abc\"'"),
        ("learning_runs_per_job=[true]", "write True for true"),
        ("a.b=1", "key=value with a Python literal"),  # readable, but no such path
    ],
)
def test_malformed_override_strings_on_good_parameters(
    finished, tmp_path, caplog, extra, says
) -> None:
    params = copy_job(finished, tmp_path / "job")
    path = tmp_path / "job" / "params.json"
    path.write_text(json.dumps(params))
    caplog.clear()
    assert run_main(path, extra) == exit_codes.FAILURE
    assert_one_clear_error(caplog, str(path), says)
    assert state_unchanged(tmp_path / "job", finished)


def test_a_rerun_whose_reward_column_is_still_wrong(make_job, tmp_path, caplog) -> None:
    params = make_job(rl={"column": "eval/mean_reward"}, learning_runs_per_job=1)
    for _ in range(2):  # the first run finds it, the second still has it wrong
        caplog.clear()
        assert run_main(params) == exit_codes.FAILURE
        assert_one_clear_error(caplog, "reward_column 'rollout/ep_rew_mean' is not a column")


def test_a_state_whose_reward_source_is_empty(make_job, tmp_path, caplog) -> None:
    params = make_job(learning_runs_per_job=1)
    assert run_main(params) == exit_codes.SUCCESS
    state_file = tmp_path / "wd" / "restarts.json"
    state = json.loads(state_file.read_text())
    state["runs"][0].update(reward=None, reward_source="")
    state_file.write_text(json.dumps(state))
    caplog.clear()
    assert run_main(params) == exit_codes.FAILURE
    assert_one_clear_error(caplog, str(state_file), "reward_source is empty")


@settings(max_examples=12, deadline=None, suppress_health_check=SUPPRESS)
@given(fail_at=st.integers(1, 12))
def test_disk_full_at_any_write(make_job, tmp_path, caplog, monkeypatch, fail_at) -> None:
    """ENOSPC at the n-th atomic write: exit 1 with what and where; started again with
    space, the job ends exactly as one that never saw a full disk."""
    work = tmp_path / f"n{fail_at}"
    shutil.rmtree(work, ignore_errors=True)
    params = make_job(learning_runs_per_job=2, training_iterations=2, working_dir=str(work))
    real = atomic.atomic_write_bytes
    calls = {"n": 0}

    def full_disk(target: Any, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        real(target, data)

    monkeypatch.setattr(atomic, "atomic_write_bytes", full_disk)
    caplog.clear()
    code = run_main(params)
    if calls["n"] >= fail_at:
        assert code == exit_codes.FAILURE
        assert_one_clear_error(caplog, "No space left on device", "free disk space")
        assert "nothing done so far is lost" in caplog.text
    monkeypatch.setattr(atomic, "atomic_write_bytes", real)
    assert run_main(params) == exit_codes.SUCCESS
    state = json.loads((work / "restarts.json").read_text())
    assert all(r["done"] and not r["failures"] for r in state["runs"])


# -- rl-relay check --------------------------------------------------------------------------

GOOD_SETTINGS = (
    Path(__file__).resolve().parent.parent / "hp_optim" / "hp_optim_ppo_local_large.json"
)
BAD_SETTINGS = st.sampled_from(
    [
        (lambda s: s.update(optimized_params={"param": "x"}), "optimized_params"),
        (
            lambda s: s["optimized_params"][0].update(bounds=["a", "b"]),
            "optimized_params[0].bounds",
        ),
        (lambda s: s["optimized_params"][0].update(bounds=[1e-4]), "optimized_params[0].bounds"),
        (lambda s: s["optimized_params"][0].pop("param"), "optimized_params[0]"),
        (lambda s: s.update(fixed_params=[1, 2]), "fixed_params"),
        (lambda s: s.update(optimization_setting="fast"), "optimization_setting"),
        (lambda s: s.update(cluster_requirements=3), "cluster_requirements"),
        (
            lambda s: s["optimized_params"].append(
                {
                    "param": "config.rl_common_config.seed",
                    "distribution": "IntNormal",
                    "bounds": [0, 9],
                }
            ),
            "rl_common_config.seed",
        ),
        (
            lambda s: s["optimized_params"].append(
                {
                    "param": "config.rl_config.save_path",
                    "distribution": "Discrete",
                    "options": ["a"],
                }
            ),
            "rl_config.save_path",
        ),
        (lambda s: s["fixed_params"].update(learning_runs_per_jobs=2), "learning_runs_per_jobs"),
        (
            lambda s: s["optimized_params"].append(
                {
                    "param": "rl_config.learning_rate",
                    "distribution": "TruncatedLogNormal",
                    "bounds": [1e-4, 1e-2],
                }
            ),
            "rl_config.learning_rate",
        ),
        (lambda s: s["fixed_params"].update(working_dir="/tmp/x"), "working_dir"),
        (lambda s: s["fixed_params"].update(seed=1.5), "seed"),
        (lambda s: s["optimized_params"][0].update(bounds=[0.1, 0.01]), "optimized_params[0]"),
    ]
)


@settings(max_examples=30, deadline=None, suppress_health_check=SUPPRESS)
@given(bad=BAD_SETTINGS)
def test_check_reports_bad_settings_without_a_traceback(tmp_path, capsys, bad) -> None:
    change, key = bad
    data = json.loads(GOOD_SETTINGS.read_text())
    data["results_dir"] = str(tmp_path / "results")
    change(data)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    capsys.readouterr()
    code = check.run(argparse.Namespace(settings_file=path, overrides=[], local=True))
    out = capsys.readouterr().out
    assert code == 1, out
    fails = [line for line in out.splitlines() if "FAIL" in line]
    assert fails and all(line.startswith(f"  FAIL  {path}: ") for line in fails), out
    assert any(key in line for line in fails), (key, out)


def test_check_writes_a_sample_of_integer_options_into_a_null_template_value(
    tmp_path, capsys
) -> None:
    index = write_stand_in_templates(tmp_path / "templates", {"choice": None})
    data = json.loads(GOOD_SETTINGS.read_text())
    data["results_dir"] = str(tmp_path / "results")
    data["fixed_params"] = {
        "config.config_templates": str(index),
        "learning_command": [sys.executable, str(STAND_IN_LEARNER)],
    }
    data["optimized_params"] = [
        {"param": "config.rl_config.choice", "distribution": "Discrete", "options": [16, 32, 64]}
    ]
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    code = check.run(argparse.Namespace(settings_file=path, overrides=[], local=True))
    out = capsys.readouterr().out
    assert code == 0, out  # before: TypeError: Object of type int64 is not JSON serializable


# -- rl-relay check and rl-relay hpo: one set of rules ---------------------------------------

REPO = GOOD_SETTINGS.parent.parent
PBT_SETTINGS = REPO / "hp_optim" / "hp_optim_ppo_pbt.json"


def _setting(**values: Any) -> Any:
    return lambda s: s["optimization_setting"].update(values)


def _name(value: str) -> Any:
    return lambda s: s.update(optimization_procedure_name=value)


#: id -> (base settings, change, what the message must say). Each of these ran (or ran
#: jobs, looped, or moved directories) under rl-relay hpo before it applied check's rules.
REFUSED = {
    "pbt-fewer-jobs-per-iteration-than-members": (
        PBT_SETTINGS,
        _setting(n_jobs_per_iteration=2),
        "optimization_setting.n_jobs_per_iteration: is 2",
    ),
    "pbt-three-runs-per-member": (
        PBT_SETTINGS,
        lambda s: s["fixed_params"].update(learning_runs_per_job=3),
        "fixed_params.learning_runs_per_job: is 3",
    ),
    "samples-a-string": (
        GOOD_SETTINGS,
        _setting(number_of_samples="10"),
        "optimization_setting.number_of_samples: '10' is not of type 'integer'",
    ),
    "no-jobs-per-iteration": (
        GOOD_SETTINGS,
        _setting(n_jobs_per_iteration=0),
        "optimization_setting.n_jobs_per_iteration: 0 is less than the minimum of 1",
    ),
    "resubmit-after-more-jobs-than-run": (
        GOOD_SETTINGS,
        _setting(n_completed_jobs_before_resubmit=5),
        "n_completed_jobs_before_resubmit: is 5, more than n_jobs_per_iteration (4)",
    ),
    "reversed-bounds": (
        GOOD_SETTINGS,
        lambda s: s["optimized_params"][0].update(bounds=[0.1, 0.01]),
        "optimized_params[0]: bounds [0.1, 0.01]: the lower bound must be below",
    ),
    "unknown-distribution": (
        GOOD_SETTINGS,
        lambda s: s["optimized_params"][0].update(distribution="Gaussian"),
        "optimized_params[0].distribution: 'Gaussian' is not one of",
    ),
    "no-options": (
        GOOD_SETTINGS,
        lambda s: s["optimized_params"].append(
            {"param": "config.rl_config.n_epochs", "distribution": "Discrete", "options": []}
        ),
        "optimized_params[4].options: [] should be non-empty",
    ),
    "no-optimized-params": (
        GOOD_SETTINGS,
        lambda s: s.update(optimized_params=[]),
        "optimized_params: is empty: give at least one parameter",
    ),
    "empty-name": (GOOD_SETTINGS, _name(""), "optimization_procedure_name: is ''"),
    "name-dot": (GOOD_SETTINGS, _name("."), "optimization_procedure_name: is '.'"),
    "name-dot-dot": (GOOD_SETTINGS, _name(".."), "optimization_procedure_name: is '..'"),
    "name-a-path": (GOOD_SETTINGS, _name("a/b"), "optimization_procedure_name: is 'a/b'"),
    "cem-restarts-a-string": (
        GOOD_SETTINGS,
        lambda s: s["optimizer_settings"].update(with_restarts="no"),
        "optimizer_settings.with_restarts: is 'no'; give true or false",
    ),
    "unknown-top-level-key": (
        GOOD_SETTINGS,
        lambda s: s.update(numbr_of_samples=10),
        "numbr_of_samples: is not a setting anything reads; did you mean"
        " 'optimization_setting.number_of_samples'?",
    ),
    "misspelt-section": (
        GOOD_SETTINGS,
        lambda s: s.update(optimizer_setings={}),
        "optimizer_setings: is not a setting anything reads; did you mean 'optimizer_settings'?",
    ),
    "unknown-optimization-setting": (
        GOOD_SETTINGS,
        _setting(n_job_per_iteration=2),
        "optimization_setting.n_job_per_iteration: is not a setting anything reads; did you"
        " mean 'optimization_setting.n_jobs_per_iteration'?",
    ),
}


class Started(Exception):
    """rl-relay hpo got past its checks (raised instead of running cluster_utils)."""


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path below ``root`` (None for directories) with the contents of its files."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def _messages(text: str, prefix: str) -> set[str]:
    return {line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_check_and_hpo_refuse_the_same_settings_with_the_same_message(
    tmp_path, capsys, monkeypatch, case
) -> None:
    """Exit 1 from both, the same messages, no traceback, and rl-relay hpo --fresh leaves the
    results directory (this HPO's and another's results in it) as it was."""
    from rl_relay.hpo import command as hpo
    from rl_relay.hpo import patches

    def started(**_kwargs: Any) -> None:
        raise Started

    monkeypatch.setattr(patches, "install", started)
    monkeypatch.chdir(REPO)  # the shipped files' template paths are relative to it
    base, change, expected = REFUSED[case]
    data = json.loads(base.read_text())
    results = tmp_path / "results"
    data["results_dir"] = str(results)
    for name in ("other_hpo", data["optimization_procedure_name"]):
        (results / name).mkdir(parents=True)
        (results / name / "all_data.csv").write_text(f"{name}'s results\n")
    change(data)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    before = _tree(results)
    capsys.readouterr()

    assert check.run(argparse.Namespace(settings_file=path, overrides=[], local=True)) == 1
    checked = capsys.readouterr()
    assert (
        hpo.run(argparse.Namespace(settings_file=path, overrides=[], local=True, fresh=True)) == 1
    )
    refused = capsys.readouterr()

    assert "Traceback" not in checked.out + checked.err + refused.out + refused.err
    from_check = _messages(checked.out, "  FAIL  ")
    assert from_check == _messages(refused.err, "rl-relay hpo: "), (checked.out, refused.err)
    assert any(m.startswith(f"{path}: ") and expected in m for m in from_check), checked.out
    assert _tree(results) == before


def test_hpo_prints_a_warning_and_starts(tmp_path, capsys, monkeypatch) -> None:
    """What only the cluster's nodes need (the container runtime) is a warning on a login
    node: check passes with it, and hpo says it and starts."""
    from rl_relay.hpo import command as hpo
    from rl_relay.hpo import patches

    def started(**_kwargs: Any) -> None:
        raise Started

    monkeypatch.setattr(patches, "install", started)
    monkeypatch.chdir(REPO)
    bin_dir = tmp_path / "bin"  # a login node: sbatch, but no apptainer
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    image = tmp_path / "rl_relay.sif"
    image.write_text("an image")
    data = json.loads(GOOD_SETTINGS.read_text())
    data["results_dir"] = str(tmp_path / "results")
    data["script_relative_path"] = "wrappers/run_singularity.py"
    data["fixed_params"].update(
        {"singularity.image": str(image), "singularity.script": "wrappers/run_learning.py"}
    )
    data["cluster_requirements"].update(partition="cpu", memory_in_mb=1000, request_time="1:00")
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data))
    args = argparse.Namespace(settings_file=path, overrides=[], local=False)

    assert check.run(args) == 0
    out = capsys.readouterr().out
    warning = f"{path}: fixed_params: no container runtime on PATH"
    assert f"  WARN  {warning}" in out and "(engine: slurm)" in out
    with pytest.raises(Started):
        hpo.run(argparse.Namespace(**vars(args), fresh=False))
    assert f"rl-relay hpo: warning: {warning}" in capsys.readouterr().err


def test_every_key_cluster_utils_reads_is_a_known_key() -> None:
    """The one list (the schema's properties) against cluster_utils 3.0's own code: what
    its hp_optimization reads of the settings, and what it passes on from
    optimization_setting as arguments of job_manager.hp_optimization."""
    import ast
    import inspect

    from cluster_utils import hp_optimization as cu
    from cluster_utils.server import job_manager

    from rl_relay.settings_file import SECTION, known_keys

    tree = ast.parse(inspect.getsource(cu))
    read = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "params":
            read.add(node.attr)
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "params":
            read.add(node.slice.value)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and getattr(node.func.value, "id", None) == "params"
        ):
            read.add(node.args[0].value)
    read.discard("get")
    assert read and read <= set(known_keys()), read - set(known_keys())
    assert "early_stopping" in known_keys()  # rl-relay's own section
    [call] = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "hp_optimization"
    ]
    passed = {k.arg for k in call.keywords if k.arg is not None}
    arguments = set(inspect.signature(job_manager.hp_optimization).parameters) - passed
    assert arguments == set(known_keys(SECTION))


@settings(max_examples=200, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=20), max_size=4))
def test_every_unknown_top_level_key_is_named(names: list[str]) -> None:
    from rl_relay.check.settings_checks import unknown_key_problems
    from rl_relay.settings_file import known_keys

    document = {name: 1 for name in [*names, *known_keys()[:3]]}
    named = {key for key, _ in unknown_key_problems(document)}
    assert named == set(document) - set(known_keys())


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=12))
def test_an_accepted_name_is_a_directory_of_its_own_in_results_dir(name: str) -> None:
    """What --fresh moves aside is exactly this HPO's directory, never results_dir itself,
    its parent, or a directory deeper down."""
    from rl_relay.layout import results_root
    from rl_relay.validation import load_schema, problems

    settings = {"results_dir": "/r/results", "optimization_procedure_name": name}
    found = problems(load_schema("hpo_settings"), settings)
    if not any(p.key == "optimization_procedure_name" for p in found):
        root = results_root(settings)
        assert root.parent == Path("/r/results") and root.name == name
