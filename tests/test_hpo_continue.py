"""An HPO whose driver is killed (SIGKILL) half-way and started again goes on where it stood."""

from __future__ import annotations

from pathlib import Path

import pytest
from hpo_helpers import (
    assert_no_survivors,
    hpo_settings,
    kill_group,
    load_status,
    metrics_files,
    read_rows,
    results_dir,
    run_hpo,
    start_hpo,
    wait_for,
)

pytestmark = pytest.mark.slow

SAMPLES = 8


def algorithm_results(optimizer: str, state) -> int:  # noqa: ANN001
    """How many results the optimiser's own algorithm has learnt from."""
    if optimizer == "nevergrad":
        return state.optimizer.num_tell
    if optimizer == "genetic":
        return len(state.search.results)
    if optimizer == "dgd":
        return state.search.grid.completed
    return len(state.full_df)


def whole_results(tmp_path: Path) -> dict[int, dict[str, str]]:
    """The jobs' metrics files written to the end (a job killed with the driver, as local
    jobs are, can leave one cut short)."""
    whole = {}
    for job_id, path in metrics_files(tmp_path).items():
        rows = read_rows(path)
        if len(rows) == 1 and rows[0].get("mean_eprewmean") and None not in rows[0].values():
            whole[job_id] = rows[0]
    return whole


@pytest.mark.parametrize("optimizer", ["cem_metaoptimizer", "nevergrad", "genetic", "dgd"])
def test_killed_driver_continues_where_it_stood(tmp_path: Path, optimizer: str) -> None:
    settings = hpo_settings(tmp_path, optimizer, samples=SAMPLES, tick_seconds=0.05)
    status = results_dir(tmp_path) / "status.pickle"
    first = start_hpo(settings, log_name="first")
    try:
        wait_for(
            lambda: (
                len(whole_results(tmp_path)) >= 3 and status.exists() or first.poll() is not None
            ),
            "three results and a saved state",
        )
        assert first.poll() is None, (tmp_path / "first.out").read_text()[-3000:]
    finally:
        kill_group(first)
    assert_no_survivors(tmp_path)
    saved = whole_results(tmp_path)  # before the kill (final now: nothing of the HPO runs)
    assert 3 <= len(saved) < SAMPLES
    before = load_status(tmp_path)
    dirs_before = {p.name for p in (results_dir(tmp_path) / "working_directories").iterdir()}

    code, out = run_hpo(settings, log_name="second")
    assert code == 0, out[-3000:]
    assert_no_survivors(tmp_path)
    assert "Continuing the HPO in" in out and f"{len(saved)} results kept" in out

    rows = read_rows(results_dir(tmp_path) / "all_data.csv")
    ids = [int(r["_id"]) for r in rows]
    assert len(ids) == SAMPLES and len(set(ids)) == SAMPLES  # none counted twice
    by_id = {int(r["_id"]): r for r in rows}
    for job_id, metrics in saved.items():  # every result saved before the kill is kept
        assert float(by_id[job_id]["mean_eprewmean"]) == pytest.approx(
            float(metrics["mean_eprewmean"])
        )
    new_ids = set(ids) - set(saved)
    assert min(new_ids) > max(int(d) for d in dirs_before)  # no working directory reused
    for job_id, metrics in saved.items():  # and none rewritten
        assert read_rows(metrics_files(tmp_path)[job_id])[0] == metrics

    after = load_status(tmp_path)
    # the optimiser went on from its saved state: its asks count those of the first driver
    assert after.n_asked == before.n_asked + len(new_ids)
    assert after.n_told == SAMPLES
    assert algorithm_results(optimizer, after) == SAMPLES


def _contents(directory: Path) -> dict[str, bytes]:
    """Every file below ``directory`` but the driver lock (each start writes its pid there)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".rl-relay-hpo.lock"
    }


def test_a_refused_continuation_changes_nothing_it_reads(tmp_path: Path) -> None:
    """A continuation refused because the saved state does not fit (another ``minimize``,
    another optimiser) leaves the results directory, ``rl_relay_hpo.json`` included, byte
    for byte as it was: ``rl-relay reevaluate`` reads the record to know which way is best."""
    settings = hpo_settings(tmp_path, "cem_metaoptimizer", samples=2)
    assert run_hpo(settings)[0] == 0
    results = results_dir(tmp_path)
    before = _contents(results)
    assert "rl_relay_hpo.json" in before
    refusals = [
        ("optimization_setting.minimize=True", "minimize=True"),
        ('optimizer_str="genetic"', "optimizer_settings={}", "GeneticOptimizer"),
    ]
    for *overrides, reason in refusals:
        code, out = run_hpo(settings, *overrides, log_name="refused")
        assert code == 1, out[-3000:]
        assert "cannot continue" in out and reason in out and "Traceback" not in out
        assert _contents(results) == before, overrides
    assert_no_survivors(tmp_path)
