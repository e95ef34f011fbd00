"""A simulated population of member jobs stepping through boundaries, in-process.

Each "job start" trains one iteration (a fake learner: the checkpoint holds the training
history, the score is the sum of the learning rates trained with) or retries a boundary
it had to wait at, then exits, as rl-relay jobs do under cluster_utils; a scheduler with
two slots starts the queued members in a random order. Nothing here sleeps.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
from collections import deque
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rl_relay.layout import PBT_SPEC
from rl_relay.pbt import history
from rl_relay.pbt import records as rec
from rl_relay.pbt.explore import ParamSpace, initial_hyperparameters
from rl_relay.pbt.member import (
    Continue,
    IterationResult,
    MemberError,
    MemberSpec,
    Stop,
    Wait,
    boundary_step,
    copy_checkpoint,
    hyperparameters_for,
    member_seed,
    record_failure,
)
from rl_relay.pbt.settings import PBTSettings

LR = "config.rl_config.learning_rate"
SPACE = (
    ParamSpace.from_item(
        {"param": LR, "distribution": "TruncatedLogNormal", "bounds": [0.01, 1.0]}
    ),
)
REWARD = "rollout/ep_rew_mean"


def make_spec(root: Path, member: int, iterations: int = 4, **settings: Any) -> MemberSpec:
    base = {"population_size": 4, "quantile_fraction": 0.25, "seed": 0}
    return MemberSpec(
        population_dir=root / "population",
        member=member,
        settings=PBTSettings.from_dict({**base, **settings}),
        space=SPACE,
        metric="mean_eprewmean",
        minimize=False,
        training_iterations=iterations,
        reward_column=REWARD,
    )


class FakeMember:
    """One member job: its state survives between starts like restarts.json does."""

    def __init__(self, spec: MemberSpec, root: Path, fail_at: int | None = None) -> None:
        self.spec = spec
        self.wd = root / "working_directories" / str(spec.member)
        self.hp = initial_hyperparameters(SPACE, spec.settings.seed, spec.member)
        self.iteration = 0
        self.load_path = ""
        self.pending: IterationResult | None = None
        self.fail_at = fail_at
        self.outcome: Stop | None = None
        self.waits = 0

    def train(self, i: int) -> IterationResult:
        step = self.wd / f"run_0.{i}-0"
        step.mkdir(parents=True, exist_ok=True)
        past = (
            json.loads(Path(self.load_path + ".resume.pkl").read_text()) if self.load_path else []
        )
        trained = [*past, [self.spec.member, i, self.hp[LR]]]
        (step / "model.resume.pkl").write_text(json.dumps(trained))
        (step / "model.zip").write_bytes(os.urandom(64))
        (step / "model_vecnormalize.pkl").write_text(str(i))
        (step / "logs").mkdir(exist_ok=True)
        score = sum(lr for _, _, lr in trained)
        (step / "logs" / "progress.csv").write_text(f"{REWARD},other\n{score},{i}\n")
        return IterationResult(
            i, score, dict(self.hp), str(step / "model"), step / "logs/progress.csv"
        )

    def start(self) -> bool:
        """One cluster job: returns True when it exits for resume, False when finished."""
        if self.pending is None:
            if self.iteration == self.fail_at:
                record_failure(self.spec, self.iteration, "max_attempts used up", self.hp)
                return False
            self.pending = self.train(self.iteration)
        target = self.wd / f"run_0.{self.iteration + 1}-0" / "pbt_donor"
        outcome = boundary_step(self.spec, self.pending, target)
        if isinstance(outcome, Wait):
            self.waits += 1
            return True
        if isinstance(outcome, Stop):
            self.outcome = outcome
            return False
        assert isinstance(outcome, Continue)
        self.hp, self.load_path = dict(outcome.hyperparameters), outcome.load_path
        self.iteration, self.pending = self.iteration + 1, None
        return True


def run_population(
    root: Path, order_seed: int, slots: int = 2, fail: dict[int, int] | None = None, **settings
) -> list[FakeMember]:
    members = [
        FakeMember(make_spec(root, m, **settings), root, (fail or {}).get(m)) for m in range(4)
    ]
    queue = deque(members)
    order = np.random.default_rng(order_seed)
    starts = 0
    while queue:
        # one of the jobs holding a slot exits first, in no particular order
        member = queue[int(order.integers(min(slots, len(queue))))]
        queue.remove(member)
        starts += 1
        assert starts < 200, "the population does not progress (deadlock)"
        if member.start():
            queue.append(member)
    return members


def relative_decisions(root: Path) -> list[dict]:
    decisions = rec.read_decisions(root / "population")
    for d in decisions:
        if d["donor_checkpoint"]:
            d["donor_checkpoint"] = str(Path(d["donor_checkpoint"]).relative_to(root))
    return decisions


def test_a_population_finishes_with_complete_records_and_right_lineage(tmp_path: Path) -> None:
    members = run_population(tmp_path, order_seed=0)
    assert all(isinstance(m.outcome, Stop) for m in members)
    assert sum(m.waits for m in members) > 0  # two slots: some members had to wait
    records = rec.read_records(tmp_path / "population")
    decisions = rec.read_decisions(tmp_path / "population")
    assert {(r.member, r.boundary) for r in records} == {
        (m, b) for m in range(4) for b in (1, 2, 3, 4)
    }
    assert {r.status for r in records if r.boundary < 4} == {rec.OK}
    assert {r.status for r in records if r.boundary == 4} == {rec.STOPPED}
    assert len(decisions) == 4 * 3
    exploits = history.exploit_events(decisions)
    assert exploits, "with a quarter of 4 members, the worst one exploits at every boundary"
    for r in records:
        assert list(r.lineage) == [
            (e.boundary, e.donor)
            for e in exploits
            if e.member == r.member and e.boundary < r.boundary
        ]
    spec = json.loads((tmp_path / "population" / PBT_SPEC).read_text())
    assert spec["population_size"] == 4 and spec["space"] == [SPACE[0].to_item()]


def test_every_member_continues_exactly_from_the_state_its_schedule_says(tmp_path: Path) -> None:
    """The final checkpoint's training history is the hyperparameter schedule, donors included."""
    members = run_population(tmp_path, order_seed=1)
    records = rec.read_records(tmp_path / "population")
    decisions = rec.read_decisions(tmp_path / "population")
    for m in members:
        trained = json.loads(Path(m.pending.checkpoint + ".resume.pkl").read_text())
        segments = history.schedule(records, decisions, m.spec.member)
        assert m.outcome.schedule == segments
        expected = [
            [s.member, i, s.hyperparameters[LR]] for s in segments for i in range(s.start, s.end)
        ]
        assert trained == expected
        assert history.per_iteration(segments) == [{LR: lr} for _, _, lr in trained]
    best = history.best_member(records)
    assert best == max(range(4), key=lambda k: (members[k].outcome.score, -k))


