"""The bus and the speed layer on an S3 lake (``lake.root: s3://bucket/lake``) against a real
local S3 server (moto's standalone server, tests/s3_support.py): events go through the ingest
log and a flush into the bucket; a consumer group the log has let go of reads the flushed
ranges back from there; the stream job on real Ray (one runtime for the session) writes its
``speed.*`` tables into the bucket and pushes the online rows it would push on a local lake."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from events import flight, log_events
from ingest_support import make_workspace
from s3_support import bucket, s3, s3_env  # noqa: F401 (fixtures)
from stream_support import latest_revisions, synthetic_flights, synthetic_weather, with_feature_repo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

LATER = datetime(2013, 1, 20, tzinfo=timezone.utc)
DELAYS = ["departures_1h", "avg_dep_delay_1h", "avg_dep_delay_3h", "late_share_3h", "avg_dep_delay_24h",
          "late_share_24h"]
WEATHER = ["temp_c", "humid", "wind_speed", "precip", "visib_km"]
STREAM_CONFIG = ("stream:\n  speed_flush_interval_s: 0.5\n  poll_timeout_s: 0.05\n  max_batch_events: 500\n"
                 "  retain_events: {retain}\n")


def workspace_at(root: Path, lake_root: str | None, retain: int):
    from lakebook.workspace import Workspace

    config = "name: s3stream\n" + (f"lake:\n  root: {lake_root}\n" if lake_root else "")
    make_workspace(root, config + STREAM_CONFIG.format(retain=retain))
    return Workspace.load(root)


def local_parquet(root: Path) -> list[Path]:
    return list(root.rglob("*.parquet"))


def retained(ws) -> list[tuple[int, bool]]:
    """(events, payload kept) of every batch the log keeps for consumer groups after the flush."""
    with sqlite3.connect(ws.ingest_log_path) as con:
        return con.execute("SELECT n, payload IS NOT NULL FROM retained ORDER BY seq").fetchall()


def test_a_group_the_log_let_go_of_reads_the_flushed_ranges_back_from_the_bucket(s3, bucket, tmp_path):
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.ingest.groups import LakeRanges
    from lakebook.stream import open_bus

    ws = workspace_at(tmp_path / "ws", f"s3://{bucket}/lake", retain=100)
    bus = open_bus(ws)
    try:
        bus.register("slow", ["flights"])
        for start in range(0, 300, 50):  # three flush ranges of two logged batches of 50 events
            assert not log_events(ws, "flights", [flight(i) for i in range(start, start + 50)])["rejected"]
            if start % 100:
                assert flush_ingest_log_to_raw(ws).events == 100
        kept = retained(ws)
        assert sum(n for n, payload in kept if payload) == 100  # the bound
        assert sum(n for n, payload in kept if not payload) == 200  # only the bucket has them
        raw_keys = s3.keys(bucket, "lake/raw/flights/")
        stems = {k.rsplit("/", 1)[1] for k in raw_keys}
        assert stems == {f"part-{lo:012d}-{lo + 1:012d}.parquet" for lo in (1, 3, 5)}

        ranges = LakeRanges(ws)
        try:  # a range's files, one per event date, as the catalog lists them
            spanning = sorted(f"s3://{bucket}/{k}" for k in raw_keys if "-000000000003-" in k)
            assert len(spanning) == 2 and ranges.files("flights", 3, 4) == spanning
            assert ranges.files("flights", 1, 1) == []  # no flush wrote that range
        finally:
            ranges.close()

        batches = []
        while (batch := bus.read("slow", "flights", 50, timeout_s=0)) is not None:
            batches.append(batch)
            bus.commit("slow", "flights", batch.last_offset)
        from_lake = [b for b in batches if b.table.num_rows == 100]  # a range from the lake comes whole
        assert [(b.first_offset, b.last_offset) for b in from_lake] == [(1, 2), (3, 4)]
        got = [i for b in batches for i in b.table.column("_event_id").to_pylist()]
        expected = ws.contract("flights").validate([flight(i) for i in range(300)]).accepted
        assert sorted(got) == sorted(expected.column("_event_id").to_pylist())  # each event once
        assert all(b.table.schema.equals(ws.contract("flights").schema, check_metadata=True) for b in batches)
        assert bus.lag("slow", "flights") == 0 and retained(ws) == []
    finally:
        bus.close()
    assert local_parquet(ws.root) == []


# -- the stream job -----------------------------------------------------------------------------
@pytest.fixture
def actors_reach_s3(s3, monkeypatch):
    """The stream's actors get the S3 server's environment. A deployment gives it to every Ray
    node (the runtime lakebook starts inherits it); the session's Ray runtime was started before
    this module's S3 server, so its workers get it with the actors' runtime_env instead."""
    from lakebook.stream import job as job_module

    plain = job_module.ray_runtime_options

    def with_s3(profile):
        options = plain(profile)
        runtime_env = options.setdefault("runtime_env", {})
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **s3.env}
        return options

    monkeypatch.setattr(job_module, "ray_runtime_options", with_s3)


def streamed(ws, flights: list[dict], weather: list[dict]):
    """The events logged and flushed in ranges (the log keeping few for the stream's group,
    which reads the rest back from the lake), then streamed until caught up; the job, stopped."""
    from lakebook import features
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.stream import open_bus
    from lakebook.stream.job import StreamJob

    with_feature_repo(ws)
    features.apply(ws)
    bus = open_bus(ws)
    try:
        bus.register(ws.settings.stream.group, ["flights", "weather"])
        for start in range(0, len(flights), 300):
            log_events(ws, "flights", flights[start:start + 300])
            log_events(ws, "weather", weather[start // 10:(start + 300) // 10])
            flush_ingest_log_to_raw(ws)
        assert any(not payload for _, payload in retained(ws))  # some ranges only the lake holds
        job = StreamJob(ws).start()
        try:
            wait_until(lambda: all(bus.lag(ws.settings.stream.group, s) == 0 for s in job.sources))
        finally:
            job.stop()
    finally:
        bus.close()
    return job


def wait_until(condition, timeout_s: float = 240) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"the stream did not catch up within {timeout_s} s"
        time.sleep(0.1)


def speed_rows(ws, view: str) -> list[dict]:
    from lakebook.query import LakeSession

    table = LakeSession(ws).query(f"SELECT * FROM speed.{view} ORDER BY _offset, _emitted_at").table
    return latest_revisions([table])


def online(ws, view: str, names: list[str]) -> dict:
    from lakebook import features

    found = features.feature_store(ws).get_online_features(
        features=[f"{view}:{n}" for n in names], entity_rows=[{"origin": o} for o in ("EWR", "JFK", "LGA")]).to_dict()
    return {n: found[n] for n in names}


def test_the_stream_on_an_s3_lake_gives_what_it_gives_on_a_local_lake(s3, bucket, tmp_path, ray_runtime,
                                                                      actors_reach_s3):
    from lakebook.stream.check import check_features

    flights = synthetic_flights(900, seed=11, start=LATER, hours=30)
    weather = synthetic_weather(90, seed=11, start=LATER)
    on_s3 = workspace_at(tmp_path / "on_s3", f"s3://{bucket}/lake", retain=100)
    local = workspace_at(tmp_path / "local", None, retain=100)
    jobs = {"s3": streamed(on_s3, flights, weather), "local": streamed(local, flights, weather)}
    for job in jobs.values():
        assert job.report()["sources"]["flights"]["events"] == len(flights)
        assert all(s.failures == 0 for s in job.status.values()), [s.problem for s in job.status.values()]
    for view, names in (("origin_delays", DELAYS), ("origin_weather", WEATHER)):
        rows = speed_rows(on_s3, view)
        assert len(rows) > 20 and rows == speed_rows(local, view)
        assert online(on_s3, view, names) == online(local, view, names)
    speed_keys = s3.keys(bucket, "lake/speed/")
    assert {k.split("/")[2] for k in speed_keys} == {"origin_delays", "origin_weather"}
    assert local_parquet(on_s3.root) == [] and not (on_s3.root / ".lakebook" / "lake").exists()
    report = check_features(on_s3, since="48h")  # the batch recomputation from the bucket agrees
    assert report.ok and all(v.batch_rows > 0 and v.speed_rows > 0 for v in report.views), report.as_json()


def test_the_streams_inputs_follow_a_version_published_on_an_s3_lake(s3, bucket, tmp_path):
    """A published version has no ``current`` link on S3: the stream's view of ref.airports is
    the catalog's list of its files, looked up again at every micro-batch."""
    from lakebook.features.windows import feature_definition
    from lakebook.stream.inputs import InputRows
    from lakebook.transform import load_seeds

    ws = with_feature_repo(workspace_at(tmp_path / "ws", f"s3://{bucket}/lake", retain=100))
    rows = InputRows(ws, feature_definition(ws, "origin_delays"))
    try:
        def airports() -> int:
            return rows.con.execute("SELECT count(*) FROM ref.airports").fetchall()[0][0]

        assert airports() == 1458
        seed = ws.root / "seeds" / "airports.csv"
        seed.write_text("\n".join(seed.read_text().splitlines()[:11]) + "\n")
        load_seeds(ws)  # a new version of ref.airports, under a key of its own
        assert airports() == 1458  # nothing changes between micro-batches
        rows.bind_events(ws.contract("flights").schema.empty_table())  # the next micro-batch
        assert airports() == 10
    finally:
        rows.close()
    assert len({k.split("/")[3] for k in s3.keys(bucket, "lake/ref/airports/")}) == 2
    assert local_parquet(ws.root) == []
