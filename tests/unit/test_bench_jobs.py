"""The jobs benchmark's pure parts: the notebook's cells, the rounds' order, the run figures and
goal, and cron lateness from the run records and the notebooks' stamps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from bench_support import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("jobs")


def test_the_notebook_has_twenty_cells_with_its_parameters_cell(bench, tmp_path):
    import nbformat

    path = bench.write_notebook(tmp_path / "nb.ipynb", "scale = 1000", bench.twenty_cells())
    cells = nbformat.read(path, as_version=4).cells
    assert len(cells) == 20 and cells[0].metadata["tags"] == ["parameters"]
    assert len({c.source for c in cells}) == 20  # no two cells alike


def test_the_first_side_alternates_between_rounds(bench):
    assert [bench.round_order(i) for i in range(4)] == [("scheduler", "bare"), ("bare", "scheduler")] * 2


def test_run_figures_are_medians_their_ratio_and_the_paired_ratios_median(bench):
    rounds = [{"scheduler": 3.3, "bare": 3.0}, {"scheduler": 4.0, "bare": 2.0}, {"scheduler": 3.0, "bare": 3.0}]
    out = bench.run_figures(rounds)
    assert out["median_s"] == {"scheduler": 3.3, "bare": 3.0}
    assert out["ratio_of_medians"] == pytest.approx(1.1) and out["met"]
    assert out["median_paired_ratio"] == pytest.approx(1.1) and out["overhead_s"] == pytest.approx(0.3)
    assert not bench.run_figures([{"scheduler": 3.4, "bare": 3.0}])["met"]
    phased = [{**r, "queued_to_claimed_s": q, "claimed_to_finished_s": c} for r, q, c in
              zip(rounds, (0.2, 0.6, 0.4), (2.5, 3.0, 2.0))]
    assert bench.run_figures(phased)["scheduler_phases_median_s"] == {"queued_to_claimed_s": 0.4,
                                                                       "claimed_to_finished_s": 2.5}


def at(seconds: float) -> datetime:
    return datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)


def test_lateness_is_the_run_process_start_after_its_tick_and_a_run_without_a_stamp_is_missed(bench):
    runs = [{"id": 1, "scheduled_time": at(0), "started_at": at(0.3)},
            {"id": 2, "scheduled_time": at(3), "started_at": at(3.2)},
            {"id": 3, "scheduled_time": at(6), "started_at": at(6.1)}]
    stamps = [{"run": 1, "process_started": at(0.5).timestamp()}, {"run": 2, "process_started": at(3.25).timestamp()}]
    out = bench.lateness(runs, stamps)
    assert out["ticks"] == 3 and out["missed"] == [3] and not out["met"]
    assert out["process_s"]["samples"] == [0.5, 0.25] and out["process_s"]["max"] == pytest.approx(0.5)
    assert out["claim_s"]["p50"] == pytest.approx(0.2)
    stamps.append({"run": 3, "process_started": at(6.4).timestamp()})
    assert bench.lateness(runs, stamps)["met"]
    stamps[0]["process_started"] = at(1.5).timestamp()  # 1.5 s late: the p99 misses the goal
    assert not bench.lateness(runs, stamps)["met"]
