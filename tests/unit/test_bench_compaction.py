"""The compaction benchmark's pure parts: its figures and goal, its events (valid for the
flights contract, all of one day), the answers compared with rounded floats, its summary."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from bench_support import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("compaction")


def test_figures_are_medians_ratios_to_the_single_file_and_the_goal_on_the_median_after(bench):
    out = bench.figures(before=[0.6, 0.5, 0.7], after=[0.12, 0.1, 0.11], single=[0.1, 0.1, 0.09],
                        during=[0.2, 0.3, 0.25, 0.4])
    assert out["before"]["median_s"] == pytest.approx(0.6) and out["single_file"]["median_s"] == pytest.approx(0.1)
    assert out["before_vs_single"] == pytest.approx(6.0)
    assert out["after_vs_single"] == pytest.approx(1.1) and out["met"]
    assert out["during"]["samples"] == 4 and out["during"]["p95_s"] == pytest.approx(0.385)
    assert not bench.figures([1.0], [0.2], [0.1], [0.1])["met"]  # 2x the single file


def test_its_events_pass_the_flights_contract_and_fall_on_one_day(bench, workspace):
    rng = random.Random(1)
    last = bench.FLUSHES * bench.EVENTS_PER_FLUSH - 1
    events = [bench.event(i, rng) for i in (0, 1, last)]
    result = workspace.contract("flights").validate(events)
    assert result.accepted.num_rows == 3
    assert {e["sched_dep_at"][:10] for e in events} == {bench.DAY.date().isoformat()}
    assert len(set(result.accepted.column("_event_id").to_pylist())) == 3


def test_answers_are_compared_with_floats_rounded(bench):
    a = pa.table({"origin": ["EWR"], "avg": [1.0000000001]})
    b = pa.table({"origin": ["EWR"], "avg": [1.0]})
    assert bench.rounded(a) == bench.rounded(b)
    assert bench.rounded(a) != bench.rounded(pa.table({"origin": ["JFK"], "avg": [1.0]}))


def test_the_summary_names_every_figure(bench):
    query = bench.figures([0.6], [0.1], [0.1], [0.2])
    result = {"build": {"files": 2000, "rows": 300000, "flushes": 2000, "seconds": 100.0}, "query": query,
              "compaction": {"alone": {"seconds": 2.0, "rows_per_s": 150000.0, "files_replaced": 2000,
                                       "files_written": 1},
                             "busy": {"seconds": 3.0, "answers_complete": True}},
              "planning": {"explain_listed_s": 0.02, "explain_glob_s": 0.015, "manifest_and_sql_s": 0.004}}
    lines = bench.summary(result)
    assert "2,000 files / 300,000 rows" in lines[0] and "goal <= 1.5x: met" in lines[1]
    assert "every answer complete: True" in lines[2] and "150,000 rows/s" in lines[3] and "glob 15.0 ms" in lines[4]