def test_exploit_copies_the_donor_files_never_links(tmp_path: Path) -> None:
    run_population(tmp_path, order_seed=2)
    exploits = [d for d in rec.read_decisions(tmp_path / "population") if d["action"] == "exploit"]
    assert exploits
    for d in exploits:
        donor = Path(d["donor_checkpoint"])
        copied = (
            tmp_path
            / "working_directories"
            / str(d["member"])
            / f"run_0.{d['boundary']}-0"
            / "pbt_donor"
        )
        names = sorted(p.name for p in copied.iterdir())
        assert names == ["model.resume.pkl", "model.zip", "model_vecnormalize.pkl"]
        for name in names:
            assert (copied / name).read_bytes() == (donor.parent / name).read_bytes()
            assert not (copied / name).is_symlink() and (copied / name).stat().st_nlink == 1


def test_synch_decisions_do_not_depend_on_the_scheduling_order(tmp_path: Path) -> None:
    run_population(tmp_path / "a", order_seed=3)
    run_population(tmp_path / "b", order_seed=4, slots=3)
    first, second = relative_decisions(tmp_path / "a"), relative_decisions(tmp_path / "b")
    assert first == second

    def scores(root: Path) -> list[tuple]:
        return [(r.member, r.boundary, r.score) for r in rec.read_records(root / "population")]

    assert scores(tmp_path / "a") == scores(tmp_path / "b")


def test_a_member_that_failed_for_good_is_not_waited_for(tmp_path: Path) -> None:
    members = run_population(tmp_path, order_seed=5, fail={2: 1})
    assert members[2].outcome is None
    assert all(isinstance(members[m].outcome, Stop) for m in (0, 1, 3))
    records = rec.read_records(tmp_path / "population")
    failed = [r for r in records if r.status == rec.FAILED]
    assert [(r.member, r.boundary, r.reason) for r in failed] == [(2, 2, "max_attempts used up")]
    assert not [r for r in records if r.member == 2 and r.boundary > 2]
    for d in rec.read_decisions(tmp_path / "population"):
        assert d["donor"] != 2 or d["boundary"] < 2
    # recording the failure again (a killed job, restarted) changes nothing
    again = record_failure(members[2].spec, 1, "other reason", {})
    assert again == failed[0]


def test_a_stop_threshold_stops_a_member_and_nobody_waits_for_it(tmp_path: Path) -> None:
    members = run_population(tmp_path, order_seed=6, stop={REWARD: 0.0}, iterations=6)
    records = rec.read_records(tmp_path / "population")
    assert {(r.boundary, r.status) for r in records} == {(1, rec.STOPPED)}
    assert all(m.outcome.boundary == 1 and "stop threshold" in m.outcome.reason for m in members)


