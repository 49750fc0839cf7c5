"""The event bus over the SQLite ingest log, in process: consumer groups, offsets, lag, the
retention of flushed events for groups behind, and the catch-up from the lake past its bound."""

import sqlite3
import threading
import time

import pyarrow as pa
import pytest

from contract_support import change_contract
from events import flight, lake_table, log_events, weather
from lakebook.errors import BadRequest, NotFound
from lakebook.ingest import flush_ingest_log_to_raw, open_ingest_log
from lakebook.ingest import flusher as flusher_module
from lakebook.stream import open_bus
from lakebook.stream.bus import SQLiteBus
from lakebook.workspace import Workspace


@pytest.fixture
def bus(workspace):
    bus = open_bus(workspace)
    yield bus
    bus.close()


def configured(workspace_dir, config: str) -> Workspace:
    """The test's workspace with these lines in its lakebook.yaml."""
    (workspace_dir / "lakebook.yaml").write_text("name: test\n" + config)
    return Workspace.load(workspace_dir)


def ids(batch) -> list[str]:
    return batch.table.column("_event_id").to_pylist()


def ids_of(workspace, events, source="flights") -> list[str]:
    return workspace.contract(source).validate(events).accepted.column("_event_id").to_pylist()


def read_all(bus, group: str, source: str = "flights", max_events: int = 10_000) -> list:
    """Every batch the group reads until none is left, each committed once read."""
    batches = []
    while (batch := bus.read(group, source, max_events, timeout_s=0)) is not None:
        batches.append(batch)
        bus.commit(group, source, batch.last_offset)
    return batches


def retained(workspace) -> list[tuple[int, int, bool]]:
    """(seq, events, payload kept) of every batch the log keeps for consumer groups after the flush."""
    with sqlite3.connect(workspace.ingest_log_path) as con:
        return con.execute("SELECT seq, n, payload IS NOT NULL FROM retained ORDER BY seq").fetchall()


def test_a_group_reads_the_events_as_the_flusher_builds_them(workspace, bus):
    log_events(workspace, "flights", [flight(i) for i in range(10)])
    log_events(workspace, "flights", [flight(i) for i in range(10, 15)], as_ndjson=True)
    bus.register("speed", ["flights"])
    assert bus.lag("speed", "flights") == 15
    batch = bus.read("speed", "flights")
    flush_ingest_log_to_raw(workspace)
    lake = lake_table(workspace, "raw", "flights")
    assert batch.source == "flights" and batch.table.column_names == lake.column_names
    assert batch.table.sort_by("_event_id").to_pylist() == lake.sort_by("_event_id").to_pylist()
    assert batch.last_offset > batch.first_offset  # two logged batches, by their sequence numbers
    bus.commit("speed", "flights", batch.last_offset)
    assert bus.lag("speed", "flights") == 0
    assert bus.read("speed", "flights", timeout_s=0) is None


def test_reads_come_in_order_in_whole_logged_batches_of_at_most_max_events(workspace, bus):
    bus.register("speed", ["flights"])
    sizes, start = [3, 4, 5], 0
    for size in sizes:
        log_events(workspace, "flights", [flight(i) for i in range(start, start + size)])
        start += size
    first = bus.read("speed", "flights", max_events=7)
    assert len(ids(first)) == 7 and ids(first) == ids_of(workspace, [flight(i) for i in range(7)])
    bus.commit("speed", "flights", first.last_offset)
    second = bus.read("speed", "flights", max_events=2)  # one batch, even if bigger than asked
    assert ids(second) == ids_of(workspace, [flight(i) for i in range(7, 12)])
    assert second.first_offset == second.last_offset > first.last_offset


