"""The event bus against real servers: consumer groups reading what a real ingest server
accepted while its flusher moves it to the lake; the Redis Streams twin on a real
redis-server, fed by the server's forwarder, through crashes of the forwarder and kill -9
of the whole server."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter

import httpx
import pytest

from events import flight, log_events
from ingest_support import (  # noqa: F401  (ingest_server is a fixture)
    NDJSON, event_ids, flush, ingest_server, lake_ids, load_workspace, metric, ndjson, parse_metrics,
    start_ingest_server,
)
from lakebook.ingest.forwarder import FORWARDER_GROUP, RedisForwarder
from lakebook.stream import open_bus

pytestmark = pytest.mark.integration


def post(server, events: list, source: str = "flights") -> None:
    with server.client() as http:
        answer = http.post(f"/v1/events/{source}", content=ndjson(events), headers=NDJSON)
    assert answer.status_code == 200, answer.text


def drain(bus, group: str, expected: int, source: str = "flights", timeout_s: float = 60) -> list[str]:
    """Read and commit until ``expected`` events came or the time is up; the event ids read."""
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expected and time.monotonic() < deadline:
        batch = bus.read(group, source, timeout_s=0.5)
        if batch is not None:
            got += batch.table.column("_event_id").to_pylist()
            bus.commit(group, source, batch.last_offset)
    return got


def lags(server) -> dict[str, float]:
    """lakebook_bus_lag_events of each group for flights, from the server's /metrics."""
    with server.client() as http:
        samples = parse_metrics(http.get("/metrics").text)
    return {dict(labels)["group"]: value for (name, labels), value in samples.items()
            if name == "lakebook_bus_lag_events" and dict(labels)["source"] == "flights"}


def wait_until(condition, timeout_s: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout_s} s"
        time.sleep(0.1)


def use_redis(workspace_dir, port: int, retain_events: int | None = None) -> None:
    extra = f"  retain_events: {retain_events}\n" if retain_events else ""
    (workspace_dir / "lakebook.yaml").write_text(
        f"name: test\nstream:\n  bus: {{type: redis, url: 'redis://127.0.0.1:{port}/0'}}\n{extra}")


def test_groups_read_what_a_real_server_accepted_while_it_flushes(workspace_dir, ingest_server):
    server = ingest_server(workspace_dir, flush_interval_s=0.2)
    bus = open_bus(load_workspace(workspace_dir))
    bus.register("speed", ["flights"])
    bus.register("idle", ["flights"])
    events = [flight(i) for i in range(1000)]
    for start in range(0, 1000, 50):
        post(server, events[start:start + 50])
    expected = Counter(event_ids(workspace_dir, events))
    assert Counter(drain(bus, "speed", 1000)) == expected
    wait_until(lambda: sum(lake_ids(workspace_dir).values()) == 1000, what="the flush of every event")
    assert lags(server) == {"speed": 0, "idle": 1000}
    assert Counter(drain(bus, "idle", 1000)) == expected  # flushed meanwhile: kept in the log for it
    assert lags(server) == {"speed": 0, "idle": 0}
    bus.close()
    assert server.stop() == 0


def test_the_redis_bus_delivers_what_the_server_accepted_in_order(workspace_dir, ingest_server, redis_server):
    import redis

    use_redis(workspace_dir, redis_server)
    bus = open_bus(load_workspace(workspace_dir))
    bus.register("speed", ["flights"])
    server = ingest_server(workspace_dir, flush_interval_s=0.2)
    events = [flight(i) for i in range(1000)]
    for start in range(0, 1000, 50):
        post(server, events[start:start + 50])
    got = drain(bus, "speed", 1000)
    assert got == event_ids(workspace_dir, events)  # one client, one request after the other: in order
    entries = redis.Redis(port=redis_server).xrange("lakebook:events:flights")
    seqs = [int(entry_id.split(b"-")[0]) for entry_id, _ in entries]
    assert seqs == sorted(seqs) and sum(int(fields[b"n"]) for _, fields in entries) == 1000
    wait_until(lambda: lags(server) == {"speed": 0, FORWARDER_GROUP: 0}, what="no lag")
    assert bus.groups() == [{"group": "speed", "source": "flights", "offset": seqs[-1], "lag": 0}]

    post(server, [flight(i) for i in range(1000, 1010)])
    read = bus.read("speed", "flights", timeout_s=10)
    bus.close()  # the reader dies before it commits
    again = open_bus(load_workspace(workspace_dir))
    batch = again.read("speed", "flights", timeout_s=10)
    assert (batch.first_offset, batch.last_offset) == (read.first_offset, read.last_offset)
    assert batch.table.equals(read.table)
    assert again.lag("speed", "flights") == 10
    again.commit("speed", "flights", batch.last_offset)
    assert again.read("speed", "flights", timeout_s=0.2) is None and again.lag("speed", "flights") == 0
    again.close()
    assert server.stop() == 0


