"""What a finished step means (rl_relay.job.outcome.classify), rule by rule and as properties."""

from __future__ import annotations

import signal

from hypothesis import given
from hypothesis import strategies as st

from rl_relay.job.outcome import Facts, Verdict, classify
from rl_relay.job.state import MAX_STALLED_RESUMES


def test_exit_0_mid_chain_succeeds_and_the_last_iteration_needs_a_reward() -> None:
    assert classify(Facts(returncode=0)).verdict is Verdict.SUCCEEDED
    last = Facts(returncode=0, last_iteration=True)
    assert classify(last).verdict is Verdict.FAILED  # no reward read
    done = classify(Facts(returncode=0, last_iteration=True, reward=3.5))
    assert (done.verdict, done.reward) == (Verdict.SUCCEEDED, 3.5)
    missing = classify(Facts(returncode=0, last_iteration=True, reward_problem="no progress.csv"))
    assert (missing.verdict, missing.reason) == (Verdict.FAILED, "no progress.csv")


def test_a_wrong_reward_column_keeps_the_training_and_is_a_configuration_error() -> None:
    outcome = classify(Facts(returncode=0, last_iteration=True, column_problem="no column x"))
    assert outcome.verdict is Verdict.SUCCEEDED and outcome.config_error == "no column x"


def test_timeout_and_crashes_fail_with_a_reason() -> None:
    timed = classify(Facts(returncode=-15, timed_out=True, timeout=2.0))
    assert timed.verdict is Verdict.FAILED and "learning_timeout (2.0 s)" in timed.reason
    crashed = classify(Facts(returncode=2))
    assert (crashed.verdict, crashed.reason) == (Verdict.FAILED, "exited with code 2")
    killed = classify(Facts(returncode=-9))
    assert killed.reason == "was killed by signal SIGKILL"


def test_exit_3_with_a_checkpoint_that_advanced_is_a_resume() -> None:
    outcome = classify(Facts(returncode=3, checkpoint_marker="at 20 timesteps", marker_before=""))
    assert (outcome.verdict, outcome.checkpoint, outcome.progressed) == (
        Verdict.PREEMPTED,
        True,
        True,
    )


def test_exit_3_without_a_checkpoint_fails_the_attempt() -> None:
    outcome = classify(Facts(returncode=3, checkpoint_marker=None))
    assert outcome.verdict is Verdict.FAILED
    assert "left no checkpoint" in outcome.reason


def test_resumes_that_do_not_advance_fail_after_a_few_in_a_row() -> None:
    stuck = {
        "returncode": 3,
        "checkpoint_marker": "at 8 timesteps",
        "marker_before": "at 8 timesteps",
    }
    for stalled in range(MAX_STALLED_RESUMES - 1):
        outcome = classify(Facts(**stuck, stalled_resumes=stalled))
        assert outcome.verdict is Verdict.PREEMPTED and not outcome.progressed
    outcome = classify(Facts(**stuck, stalled_resumes=MAX_STALLED_RESUMES - 1))
    assert outcome.verdict is Verdict.FAILED
    assert f"{MAX_STALLED_RESUMES} times in a row without its checkpoint advancing" in (
        outcome.reason
    )


def test_killed_by_the_signal_it_was_sent_is_a_resume_without_checkpoint() -> None:
    sig = int(signal.SIGTERM)
    outcome = classify(Facts(returncode=-sig, forwarded=(sig,)))
    assert (outcome.verdict, outcome.checkpoint) == (Verdict.PREEMPTED, False)
    # killed by another signal than the one passed on: a failure
    assert classify(Facts(returncode=-9, forwarded=(sig,))).verdict is Verdict.FAILED


facts = st.builds(
    Facts,
    returncode=st.sampled_from([0, 1, 2, 3, -9, -15, -10, 137]),
    timed_out=st.booleans(),
    forwarded=st.lists(st.sampled_from([10, 15, 2]), max_size=2).map(tuple),
    last_iteration=st.booleans(),
    checkpoint_marker=st.one_of(st.none(), st.sampled_from(["a", "b"])),
    marker_before=st.sampled_from(["", "a", "b"]),
    stalled_resumes=st.integers(0, MAX_STALLED_RESUMES + 2),
    reward=st.one_of(st.none(), st.floats(-10, 10)),
    reward_problem=st.one_of(st.none(), st.just("no file")),
    column_problem=st.one_of(st.none(), st.just("no column")),
)


@given(facts)
def test_every_step_has_one_well_defined_verdict(f: Facts) -> None:
    outcome = classify(f)
    if outcome.verdict is Verdict.FAILED:
        assert outcome.reason  # the state and the final message say why
    if outcome.verdict is Verdict.PREEMPTED:
        # only an exit 3 or death by a signal that was passed on asks to be resumed
        assert not f.timed_out
        assert f.returncode == 3 or -f.returncode in f.forwarded
        if outcome.checkpoint:
            # a resume is never granted without a checkpoint, nor endlessly without progress
            assert f.checkpoint_marker is not None
            assert outcome.progressed or f.stalled_resumes + 1 < MAX_STALLED_RESUMES
    if outcome.reward is not None:
        assert f.last_iteration and f.returncode == 0 and not f.timed_out