def test_groups_read_apart_from_each_other_and_registering_again_keeps_the_offset(workspace, bus):
    log_events(workspace, "flights", [flight(i) for i in range(5)])
    bus.register("a", ["flights", "weather"])
    bus.register("b", ["flights"])
    assert len(ids(read_all(bus, "a")[0])) == 5
    bus.register("a", ["flights"])  # idempotent: no going back
    assert bus.read("a", "flights", timeout_s=0) is None
    bus.register("late", ["flights"], start="latest")
    log_events(workspace, "flights", [flight(i) for i in range(5, 8)])
    log_events(workspace, "weather", [weather(0)])
    assert [len(ids(b)) for b in read_all(bus, "a")] == [3]
    assert [len(ids(b)) for b in read_all(bus, "late")] == [3]
    assert [len(ids(b)) for b in read_all(bus, "b")] == [8]
    assert {(g["group"], g["source"], g["lag"]) for g in bus.groups()} == {
        ("a", "flights", 0), ("a", "weather", 1), ("b", "flights", 0), ("late", "flights", 0)}


def test_what_was_read_and_not_committed_is_read_again_after_a_crash(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(20)])
    first = SQLiteBus(workspace)
    first.register("speed", ["flights"])
    read = first.read("speed", "flights")
    first.close()  # the reader dies before it commits
    second = SQLiteBus(workspace)
    again = second.read("speed", "flights")
    assert (again.first_offset, again.last_offset, ids(again)) == (read.first_offset, read.last_offset, ids(read))
    second.commit("speed", "flights", again.last_offset)
    second.close()
    assert SQLiteBus(workspace).read("speed", "flights", timeout_s=0) is None


def test_flushed_events_stay_for_a_group_until_it_commits_them(workspace, bus):
    log_events(workspace, "flights", [flight(i) for i in range(100)])
    flush_ingest_log_to_raw(workspace)
    assert retained(workspace) == []  # no group: the flush keeps nothing
    bus.register("speed", ["flights"])
    log_events(workspace, "flights", [flight(i) for i in range(100, 150)])
    flush_ingest_log_to_raw(workspace)
    assert [(n, kept) for _, n, kept in retained(workspace)] == [(50, True)]
    assert open_ingest_log(workspace).backlog_by_source() == {}  # flushed: not part of the backlog
    [batch] = read_all(bus, "speed")
    assert ids(batch) == ids_of(workspace, [flight(i) for i in range(100, 150)])
    assert retained(workspace) == []  # committed by every group: deleted
    assert lake_table(workspace, "raw", "flights").num_rows == 150


def test_the_backlog_limit_counts_only_events_not_flushed(workspace_dir):
    from lakebook.errors import Backpressure
    from lakebook.ingest.service import IngestService

    ws = configured(workspace_dir, "ingest:\n  max_backlog_events: 40\n")
    bus = open_bus(ws)
    bus.register("speed", ["flights"])
    service = IngestService(ws, fork=False)
    try:
        log_events(ws, "flights", [flight(i) for i in range(50)], ingest_log=service.log)
        service.writer.recount()
        _wait_for(lambda: service.writer.by_source.get("flights") == 50)
        with pytest.raises(Backpressure):
            service.check_backlog("flights")
        service.flush_now()
        _wait_for(lambda: service.writer.by_source.get("flights", 0) == 0)
        service.check_backlog("flights")  # the 50 kept for the group do not count
        assert sum(n for _, n, _ in retained(ws)) == 50
    finally:
        service.stop()
        bus.close()


def _wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_group_behind_the_bound_catches_up_from_the_lake_files(workspace_dir):
    ws = configured(workspace_dir, "stream:\n  retain_events: 100\n")
    bus = open_bus(ws)
    bus.register("slow", ["flights"])
    bus.register("fast", ["flights"])
    for start in range(0, 300, 50):  # three flush ranges of two logged batches of 50 events
        log_events(ws, "flights", [flight(i) for i in range(start, start + 50)])
        if start % 100:
            flush_ingest_log_to_raw(ws)
        read_all(bus, "fast")
    kept = retained(ws)
    assert sum(n for _, n, payload in kept if payload) == 100  # the bound
    assert sum(n for _, n, payload in kept if not payload) == 200  # the lake has them
    assert bus.lag("slow", "flights") == 300
    batches = read_all(bus, "slow", max_events=50)
    lake_ranges = [b for b in batches if b.table.num_rows == 100]  # a range from the lake comes whole
    assert len(lake_ranges) == 2 and all(b.last_offset > b.first_offset for b in lake_ranges)
    got = [i for b in batches for i in ids(b)]
    assert sorted(got) == sorted(ids_of(ws, [flight(i) for i in range(300)]))  # each once
    assert all(b.table.schema.equals(ws.contract("flights").schema, check_metadata=True) for b in batches)
    assert bus.lag("slow", "flights") == 0 and retained(ws) == []
    bus.close()


