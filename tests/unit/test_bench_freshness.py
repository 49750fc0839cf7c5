"""The speed-layer benchmarks' helpers: flights shifted to depart now, when an online row
counts a batch, the latency summary against the goal, the lag's trend and drain rate, and
origin-delay features valued as of a time (checked against hand-counted departures)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from bench_support import load_bench

HOUR_US = 3_600_000_000
T = int(datetime(2026, 11, 30, 9, 30, tzinfo=timezone.utc).timestamp()) * 1_000_000  # 09:30 UTC


def _load(name: str):
    return load_bench(name)


@pytest.fixture(scope="module")
def fresh():
    return _load("freshness")


@pytest.fixture(scope="module")
def throughput():
    return _load("stream_throughput")


@pytest.fixture(scope="module")
def value():
    return _load("freshness_value")


FLIGHT = {"year": 2013, "month": 1, "day": 1, "dep_time": 517, "sched_dep_time": 515, "dep_delay": 47.0,
          "carrier": "UA", "flight": 1545, "origin": "EWR", "time_hour": "2013-01-01T10:00:00Z",
          "sched_dep_at": "2013-01-01T10:15:00Z"}


@pytest.mark.parametrize("delay", [47.0, -12.0, 0.0])
def test_a_shifted_flight_departs_at_the_given_time_and_keeps_its_identity(fresh, delay):
    moved = fresh.shifted({**FLIGHT, "dep_delay": delay}, T)
    sched = datetime.fromisoformat(moved["sched_dep_at"])
    assert sched.timestamp() * 1_000_000 + delay * 60_000_000 == T  # sched_dep_at + dep_delay: the event time
    assert datetime.fromisoformat(moved["time_hour"]) == sched.replace(minute=0, second=0, microsecond=0)
    assert moved["sched_dep_at"].endswith("Z") and moved["time_hour"].endswith("Z")
    assert {k: moved[k] for k in ("year", "month", "day", "sched_dep_time", "carrier", "flight", "origin")} == \
        {k: FLIGHT[k] for k in ("year", "month", "day", "sched_dep_time", "carrier", "flight", "origin")}
    assert FLIGHT["sched_dep_at"] == "2013-01-01T10:15:00Z"  # the source row is not changed


def test_counts_run_per_key_and_start_again_in_a_new_hour(fresh):
    counts = fresh.Counts()
    hour = T - T % HOUR_US
    assert counts.add(["EWR", "JFK", "EWR"], T) == {"EWR": (hour, 2), "JFK": (hour, 1)}
    assert counts.add(["EWR"], T + 1) == {"EWR": (hour, 3)}
    assert counts.add(["EWR"], hour + HOUR_US) == {"EWR": (hour + HOUR_US, 1)}


def test_an_online_row_includes_a_batch_once_its_hour_counts_it_or_a_later_hour_shows(fresh):
    hour = T - T % HOUR_US
    expected = {"EWR": (hour, 5), "JFK": (hour, 2)}
    stamp = hour + HOUR_US + 1_000_000  # the stream's revisions of an hour: a second after its end
    assert fresh.includes({"EWR": (stamp, 5.0), "JFK": (stamp + 3, 2.0)}, expected)
    assert fresh.includes({"EWR": (stamp, 7.0), "JFK": (stamp + HOUR_US, 1.0)}, expected)
    assert not fresh.includes({"EWR": (stamp, 4.0), "JFK": (stamp, 2.0)}, expected)  # one event short
    assert not fresh.includes({"EWR": (stamp, 5.0)}, expected)  # an origin not read yet
    assert not fresh.includes({"EWR": (stamp, 5.0), "JFK": (None, None)}, expected)
    assert not fresh.includes({"EWR": (stamp - HOUR_US, 9.0), "JFK": (stamp, 2.0)}, expected)  # an older hour


def test_a_row_stamped_a_second_after_an_hour_ends_belongs_to_that_hour(fresh):
    hour = T - T % HOUR_US
    assert fresh.includes({"EWR": (hour + 1_000_000, 3.0)}, {"EWR": (hour - HOUR_US, 3)})
    assert fresh.includes({"EWR": (hour + 1_999_999, 3.0)}, {"EWR": (hour - HOUR_US, 3)})
    assert not fresh.includes({"EWR": (hour + 1_000_000, 3.0)}, {"EWR": (hour, 1)})


def test_the_latency_summary_meets_the_goal_only_with_every_sample_seen_and_in_bounds(fresh):
    fast = [10.0] * 98 + [400.0, 450.0]
    met = fresh.latency_summary(fast, missing=0)
    assert met["met"] and met["p50_ms"] == 10.0 and met["samples"] == 100
    assert not fresh.latency_summary(fast, missing=1)["met"]
    assert not fresh.latency_summary([120.0] * 100, missing=0)["met"]  # p50 over 100 ms
    assert not fresh.latency_summary([10.0] * 90 + [600.0] * 10, missing=0)["met"]  # p99 over 500 ms
    assert not fresh.latency_summary([], missing=0)["met"]


def test_the_lag_trend_is_its_slope_over_time(throughput):
    flat = [{"t_s": t, "lag": 1000} for t in range(10)]
    growing = [{"t_s": t, "lag": 1000 + 250 * t} for t in range(10)]
    assert throughput.lag_trend(flat) == 0
    assert throughput.lag_trend(growing) == pytest.approx(250)
    assert throughput.lag_trend(growing[:1]) == 0


def test_the_drain_rate_runs_from_the_first_events_seen_until_the_lag_is_zero(throughput):
    timeline = [{"t_s": 0.0, "events": 0, "lag": 50_000}, {"t_s": 0.5, "events": 10_000, "lag": 40_000},
                {"t_s": 2.5, "events": 50_000, "lag": 0}, {"t_s": 3.0, "events": 50_000, "lag": 0}]
    assert throughput.drain_rate(timeline) == {"events": 40_000, "seconds": 2.0, "events_per_s": 20_000}


def test_origin_delays_as_of_a_time_count_only_the_departures_before_it(value):
    import duckdb
    import pandas as pd

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE flights (origin VARCHAR, sched_dep_at VARCHAR, dep_delay DOUBLE, dep_time INTEGER)")
    con.execute("""INSERT INTO flights VALUES
        ('EWR', '2013-01-01T08:10:00Z', 10, 820), ('EWR', '2013-01-01T09:05:00Z', 20, 925),
        ('EWR', '2013-01-01T09:30:00Z', 0, 930), ('EWR', '2013-01-01T09:40:00Z', NULL, NULL),
        ('JFK', '2013-01-01T09:00:00Z', 30, 930)""")
    d = value.definition()
    con.execute(f"CREATE TABLE cum AS {value.cumulative_sql(d)}")
    at = {"09:26": 1357032360, "09:31": 1357032660, "10:00": 1357034400, "08:00": 1357027200}
    queries = " UNION ALL ".join(f"SELECT '{k}' AS id, 'EWR' AS origin, {s * 1_000_000} AS x" for k, s in at.items())
    got = {r["id"]: r for r in con.sql(value.as_of_sql(d, queries)).df().to_dict("records")}
    # departures at 08:20 (10 min late), 09:25 (20), 09:30 (0); the cancelled one never counts
    assert got["09:26"]["departures_1h"] == 1 and got["09:26"]["avg_dep_delay_1h"] == 20
    assert got["09:26"]["avg_dep_delay_3h"] == 15 and got["09:26"]["late_share_3h"] == 0.5
    assert got["09:31"]["departures_1h"] == 2 and got["09:31"]["avg_dep_delay_24h"] == 10
    assert got["10:00"]["departures_1h"] == 2  # no departure after 10:00 yet: the 09:00 hour is the newest
    assert pd.isna(got["08:00"]["departures_1h"]) and pd.isna(got["08:00"]["avg_dep_delay_24h"])  # nothing before