def test_a_stop_on_another_progress_column(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, 0, iterations=10, stop={"other": 2})
    member = FakeMember(spec, tmp_path)
    for i in range(2):
        result = member.train(i)
        assert not isinstance(boundary_step(spec, result, tmp_path / "t"), Stop)
        member.iteration += 1
    assert isinstance(boundary_step(spec, member.train(2), tmp_path / "t"), Stop)


def test_restart_after_a_kill_takes_the_same_decision_even_without_synch(tmp_path: Path) -> None:
    specs = [make_spec(tmp_path, m, synch=False) for m in range(4)]
    fakes = [FakeMember(s, tmp_path) for s in specs]
    results = [f.train(0) for f in fakes]
    # member 3 arrives first and alone: its decision is against itself only
    target = tmp_path / "next" / "pbt_donor"
    first = boundary_step(specs[3], results[3], target)
    assert isinstance(first, Continue) and first.donor is None
    for m in range(3):
        boundary_step(specs[m], results[m], tmp_path / f"t{m}")
    # killed before it stored the outcome, member 3 asks again: same decision, though
    # the others' records would now make it exploit
    again = boundary_step(specs[3], results[3], target)
    assert again == first
    fresh = boundary_step(make_spec(tmp_path / "other", 3, synch=False), results[3], target)
    assert isinstance(fresh, Continue)


def test_an_exploit_interrupted_during_the_copy_is_completed_on_restart(tmp_path: Path) -> None:
    specs = [make_spec(tmp_path, m) for m in range(4)]
    fakes = [FakeMember(s, tmp_path) for s in specs]
    results = [f.train(0) for f in fakes]
    for m in range(4):
        boundary_step(specs[m], results[m], tmp_path / f"t{m}")
    loser = min(range(4), key=lambda m: (results[m].score, -m))
    outcome = boundary_step(specs[loser], results[loser], tmp_path / f"t{loser}")
    assert outcome.donor is not None
    (tmp_path / f"t{loser}" / "model.zip").unlink()  # the kill came mid-copy
    again = boundary_step(specs[loser], results[loser], tmp_path / f"t{loser}")
    assert again == outcome
    donor_dir = Path(results[outcome.donor].checkpoint).parent
    assert (tmp_path / f"t{loser}" / "model.zip").read_bytes() == (
        donor_dir / "model.zip"
    ).read_bytes()


def test_waiting_polls_for_a_while_before_giving_the_slot_back(tmp_path: Path) -> None:
    specs = [make_spec(tmp_path, m, population_size=2) for m in range(2)]
    fakes = [FakeMember(s, tmp_path) for s in specs]
    results = [f.train(0) for f in fakes]
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    waited = boundary_step(
        specs[0], results[0], tmp_path / "t", wait_seconds=2, sleep=sleep, clock=lambda: now[0]
    )
    assert waited == Wait(1, (1,)) and now[0] >= 2

    def other_arrives(seconds: float) -> None:
        boundary_step(specs[1], results[1], tmp_path / "t1")
        now[0] += seconds

    now[0] = 0.0
    done = boundary_step(
        specs[0],
        results[0],
        tmp_path / "t",
        wait_seconds=60,
        sleep=other_arrives,
        clock=lambda: now[0],
    )
    assert isinstance(done, Continue) and now[0] < 60


def test_between_boundaries_a_member_just_goes_on(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, 0, perturbation_interval=2, iterations=6)
    member = FakeMember(spec, tmp_path)
    result = member.train(0)
    outcome = boundary_step(spec, result, tmp_path / "t")
    assert outcome == Continue(1, result.hyperparameters, result.checkpoint)
    assert not (tmp_path / "population").exists()
    assert isinstance(boundary_step(spec, member.train(1), tmp_path / "t"), Wait)


def test_hyperparameters_for_an_iteration_follow_the_decisions(tmp_path: Path) -> None:
    members = run_population(tmp_path, order_seed=7)
    records = rec.read_records(tmp_path / "population")
    decisions = rec.read_decisions(tmp_path / "population")
    for m in members:
        initial = initial_hyperparameters(SPACE, 0, m.spec.member)
        plan = history.per_iteration(history.schedule(records, decisions, m.spec.member))
        own = [hyperparameters_for(m.spec, i, initial) for i in range(4)]
        assert own[-1] == plan[-1]  # the last segment is always the member's own
        assert own[0] == initial


def test_a_vanished_donor_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MemberError, match="has no files"):
        copy_checkpoint(str(tmp_path / "gone" / "model"), tmp_path / "t")