def test_a_flush_range_a_group_is_inside_keeps_its_rest_in_the_log(workspace_dir):
    ws = configured(workspace_dir, "stream:\n  retain_events: 10\n")
    bus = open_bus(ws)
    bus.register("inside", ["flights"])
    bus.register("before", ["flights"])
    for start in range(0, 40, 10):
        log_events(ws, "flights", [flight(i) for i in range(start, start + 10)])
    first = bus.read("inside", "flights", max_events=10)
    bus.commit("inside", "flights", first.last_offset)
    flush_ingest_log_to_raw(ws)  # one range of four batches; "inside" is past its first
    assert [(n, payload) for _, n, payload in retained(ws)] == [(10, False), (10, True), (10, True), (10, True)]
    rest = [i for b in read_all(bus, "inside") for i in ids(b)]
    assert ids(first) + rest == ids_of(ws, [flight(i) for i in range(40)])
    [whole] = read_all(bus, "before")  # the range from the lake, whole
    assert sorted(ids(whole)) == sorted(ids_of(ws, [flight(i) for i in range(40)]))
    assert retained(ws) == []
    bus.close()


def test_a_flush_that_crashed_keeps_every_event_for_a_group_once(workspace, bus, monkeypatch):
    bus.register("speed", ["flights"])
    log_events(workspace, "flights", [flight(i) for i in range(300)])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed after the files were written")

    monkeypatch.setattr(flusher_module.Catalog, "record_files", crash)
    with pytest.raises(KeyboardInterrupt):
        flush_ingest_log_to_raw(workspace)
    monkeypatch.undo()
    flush_ingest_log_to_raw(workspace)
    got = [i for b in read_all(bus, "speed") for i in ids(b)]
    assert sorted(got) == sorted(ids_of(workspace, [flight(i) for i in range(300)]))


@pytest.mark.parametrize("as_ndjson", [False, True], ids=["arrow", "ndjson"])
def test_events_a_changed_contract_refuses_are_left_out_as_the_flusher_quarantines_them(workspace, bus, as_ndjson):
    bus.register("speed", ["weather"])
    log_events(workspace, "weather", [weather(i) for i in range(6)], as_ndjson=as_ndjson)
    change_contract(workspace, "weather", "temp: {type: float64, min: -60, max: 140,", "temp: {type: string,")
    log_events(workspace, "weather", [weather(i, temp="mild") for i in range(6, 9)], as_ndjson=as_ndjson)
    [batch] = read_all(bus, "speed", "weather")
    assert batch.table.column("temp").to_pylist() == ["mild"] * 3
    assert pa.types.is_string(batch.table.schema.field("temp").type)


def test_a_read_waits_for_events_up_to_its_timeout(workspace, bus):
    bus.register("speed", ["flights"])
    started = time.monotonic()
    assert bus.read("speed", "flights", timeout_s=0.2) is None
    assert 0.2 <= time.monotonic() - started < 1.0
    later = threading.Timer(0.1, lambda: log_events(workspace, "flights", [flight(1)]))
    later.start()
    started = time.monotonic()
    batch = bus.read("speed", "flights", timeout_s=5)
    later.join()
    assert len(ids(batch)) == 1 and time.monotonic() - started < 2


