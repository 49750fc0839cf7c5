"""The S3 lake benchmark's pure parts: its figures and target, its events (valid for the
flights contract), the answers compared with rounded floats."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from bench_support import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("s3_lake")


def test_figures_are_per_query_medians_ratios_and_the_geomean_target(bench):
    samples = {"a": {"lakebook_s3": [0.2, 0.3, 0.25], "duckdb_s3": [0.2, 0.2, 0.2], "lakebook_local": [0.01, 0.02, 0.01]},
               "b": {"lakebook_s3": [0.1], "duckdb_s3": [0.125], "lakebook_local": [0.05]}}
    out = bench.figures(samples)
    assert out["per_query"]["a"]["s3_vs_duckdb"] == pytest.approx(1.25)
    assert out["per_query"]["a"]["s3_vs_local"] == pytest.approx(25.0)
    assert out["geomean_s3_vs_duckdb"] == pytest.approx(1.0)  # sqrt(1.25 * 0.8)
    assert out["met"]
    samples["b"]["lakebook_s3"] = [0.2]
    assert not bench.figures(samples)["met"]  # sqrt(1.25 * 1.6) = 1.41


def test_its_events_pass_the_flights_contract(bench, workspace):
    rng = random.Random(1)
    ids = range(0, bench.FLUSHES * bench.EVENTS_PER_FLUSH, 997)
    events = [bench.event(i, i % bench.DAYS, rng) for i in ids]
    result = workspace.contract("flights").validate(events)
    assert result.accepted.num_rows == len(events)
    assert len(set(result.accepted.column("_event_id").to_pylist())) == len(events)
    assert len({e["sched_dep_at"][:10] for e in events}) == bench.DAYS


def test_answers_compare_with_rounded_floats_in_any_order(bench):
    one = pa.table({"k": ["x", "y"], "v": [1.0000001, 2.0]})
    other = pa.table({"k": ["y", "x"], "v": [2.0, 1.0000002]})
    assert bench.normalized(one) == bench.normalized(other)
    assert bench.normalized(one) != bench.normalized(pa.table({"k": ["x", "y"], "v": [1.1, 2.0]}))
