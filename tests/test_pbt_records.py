"""The population directory: write-once files, a tolerant reader, the synch waiting rule."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rl_relay.atomic import write_once_json
from rl_relay.layout import PBT_SPEC
from rl_relay.pbt import records as rec
from rl_relay.pbt.records import Record


def ok(member: int, boundary: int, score: float = 1.0) -> Record:
    return Record(member, boundary, rec.OK, score, {"lr": 0.1}, f"/wd/{member}/model")


def test_a_record_is_written_once_and_the_first_one_is_kept(tmp_path: Path) -> None:
    first = ok(0, 1, score=1.0)
    assert rec.write_record(tmp_path, first) == first
    assert rec.write_record(tmp_path, ok(0, 1, score=2.0)) == first
    assert rec.read_records(tmp_path) == [first]
    assert json.loads((tmp_path / rec.record_name(1, 0)).read_text())["score"] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == [rec.record_name(1, 0)]  # no leftovers


def _race(target: str, value: int, start: multiprocessing.synchronize.Event) -> None:
    start.wait()
    write_once_json(target, {"writer": value})


def test_of_racing_writers_exactly_one_wins_and_the_file_is_whole(tmp_path: Path) -> None:
    target = tmp_path / "decision_b000001_m0000.json"
    start = multiprocessing.get_context("fork").Event()
    procs = [
        multiprocessing.get_context("fork").Process(target=_race, args=(str(target), i, start))
        for i in range(6)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert json.loads(target.read_text())["writer"] in range(6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_decisions_are_write_once_too(tmp_path: Path) -> None:
    first = {"member": 2, "boundary": 3, "action": "keep", "hyperparameters": {"lr": 1}}
    assert rec.write_decision(tmp_path, 2, 3, first) == first
    assert rec.write_decision(tmp_path, 2, 3, {**first, "action": "exploit"}) == first
    assert rec.read_decision(tmp_path, 2, 3) == first
    assert rec.read_decision(tmp_path, 2, 4) is None
    assert rec.read_decisions(tmp_path) == [first]


def test_the_reader_skips_temporary_malformed_and_foreign_files(tmp_path: Path) -> None:
    rec.write_record(tmp_path, ok(1, 1))
    (tmp_path / f".{rec.record_name(1, 2)}.abc.tmp").write_text('{"member": 1, "boun')
    (tmp_path / f".{rec.record_name(2, 1)}.1.x.staged").write_text("{}")
    (tmp_path / rec.record_name(1, 3)).write_text('{"member": 3, "bou')  # torn by a bad copy
    (tmp_path / rec.record_name(1, 4)).write_text('{"member": 4}')  # not a record
    (tmp_path / rec.record_name(1, 5)).write_text(
        json.dumps({"member": 5, "boundary": 1, "status": "ok", "score": None})
    )
    (tmp_path / PBT_SPEC).write_text("{}")
    (tmp_path / "notes.txt").write_text("hello")
    assert rec.read_records(tmp_path) == [ok(1, 1)]
    assert rec.read_records(tmp_path / "absent") == []


def test_records_need_a_known_status_and_a_score_unless_failed() -> None:
    with pytest.raises(ValueError, match="status"):
        Record(0, 1, "paused", 1.0)
    with pytest.raises(ValueError, match="finite score"):
        Record(0, 1, rec.OK, float("nan"))
    Record(0, 1, rec.FAILED, None, reason="max_attempts used up")


def test_synch_waits_for_living_members_only() -> None:
    records = [
        ok(0, 1), ok(1, 1), ok(2, 1), ok(3, 1),
        ok(0, 2),
        Record(1, 2, rec.STOPPED, 500.0, {}, "/wd/1/model", reason="reached 475"),
        Record(2, 2, rec.FAILED, None, reason="max_attempts"),
    ]  # fmt: skip
    assert rec.missing_members(records, 1, 5) == [4]
    assert rec.missing_members(records, 2, 5) == [3, 4]
    assert rec.missing_members(records, 3, 5) == [0, 3, 4]  # 1 stopped, 2 failed before


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 6), st.sampled_from(rec.STATUSES)),
        max_size=30,
    ),
    st.integers(1, 6),
)
def test_missing_members_property(entries: list[tuple[int, int, str]], boundary: int) -> None:
    records = [
        Record(m, b, s, None if s == rec.FAILED else 1.0) for m, b, s in dict.fromkeys(entries)
    ]
    missing = rec.missing_members(records, boundary, 6)
    for m in range(6):
        own = [r for r in records if r.member == m]
        reached = any(r.boundary == boundary for r in own)
        done = any(r.status != rec.OK and r.boundary <= boundary for r in own)
        assert (m in missing) == (not reached and not done)