def test_member_seeds_differ_and_repeat() -> None:
    seeds = [member_seed(0, m) for m in range(16)]
    assert len(set(seeds)) == 16 and seeds == [member_seed(0, m) for m in range(16)]
    assert all(0 <= s < 2**31 for s in seeds)


def test_job_parameters_survive_cluster_utils_and_the_shell(tmp_path: Path) -> None:
    """What the launcher injects reaches the member job intact, through cluster_utils'
    fixed-parameter processing and its double-quoted ``--parameter-dict`` shell word."""
    from cluster_utils.hp_optimization import get_distribution
    from cluster_utils.server.utils import process_other_params, update_recursive

    from rl_relay.pbt.optimizer import PBTOptimizer, job_params_for_pbt

    items = [
        SPACE[0].to_item(),
        {"param": "config.rl_config.batch_size", "distribution": "Discrete", "options": [16, 32]},
        {"param": "config.rl_config.n_epochs", "distribution": "IntNormal", "bounds": [1, 20]},
    ]
    settings = {
        "optimizer_str": "pbt",
        "optimizer_settings": {"population_size": 2, "stop": {REWARD: 475}, "seed": 3},
        "optimized_params": items,
        "optimization_setting": {"metric_to_optimize": "mean_eprewmean", "minimize": False},
    }
    fixed = {"config.config_templates": "x.json", **job_params_for_pbt(settings, tmp_path)}
    distributions = [get_distribution(**i) for i in items]
    optimizer = PBTOptimizer(
        optimized_params=distributions,
        metric_to_optimize="mean_eprewmean",
        minimize=False,
        number_of_samples=2,
        **settings["optimizer_settings"],
    )
    for member in range(2):
        final = update_recursive(
            deepcopy(optimizer.ask()), process_other_params(fixed, None, distributions)
        )
        word = f'"{final}"'
        assert shlex.split(word) == [str(final)] and "$" not in word
        params = json.loads(json.dumps(ast.literal_eval(shlex.split(word)[0])))
        spec = MemberSpec.from_job_params(params, training_iterations=5, reward_column=REWARD)
        assert spec.member == member
        assert spec.population_dir == tmp_path / "population"
        assert spec.settings == PBTSettings.from_dict(settings["optimizer_settings"])
        assert [s.to_item() for s in spec.space] == items
        assert (spec.metric, spec.minimize, spec.training_iterations) == (
            "mean_eprewmean",
            False,
            5,
        )
    with pytest.raises(MemberError, match="rl-relay hpo"):
        MemberSpec.from_job_params({"pbt": {"member": 1}}, 5, REWARD)


def test_a_member_that_died_is_recorded_failed_by_the_driver(tmp_path: Path) -> None:
    """A member killed without giving up (kill -9): the driver records its failure from the
    job's parameters, at the boundary it was heading for, and nobody waits for it."""
    from rl_relay.job.state import Plan, new_state
    from rl_relay.job.state_file import save_state
    from rl_relay.layout import JobPaths
    from rl_relay.pbt.dead_member import is_member, record_dead
    from rl_relay.pbt.member import encode_job_params

    spec = make_spec(tmp_path, 1, population_size=2)
    wd = tmp_path / "working_directories" / "1"
    params = {
        **encode_job_params(spec.population_dir, spec.settings, spec.space, "m", False),
        "pbt.member": 1,
        "training_iterations": 4,
        "working_dir": str(wd),
        "config": {"rl_config": {"learning_rate": 0.1}},
    }
    assert is_member(params) and not is_member({"working_dir": str(wd)})
    assert record_dead({"working_dir": str(wd)}, "exit code 2") is None
    # it passed boundary 1 and was training iteration 1 (0-based) when it was killed
    boundary_step(spec, IterationResult(0, 1.0, {LR: 0.1}, str(wd / "m")), wd / "donor")
    state = new_state(Plan(runs=1, iterations=4, max_attempts=1, base_seed=0))
    state.runs[0].iteration = 1
    state.runs[0].hyperparameters = {LR: 0.2}
    save_state(JobPaths(wd).state, state)
    record = record_dead(params, "exit code 137 (killed by SIGKILL)")
    assert (record.member, record.boundary, record.status) == (1, 2, rec.FAILED)
    assert "SIGKILL" in record.reason and record.hyperparameters == {LR: 0.2}
    records = rec.read_records(spec.population_dir)
    assert 1 not in rec.missing_members(records, 2, 2)
    assert record_dead(params, "again") == record  # write-once: a second report changes nothing
    # without a readable restarts.json: the next boundary after its own records
    params0 = {**params, "pbt.member": 0, "working_dir": str(tmp_path / "none")}
    assert record_dead(params0, "exit code 2").boundary == 1
