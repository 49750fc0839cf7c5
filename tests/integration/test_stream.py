"""The speed layer on real Ray (one local runtime for the session), the SQLite bus over the
ingest log, Feast's SQLite online store and the lake: the values Spark's batch job gives on the
same events, fresh online rows, each event counted once through kill -9 of Ray worker
processes, and the consistency check."""

from __future__ import annotations

import math
import os
import signal
import time
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from events import log_events
from stream_support import latest_revisions, synthetic_flights, synthetic_weather
from lakebook import features
from lakebook.catalog import open_catalog
from lakebook.cli import cli
from lakebook.features.windows import feature_definition
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession
from lakebook.stream.inputs import InputRows
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration

LATER = datetime(2013, 1, 20, tzinfo=timezone.utc)  # after the template's first 17 days
DELAYS = ["departures_1h", "avg_dep_delay_1h", "avg_dep_delay_3h", "late_share_3h", "avg_dep_delay_24h",
          "late_share_24h"]
WEATHER = ["temp_c", "humid", "wind_speed", "precip", "visib_km"]
STREAM_CONFIG = "stream:\n  speed_flush_interval_s: 0.5\n  poll_timeout_s: 0.05\n  max_batch_events: 500\n"


@pytest.fixture
def streaming_ws(flights_ws, ray_runtime):
    """The template's batch layer applied and materialized, the stream set to flush often."""
    config = flights_ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + STREAM_CONFIG)
    ws = Workspace.load(flights_ws.root)
    features.apply(ws)
    features.materialize(ws)
    return ws


@pytest.fixture
def job(streaming_ws):
    from lakebook.stream.job import StreamJob

    running = StreamJob(streaming_ws).start()
    yield running
    running.stop()


def wait_until(condition, timeout_s: float = 180, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout_s} s"
        time.sleep(0.1)


def caught_up(ws, job) -> bool:
    from lakebook.stream import open_bus

    bus = open_bus(ws)
    try:
        return all(bus.lag(ws.settings.stream.group, source) == 0 for source in job.sources)
    finally:
        bus.close()


def later_events(n_flights: int, seed: int = 3):
    return (synthetic_flights(n_flights, seed=seed, start=LATER, hours=30),
            synthetic_weather(90, seed=seed, start=LATER))


def speed_table(ws, view: str) -> list[dict]:
    """The last revision of every row the stream wrote to speed.<view>."""
    return latest_revisions([LakeSession(ws).query(f"SELECT * FROM speed.{view} ORDER BY _offset, _emitted_at").table])


def online(ws, view: str, names: list[str], origin: str) -> dict:
    found = features.feature_store(ws).get_online_features(
        features=[f"{view}:{n}" for n in names], entity_rows=[{"origin": origin}]).to_dict()
    return {n: found[n][0] for n in names}


def close(a: dict, b: dict, names: list[str]) -> bool:
    return all((a[n] is None and b[n] is None) or math.isclose(a[n], b[n], rel_tol=1e-9) for n in names)


def assert_same_rows(got: list[dict], expected: list[dict], names: list[str]) -> None:
    assert [(r["origin"], r["event_timestamp"]) for r in got] == [(r["origin"], r["event_timestamp"]) for r in expected]
    assert all(close(a, b, names) for a, b in zip(got, expected)), [(a, b) for a, b in zip(got, expected)
                                                                    if not close(a, b, names)][:3]


def test_the_stream_gives_what_spark_gives_on_the_same_events_and_keeps_the_online_store_fresh(streaming_ws, job):
    from lakebook.transform import run_transforms

    flights, weather = later_events(1500)
    for start in range(0, len(flights), 300):
        log_events(streaming_ws, "flights", flights[start:start + 300])
    log_events(streaming_ws, "weather", weather)
    wait_until(lambda: caught_up(streaming_ws, job), what="the stream catching up")
    job.stop()
    flush_ingest_log_to_raw(streaming_ws)
    run_transforms(streaming_ws, ["flights_clean", "weather_hourly", "origin_delays", "origin_weather"])
    later = f"event_timestamp >= TIMESTAMPTZ '{LATER.isoformat()}'"
    for view, names in (("origin_delays", DELAYS), ("origin_weather", WEATHER)):
        spark = LakeSession(streaming_ws).query(
            f"SELECT * FROM features.{view} WHERE {later} ORDER BY origin, event_timestamp").table.to_pylist()
        assert len(spark) > 20
        assert_same_rows(speed_table(streaming_ws, view), spark, names)
        for origin in ("EWR", "JFK", "LGA"):  # the newest row of each entity is what the store serves
            newest = [r for r in spark if r["origin"] == origin][-1]
            assert close(online(streaming_ws, view, names, origin), newest, names), (view, origin)
    report = job.report()
    assert report["sources"]["flights"]["events"] == len(flights) and report["sources"]["flights"]["failures"] == 0
    assert report["views"]["origin_delays"]["pushes"] > 0 and report["views"]["origin_delays"]["last_push_unix"]
    lineage = {(e["downstream"], e["upstream"]) for e in open_catalog(streaming_ws).lineage("speed.origin_delays")}
    assert ("speed.origin_delays", "raw.flights") in lineage and ("speed.origin_delays", "ref.airports") in lineage