def test_a_forwarder_that_dies_between_xadd_and_commit_adds_nothing_twice(workspace_dir, redis_server):
    import redis

    use_redis(workspace_dir, redis_server)
    ws = load_workspace(workspace_dir)
    bus = open_bus(ws)
    bus.register("speed", ["flights"])
    for start in range(0, 30, 10):
        log_events(ws, "flights", [flight(i) for i in range(start, start + 10)])
    with sqlite3.connect(ws.ingest_log_path) as con:
        logged = [seq for (seq,) in con.execute("SELECT seq FROM batches ORDER BY seq")]
    dying = RedisForwarder(ws)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after XADD, before the commit")

    dying._log.commit_group = killed
    with pytest.raises(KeyboardInterrupt):
        dying.forward()
    client = redis.Redis(port=redis_server)
    assert client.xlen("lakebook:events:flights") == 3
    restarted = RedisForwarder(ws)  # a new process: it knows only what the log and Redis hold
    assert restarted.forward() == 0  # read again from the log, all at or below the stream's last ID
    log_events(ws, "flights", [flight(i) for i in range(30, 35)])
    assert restarted.forward() == 5
    ids = [int(i.split(b"-")[0]) for i, _ in client.xrange("lakebook:events:flights")]
    assert ids[:3] == logged and len(ids) == len(set(ids)) == 4
    assert Counter(drain(bus, "speed", 35)) == Counter(event_ids(workspace_dir, [flight(i) for i in range(35)]))
    restarted.close()
    dying.close()
    bus.close()


def test_a_forwarder_behind_the_bound_forwards_the_flushed_ranges_from_the_lake(workspace_dir, redis_server):
    use_redis(workspace_dir, redis_server, retain_events=10)
    ws = load_workspace(workspace_dir)
    bus = open_bus(ws)
    bus.register("speed", ["flights"])
    forwarder = RedisForwarder(ws)
    assert forwarder.forward() == 0  # registers its group on the log
    for start in range(0, 40, 10):
        log_events(ws, "flights", [flight(i) for i in range(start, start + 10)])
    flush(workspace_dir)  # Redis has none of it yet; the log keeps 10 of the 40 events
    assert forwarder.forward() == 40
    assert forwarder.forward() == 0
    got = drain(bus, "speed", 40)
    assert Counter(got) == Counter(event_ids(workspace_dir, [flight(i) for i in range(40)]))
    forwarder.close()
    bus.close()


def forwarder_child(server, redis_port: int):
    """The server's child process that talks to Redis: the forwarder (the server itself does
    only for /metrics, which this test does not ask for before)."""
    import psutil

    for child in psutil.Process(server.process.pid).children():
        if any(c.raddr and c.raddr.port == redis_port for c in child.net_connections(kind="tcp")):
            return child
    return None


def test_a_forwarder_process_killed_under_load_is_replaced_and_loses_nothing(workspace_dir, ingest_server,
                                                                             redis_server):
    use_redis(workspace_dir, redis_server)
    bus = open_bus(load_workspace(workspace_dir))
    bus.register("speed", ["flights"])
    server = ingest_server(workspace_dir, flush_interval_s=0.2)
    post(server, [flight(i) for i in range(100)])
    wait_until(lambda: forwarder_child(server, redis_server) is not None, what="the forwarder's connection")
    forwarder_child(server, redis_server).kill()  # SIGKILL, mid-stream
    for start in range(100, 2000, 100):
        post(server, [flight(i) for i in range(start, start + 100)])
    got = drain(bus, "speed", 2000)
    assert Counter(got) == Counter(event_ids(workspace_dir, [flight(i) for i in range(2000)]))
    wait_until(lambda: "forwarding from a thread" in server.log_text(), what="the replacement")
    bus.close()
    assert server.stop() == 0


def test_kill_9_of_the_server_neither_loses_nor_duplicates_an_event_on_redis(workspace_dir, redis_server):
    """Rounds of load, each ended by SIGKILL of the server (forwarder and flusher with it);
    then one more server forwards the rest. Every acknowledged event is on the stream once,
    and the stream holds exactly what the lake holds."""
    use_redis(workspace_dir, redis_server)
    bus = open_bus(load_workspace(workspace_dir))
    bus.register("audit", ["flights"])
    rng = random.Random(11)
    acked: list[range] = []
    next_index = 0
    for _ in range(6):
        server = start_ingest_server(workspace_dir, flush_interval_s=0.2)
        stop = threading.Event()

        def load() -> None:
            nonlocal next_index
            with httpx.Client(base_url=server.url, timeout=httpx.Timeout(15, connect=2)) as http:
                while not stop.is_set():
                    batch = range(next_index, next_index + rng.randint(20, 80))
                    next_index = batch.stop
                    try:
                        answer = http.post("/v1/events/flights", content=ndjson([flight(i) for i in batch]),
                                           headers=NDJSON)
                    except httpx.TransportError:  # killed mid-request: not acknowledged
                        return
                    if answer.status_code == 200:
                        acked.append(batch)

        client = threading.Thread(target=load)
        client.start()
        time.sleep(rng.uniform(0.4, 1.2))
        server.kill()
        stop.set()
        client.join(30)
    server = start_ingest_server(workspace_dir, flush_interval_s=0.2)
    wait_until(lambda: lags(server).get(FORWARDER_GROUP) == 0, what="everything forwarded")
    assert server.stop() == 0
    on_stream = drain(bus, "audit", 10**9, timeout_s=5)
    bus.close()
    acked_ids = event_ids(workspace_dir, [flight(i) for batch in acked for i in batch])
    assert len(acked_ids) > 500
    assert max(Counter(on_stream).values()) == 1  # nothing twice
    assert set(acked_ids) <= set(on_stream)  # nothing acknowledged lost
    assert set(on_stream) == set(lake_ids(workspace_dir))  # and nothing the log did not hold
