"""The exploit/explore decision: Ray's quantiles, ties by member id, reproducible draws."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rl_relay.pbt.decide import EXPLOIT, KEEP, Decision, decide, quantiles, rank
from rl_relay.pbt.explore import ParamSpace
from rl_relay.pbt.records import Record
from rl_relay.pbt.settings import PBTSettings

LR = "config.rl_config.learning_rate"
BS = "config.rl_config.batch_size"
SPACE = [
    ParamSpace.from_item(
        {"param": LR, "distribution": "TruncatedLogNormal", "bounds": [1e-4, 1.0]}
    ),
    ParamSpace.from_item({"param": BS, "distribution": "Discrete", "options": [16, 32, 64, 128]}),
]


def record(member: int, score: float | None, status: str = "ok", boundary: int = 2) -> Record:
    return Record(
        member=member,
        boundary=boundary,
        status=status,
        score=score,
        hyperparameters={LR: 0.001 * (member + 1), BS: 32},
        checkpoint=None if status == "failed" else f"/wd/{member}/run_0.{boundary - 1}-0/model",
    )


def population(scores: list[float]) -> list[Record]:
    return [record(m, s) for m, s in enumerate(scores)]


@pytest.mark.parametrize(
    ("n", "fraction", "size"),
    [(8, 0.25, 2), (4, 0.25, 1), (2, 0.25, 1), (3, 0.5, 1), (5, 0.5, 2), (1, 0.5, 0), (8, 0.0, 0)],
)
def test_quantile_sizes_follow_ray(n: int, fraction: float, size: int) -> None:
    top, bottom = quantiles(population([float(i) for i in range(n)]), fraction)
    assert len(top) == len(bottom) == size
    assert not {r.member for r in top} & {r.member for r in bottom}


def test_ranking_is_by_score_then_member_id() -> None:
    ranked = rank(population([1.0, 3.0, 3.0, 0.5, 3.0]))
    assert [r.member for r in ranked] == [1, 2, 4, 0, 3]
    ranked = rank(population([1.0, 3.0, 3.0, 0.5, 3.0]), minimize=True)
    assert [r.member for r in ranked] == [3, 0, 1, 2, 4]


def test_failed_members_take_no_part_and_stopped_ones_can_be_donors() -> None:
    records = [record(0, 9.0, "stopped"), record(1, None, "failed"), record(2, 5.0), record(3, 1.0)]
    settings = PBTSettings(quantile_fraction=0.5, resample_probability=0.0)
    decision = decide(records, 3, settings, SPACE)
    assert decision.ranking == (0, 2, 3)
    assert decision.action == EXPLOIT and decision.donor == 0
    assert decision.donor_checkpoint == "/wd/0/run_0.1-0/model"


def test_bottom_member_copies_a_top_member_and_explores_its_hyperparameters() -> None:
    records = population([5.0, 1.0, 4.0, 3.0, 2.0, 8.0, 7.0, 6.0])
    settings = PBTSettings(
        quantile_fraction=0.25, resample_probability=0.0, perturbation_factors=(2.0,)
    )
    decision = decide(records, 1, settings, SPACE)
    assert decision.top == (5, 6) and decision.bottom == (4, 1)
    assert decision.action == EXPLOIT and decision.donor in (5, 6)
    donor = records[decision.donor].hyperparameters
    assert decision.hyperparameters[LR] == pytest.approx(2 * donor[LR])
    assert decision.hyperparameters[BS] in (16, 64)  # a neighbour of the donor's 32


@pytest.mark.parametrize("member", [0, 2, 3, 5, 6, 7])
def test_members_outside_the_bottom_quantile_keep_their_hyperparameters(member: int) -> None:
    records = population([5.0, 1.0, 4.0, 3.0, 2.0, 8.0, 7.0, 6.0])
    decision = decide(records, member, PBTSettings(), SPACE)
    assert decision.action == KEEP and decision.donor is None
    assert decision.hyperparameters == records[member].hyperparameters


def test_equal_scores_are_decided_by_member_id() -> None:
    records = population([1.0] * 4)
    decisions = [decide(records, m, PBTSettings(), SPACE) for m in range(4)]
    assert [d.action for d in decisions] == [KEEP, KEEP, KEEP, EXPLOIT]
    assert decisions[3].donor == 0


@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=12),
    st.integers(0, 2**31),
    st.integers(1, 50),
    st.randoms(use_true_random=False),
)
def test_decisions_depend_on_the_records_alone_not_their_order(
    scores: list[float], seed: int, boundary: int, shuffler: random.Random
) -> None:
    records = [record(m, s, boundary=boundary) for m, s in enumerate(scores)]
    settings = PBTSettings(seed=seed, quantile_fraction=0.5)
    first = [decide(records, m, settings, SPACE) for m in range(len(records))]
    shuffled = records[:]
    shuffler.shuffle(shuffled)
    again = [decide(shuffled, m, settings, SPACE) for m in range(len(records))]
    assert [d.to_dict() for d in first] == [d.to_dict() for d in again]
    for d in first:
        assert Decision.from_dict(d.to_dict()) == d
        if d.action == EXPLOIT:
            assert d.donor in d.top and d.member in d.bottom
            assert 1e-4 <= d.hyperparameters[LR] <= 1.0
            assert d.hyperparameters[BS] in (16, 32, 64, 128)
        else:
            assert d.member not in d.bottom


def test_draws_differ_between_boundaries_members_and_seeds() -> None:
    """Each decision has its own stream: donors and explored values vary, yet repeat."""

    def exploit(seed: int, boundary: int, member: int) -> tuple:
        records = [record(m, float(m), boundary=boundary) for m in range(8)]
        decision = decide(records, member, PBTSettings(seed=seed, quantile_fraction=0.5), SPACE)
        return decision.donor, decision.hyperparameters[LR]

    outcomes = {exploit(s, b, m) for s in range(3) for b in (1, 2, 3) for m in (0, 1)}
    assert len(outcomes) > 10
    assert exploit(2, 3, 1) == exploit(2, 3, 1)


def test_records_of_several_boundaries_are_refused() -> None:
    records = [record(0, 1.0, boundary=1), record(1, 2.0, boundary=2)]
    with pytest.raises(ValueError, match="one boundary"):
        decide(records, 0, PBTSettings(), SPACE)
    with pytest.raises(ValueError, match="its own record"):
        decide([record(0, 1.0)], 5, PBTSettings(), SPACE)
