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


def test_malformed_override_strings_on_good_parameters(finished, tmp_path, caplog) -> None:
    params = copy_job(finished, tmp_path / "job")
    path = tmp_path / "job" / "params.json"
    path.write_text(json.dumps(params))
    for extra in ("foo", "learning_runs_per_job=abc", "a.b=1"):
        caplog.clear()
        assert run_main(path, extra) == exit_codes.FAILURE
        assert_one_clear_error(caplog, str(path), "key=value")
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

GOOD_SETTINGS = Path(__file__).resolve().parent.parent / "hp_optim" / "hp_optim_ppo_local_large.json"
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