def ray_pid(actor) -> int:
    import ray

    return ray.get(actor.pid.remote(), timeout=120)


def test_a_ray_worker_killed_mid_stream_loses_and_double_counts_nothing(streaming_ws, job):
    flights, weather = later_events(3000, seed=5)
    resent = flights[:200]  # a client sending again
    chunks = [flights[i:i + 250] for i in range(0, len(flights), 250)] + [resent]
    victims = [job.operators["origin_delays"], job.readers["flights"], job.sink, job.operators["origin_weather"]]
    for i, chunk in enumerate(chunks):
        log_events(streaming_ws, "flights", chunk)
        log_events(streaming_ws, "weather", weather[i * 7:(i + 1) * 7])
        if i % 3 == 1:
            time.sleep(0.3)  # mid-stream: the chunk is being read
            os.kill(ray_pid(victims[(i // 3) % len(victims)]), signal.SIGKILL)
    wait_until(lambda: caught_up(streaming_ws, job), what="the stream catching up after the kills")
    assert sum(s.failures for s in job.status.values()) > 0  # the kills were noticed, and survived
    job.stop()
    flush_ingest_log_to_raw(streaming_ws)
    catalog = open_catalog(streaming_ws)
    for view, names in (("origin_delays", DELAYS), ("origin_weather", WEATHER)):
        rows = InputRows(streaming_ws, feature_definition(streaming_ws, view))
        rows.bind_lake(catalog)
        batch = sorted((r for r in rows.table().to_pylist() if r["event_timestamp"] >= LATER),
                       key=lambda r: (r["origin"], r["event_timestamp"]))
        assert_same_rows(speed_table(streaming_ws, view), batch, names)
        for origin in ("EWR", "JFK", "LGA"):
            newest = [r for r in batch if r["origin"] == origin][-1]
            assert close(online(streaming_ws, view, names, origin), newest, names), (view, origin)


def check(ws, *args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-w", str(ws.root), "features", "check", *args], catch_exceptions=False)
    return result.exit_code, result.output


def consistency(ws):
    """The result of a ``lambda_consistency(origin_delays)`` check evaluated by the monitor."""
    from lakebook.monitor.engine import evaluate

    (ws.root / "monitors").mkdir(exist_ok=True)
    (ws.root / "monitors" / "lambda.yaml").write_text(
        "checks: [{check: lambda_consistency(origin_delays), window: 12h, fail: '> 0', for: 0}]\n")
    [(_, result, _)] = evaluate(Workspace.load(ws.root), names=["lambda_consistency_origin_delays"]).results
    return result


def test_features_check_agrees_with_a_caught_up_stream_and_names_each_mismatch(streaming_ws, job):
    import pandas as pd
    from feast.data_source import PushMode

    flights, weather = later_events(800, seed=9)
    log_events(streaming_ws, "flights", flights)
    log_events(streaming_ws, "weather", weather)
    wait_until(lambda: caught_up(streaming_ws, job), what="the stream catching up")
    job.stop()
    flush_ingest_log_to_raw(streaming_ws)
    code, out = check(streaming_ws, "--since", "12h")
    assert code == 0, out
    assert "origin_delays:" in out and "mismatches: speed 0, online 0" in out and "consistent" in out
    before = consistency(streaming_ws)
    newest = online(streaming_ws, "origin_delays", DELAYS, "JFK")
    wrong = {"origin": ["JFK"], "event_timestamp": [pd.Timestamp("2030-01-01", tz="UTC")],
             **{n: [newest[n] + 1.0] for n in DELAYS}}
    features.feature_store(streaming_ws).push("origin_delays_push", pd.DataFrame(wrong), to=PushMode.ONLINE)
    code, out = check(streaming_ws, "origin_delays", "--since", "12h")
    assert code == 1 and "mismatches found" in out
    assert "online value differs" in out and "origin=JFK" in out and "departures_1h" in out
    # the monitor's lambda_consistency check measures the same: it fires on the pushed value
    after = consistency(streaming_ws)
    assert (before.state, before.value) == ("ok", 0.0), before.detail
    assert (after.state, after.level) == ("firing", "fail") and after.value >= 1, after.detail
    assert after.detail.startswith("origin_delays: 0 speed and ") and "online rows differ from batch" in after.detail


def test_the_push_sink_follows_features_apply(flights_ws, ray_runtime):
    """Started before the feature views are registered, the stream pushes once
    `lakebook features apply` has registered them: the sink reads the changed registry."""
    from lakebook.stream.job import StreamJob

    config = flights_ws.root / "lakebook.yaml"
    config.write_text(config.read_text() + STREAM_CONFIG)
    ws = Workspace.load(flights_ws.root)
    running = StreamJob(ws).start()
    try:
        flights, weather = later_events(300, seed=13)
        log_events(ws, "flights", flights)
        log_events(ws, "weather", weather)
        wait_until(lambda: running.status["flights"].problem is not None, what="a failed push (no views yet)")
        assert "no view origin_delays" in running.status["flights"].problem
        features.apply(ws)
        wait_until(lambda: caught_up(ws, running) and running.views["origin_delays"].pushes > 0,
                   what="pushes after features apply")
        assert online(ws, "origin_weather", WEATHER, "JFK")["temp_c"] is not None
    finally:
        running.stop()
