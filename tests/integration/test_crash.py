"""The crash test of the spec: ``kill -9`` the ingest server at random moments under load,
restart it, and at the end flush. Every event the server acknowledged (HTTP 200 reached
the client) must be in the raw lake exactly once, and nothing may be there that was never
sent. The flush interval is 0.2 s, so kills land mid-request, mid-commit and mid-flush."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from events import flight
from lakebook.ingest import open_ingest_log
from ingest_support import NDJSON, IngestServer, event_ids, flush, lake_ids, load_workspace, ndjson, start_ingest_server

pytestmark = pytest.mark.integration

ROUNDS = 20
SEED = 20130101
CLIENTS = 2


@dataclass(frozen=True)
class Batch:
    lo: int
    hi: int  # events flight(lo) .. flight(hi - 1)

    @property
    def indices(self) -> range:
        return range(self.lo, self.hi)


@dataclass
class Load:
    """What the clients sent and what the server acknowledged (shared by the client threads)."""

    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_index: int = 0
    sent: list[Batch] = field(default_factory=list)
    acked: list[Batch] = field(default_factory=list)
    resends: int = 0
    in_doubt: int = 0  # requests that died with the server (not acknowledged)
    abandoned: int = 0  # in-doubt batches the client gave up on
    problems: list[str] = field(default_factory=list)

    def new_batch(self, size: int) -> Batch:
        with self.lock:
            batch = Batch(self.next_index, self.next_index + size)
            self.next_index += size
            self.sent.append(batch)
            return batch


def client(load: Load, seed: int) -> None:
    """Send NDJSON batches as fast as the server takes them. A batch whose request failed is
    retried (at-least-once, like a real producer) or, sometimes, abandoned; now and then an
    acknowledged batch is sent again. Any answer but 200 or 503 is a problem."""
    rng = random.Random(seed)
    pending: Batch | None = None
    with httpx.Client(timeout=httpx.Timeout(15, connect=2)) as http:
        while not load.stop.is_set():
            if pending is not None:
                batch = pending
            elif load.acked and rng.random() < 0.15:
                with load.lock:
                    batch = rng.choice(load.acked)
                    load.resends += 1
            else:
                batch = load.new_batch(rng.randint(50, 200))
            body = ndjson([flight(i) for i in batch.indices])
            try:
                answer = http.post(f"{load.url}/v1/events/flights", content=body, headers=NDJSON)
            except httpx.ConnectError:  # the server is down: nothing was delivered, wait for it
                pending = batch
                time.sleep(0.05)
                continue
            except httpx.TransportError:
                with load.lock:
                    load.in_doubt += 1
                    if rng.random() < 0.3:
                        load.abandoned += 1
                        pending = None
                    else:
                        pending = batch
                time.sleep(0.02)
                continue
            if answer.status_code == 200:
                doc = answer.json()
                if doc["accepted"] != len(batch.indices) or doc["rejected"]:
                    load.problems.append(f"batch {batch} answered {answer.text[:300]}")
                with load.lock:
                    load.acked.append(batch)
                pending = None
            elif answer.status_code == 503:
                pending = batch
                time.sleep(0.05)
            else:
                load.problems.append(f"batch {batch} answered {answer.status_code}: {answer.text[:300]}")
                pending = None


def open_flush_intents(workspace) -> int:
    """Flushes the killed server had started and not finished (read from its ingest log)."""
    con = sqlite3.connect(workspace.ingest_log_path, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM flush_intents").fetchone()[0]
    finally:
        con.close()


@pytest.mark.timeout(300)
def test_kill_9_under_load_loses_and_duplicates_no_acknowledged_event(workspace_dir):
    workspace = load_workspace(workspace_dir)
    rng = random.Random(SEED)
    started = time.monotonic()
    servers: list[IngestServer] = []
    threads: list[threading.Thread] = []
    load: Load | None = None
    kills_mid_flush = 0
    startups: list[float] = []
    rounds_with_acks = 0
    log_path = workspace_dir.parent / "ingest-server.log"
    try:
        port = None
        for _round in range(ROUNDS):
            t0 = time.monotonic()
            server = start_ingest_server(workspace_dir, port=port, flush_interval_s=0.2, log_path=log_path)
            startups.append(time.monotonic() - t0)
            servers.append(server)
            port = server.port
            if load is None:
                load = Load(server.url)
                threads = [threading.Thread(target=client, args=(load, SEED + n), daemon=True, name=f"client-{n}")
                           for n in range(CLIENTS)]
                for thread in threads:
                    thread.start()
            load.url = server.url  # the same port unless it had to move
            acked_before = len(load.acked)
            time.sleep(rng.uniform(0.3, 1.5))
            server.kill()
            assert server.process.returncode == -9
            kills_mid_flush += open_flush_intents(workspace) > 0
            rounds_with_acks += len(load.acked) > acked_before
        load.stop.set()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive()

        flush(workspace_dir)  # from this process: finishes the flush the last kill interrupted
        assert flush(workspace_dir).events == 0
        ingest_log = open_ingest_log(workspace)
        try:
            assert ingest_log.backlog_events() == 0
        finally:
            ingest_log.close()
        assert open_flush_intents(workspace) == 0
    finally:
        if load is not None:
            load.stop.set()
        for server in servers:
            server.kill()
        for thread in threads:
            thread.join(30)

    assert not load.problems, load.problems[:5]
    sent_indices = sorted({i for batch in load.sent for i in batch.indices})
    sent_ids = event_ids(workspace_dir, [flight(i) for i in sent_indices])
    assert len(set(sent_ids)) == len(sent_ids), "test bug: two sent events share an id"
    id_of = dict(zip(sent_indices, sent_ids))
    acked_ids = {id_of[i] for batch in load.acked for i in batch.indices}

    in_lake = lake_ids(workspace_dir)
    duplicated = {i: n for i, n in in_lake.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} events are in the lake more than once"
    missing = acked_ids - in_lake.keys()
    assert not missing, f"{len(missing)} of {len(acked_ids)} acknowledged events are not in the lake"
    never_sent = in_lake.keys() - set(sent_ids)
    assert not never_sent, f"{len(never_sent)} events in the lake were never sent"
    leftovers = [p for p in workspace.lake.table_dir("raw", "flights").rglob("*") if p.is_file() and p.suffix != ".parquet"]
    assert not leftovers, f"half-written files left behind: {leftovers[:5]}"

    elapsed = time.monotonic() - started
    print(f"\ncrash test: {ROUNDS} kills ({kills_mid_flush} mid-flush) in {elapsed:.0f} s "
          f"(restarts took {min(startups):.1f}-{max(startups):.1f} s); "
          f"{len(load.sent)} batches / {len(sent_indices)} events sent, {len(load.acked)} batches acknowledged "
          f"({load.resends} re-sends), {load.in_doubt} requests cut by a kill ({load.abandoned} abandoned); "
          f"{len(in_lake)} events in the lake, {len(acked_ids)} of them acknowledged")
    # the test did what it claims: load was acknowledged in most rounds, and kills hit flushes
    assert rounds_with_acks >= ROUNDS // 2 and len(acked_ids) >= ROUNDS * 50
    assert kills_mid_flush >= 1, "no kill landed during a flush (every kill found no open flush intent)"