def test_an_unknown_group_or_start_is_a_clear_error(bus):
    with pytest.raises(NotFound, match="'nobody' does not read source 'flights'") as caught:
        bus.read("nobody", "flights", timeout_s=0)
    assert "register" in caught.value.hint
    with pytest.raises(NotFound):
        bus.commit("nobody", "flights", 3)
    with pytest.raises(NotFound):
        bus.lag("nobody", "flights")
    with pytest.raises(BadRequest, match="'earliest' or 'latest'"):
        bus.register("speed", ["flights"], start="middle")


def test_dropping_a_group_releases_what_was_kept_for_it(workspace, bus):
    bus.register("gone", ["flights"])
    log_events(workspace, "flights", [flight(i) for i in range(10)])
    flush_ingest_log_to_raw(workspace)
    assert retained(workspace)
    open_ingest_log(workspace).drop_group("gone")
    assert retained(workspace) == [] and bus.groups() == []


# -- settings, errors, metrics --------------------------------------------------------------
def test_the_bus_is_chosen_in_lakebook_yaml(workspace, workspace_dir):
    from lakebook.backends import RedisBusConfig, SQLiteBusConfig
    from lakebook.stream.redis_bus import RedisBus

    assert isinstance(workspace.settings.stream.bus, SQLiteBusConfig)
    ws = configured(workspace_dir, "stream:\n  bus: {type: redis, url: 'redis://127.0.0.1:1/0', maxlen: 1000}\n")
    assert ws.settings.stream.bus == RedisBusConfig(url="redis://127.0.0.1:1/0", maxlen=1000)
    bus = open_bus(ws)  # connects on first use, not here
    assert isinstance(bus, RedisBus)
    bus.close()


@pytest.mark.parametrize("bus, message", [
    ("kafka", "unknown event bus 'kafka'; allowed: redis, sqlite"),
    ("{type: redis, urll: 'redis://x'}", "unknown key 'urll' for type redis; did you mean 'url'?"),
    ("{type: redis, url: 'http://x'}", "stream.bus: url: String should match pattern"),
])
def test_a_wrong_bus_setting_says_what_is_allowed(workspace_dir, bus, message):
    from lakebook.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        configured(workspace_dir, f"stream:\n  bus: {bus}\n")
    assert message in caught.value.message


def test_a_redis_password_is_refused_in_lakebook_yaml_and_masked_from_the_environment(workspace_dir, monkeypatch):
    from lakebook.errors import BusUnavailable, ConfigError
    from lakebook.services import free_port

    with pytest.raises(ConfigError) as refused:
        configured(workspace_dir, "stream:\n  bus: {type: redis, url: 'redis://:s3cret-pw@127.0.0.1:6379/0'}\n")
    assert "s3cret-pw" not in str(refused.value) and "LAKEBOOK_STREAM__BUS" in refused.value.hint
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"  # nothing listens there
    monkeypatch.setenv("LAKEBOOK_STREAM__BUS", f"{{type: redis, url: '{url}'}}")
    bus = open_bus(configured(workspace_dir, ""))
    with pytest.raises(BusUnavailable) as failed:
        bus.lag("speed", "flights")
    bus.close()
    assert "s3cret-pw" not in str(failed.value) and "redis://:***@127.0.0.1" in failed.value.message


def test_metrics_show_each_groups_lag_and_offset():
    from events import metric, parse_metrics
    from lakebook.ingest.metrics import IngestMetrics

    rows = [{"group": "speed", "source": "flights", "offset": 41, "lag": 7},
            {"group": "lakebook.forwarder", "source": "weather", "offset": 3, "lag": 0}]
    samples = parse_metrics(IngestMetrics().exposition({}, 0, rows).decode())
    assert metric(samples, "lakebook_bus_lag_events", group="speed", source="flights") == 7
    assert metric(samples, "lakebook_bus_committed_offset", group="speed", source="flights") == 41
    assert ("lakebook_bus_lag_events", (("group", "lakebook.forwarder"), ("source", "weather"))) in samples
