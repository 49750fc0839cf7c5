"""The lake on S3-compatible storage: analytic queries through lakebook's query engine over an
S3 lake vs plain DuckDB reading the same objects through the same filesystem; the flusher's
throughput into S3 vs into a local lake.

The S3 server is moto's standalone server (the dev extras) on loopback, in a process of its
own: it has neither S3's latency nor its throughput, so the S3-vs-local figures say what
lakebook's own S3 path costs (listing, opening, reading objects over HTTP), not what a cloud
bucket costs.

Two workspaces get the same events the way live ingest makes them: FLUSHES batches of
EVENTS_PER_FLUSH synthetic flights, each validated as the server validates a request body
(``validate_to_records``), appended to the ingest log and moved to the lake by the real
flusher (``flush_ingest_log_to_raw``), one flush per day of DAYS: one file per flush. One
workspace's lake is local, the other's is ``s3://<bucket>/lake``.

Warm, in this one process, interleaved (the order rotates per repetition), every query with:

- lakebook_s3: ``LakeSession(s3 workspace).query(sql)``, the Arrow table (what ``%%lake`` runs);
- duckdb_s3 (the baseline of the target): a DuckDB connection with the settings lakebook's
  engine uses (TimeZone UTC, parquet_metadata_cache on), an fsspec filesystem over a pyarrow
  S3FileSystem with the same endpoint and options registered as ``s3``, ``raw.flights``
  written out as ``read_parquet('s3://<bucket>/lake/raw/flights/*/*.parquet',
  hive_partitioning = true)``, ``con.execute(sql)`` read to Arrow as lakebook's engine reads it;
- lakebook_local: ``LakeSession(local workspace).query(sql)`` (S3 vs local, reported only).

Answers of every variant are compared (floats rounded). Target: the geometric mean of
lakebook_s3 / duckdb_s3 over the queries <= TARGET_RATIO.

    python bench/s3_lake.py [--dirty]        # writes bench/results/s3_lake.json
"""

from __future__ import annotations

import math
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))  # the moto server starter the S3 tests use

from _common import bench_main, geomean, machine_info, make_workspace, median, synthetic_flight, write_result  # noqa: E402

NAME = "s3_lake"
FLUSHES = int(os.environ.get("BENCH_S3_FLUSHES", "60"))
EVENTS_PER_FLUSH = int(os.environ.get("BENCH_S3_EVENTS", "2000"))
DAYS = 30
REPS = int(os.environ.get("BENCH_S3_REPS", "7"))
TARGET_RATIO = 1.10
BUCKET = "bench-lake"
START = datetime(2026, 3, 1, tzinfo=timezone.utc)
CARRIERS = ("UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN")
ORIGINS = ("EWR", "JFK", "LGA")
VARIANTS = ("lakebook_s3", "duckdb_s3", "lakebook_local")

QUERIES = {
    "count": "SELECT count(*) AS flights FROM raw.flights",
    "per_origin": """SELECT origin, count(*) AS flights, round(avg(dep_delay), 1) AS avg_dep_delay
        FROM raw.flights GROUP BY origin ORDER BY origin""",
    "per_carrier_day": """SELECT date, carrier, count(*) AS flights, max(arr_delay) AS worst
        FROM raw.flights GROUP BY date, carrier ORDER BY date, carrier""",
    "one_week_jfk": """SELECT dest, count(*) AS flights, round(avg(dep_delay), 2) AS avg_dep_delay
        FROM raw.flights WHERE origin = 'JFK' AND date BETWEEN DATE '2026-03-08' AND DATE '2026-03-14'
        GROUP BY dest ORDER BY flights DESC, dest""",
    "point_lookup": """SELECT carrier, flight, origin, dest, sched_dep_at FROM raw.flights
        WHERE flight = 4242 ORDER BY sched_dep_at, carrier, origin""",
}


# -- pure parts ------------------------------------------------------------------------------------------
def figures(samples: dict[str, dict[str, list[float]]]) -> dict:
    """Per query: each variant's median and the ratios; overall: the geometric means and the target."""
    per_query = {}
    for query, by_variant in samples.items():
        medians = {v: median(xs) for v, xs in by_variant.items()}
        per_query[query] = {"median_s": medians,
                            "s3_vs_duckdb": medians["lakebook_s3"] / medians["duckdb_s3"],
                            "s3_vs_local": medians["lakebook_s3"] / medians["lakebook_local"]}
    vs_duckdb = geomean([q["s3_vs_duckdb"] for q in per_query.values()])
    vs_local = geomean([q["s3_vs_local"] for q in per_query.values()])
    return {"per_query": per_query, "geomean_s3_vs_duckdb": vs_duckdb, "geomean_s3_vs_local": vs_local,
            "target_ratio": TARGET_RATIO, "met": vs_duckdb <= TARGET_RATIO}


def normalized(table) -> list:
    """Rows as sortable tuples, floats rounded (parallel aggregation may differ in the last bits)."""
    def norm(v):
        if isinstance(v, float):
            return round(v, 6) if math.isfinite(v) else str(v)
        return v

    return sorted((tuple(norm(v) for v in row.values()) for row in table.to_pylist()), key=repr)


def summary(result: dict) -> list[str]:
    q, b = result["query"], result["build"]
    lines = [f"s3_lake: {b['rows']:,} rows in {b['files']['s3']} objects (moto on loopback) vs a local lake; "
             f"same answers: {result['same_answers']}",
             f"  queries, geomean lakebook on S3 / DuckDB on the same objects: {q['geomean_s3_vs_duckdb']:.2f}x "
             f"(target <= {TARGET_RATIO}x: {'met' if q['met'] else 'MISSED'}); S3 / local lake: "
             f"{q['geomean_s3_vs_local']:.2f}x"]
    for name, f in q["per_query"].items():
        m = f["median_s"]
        lines.append(f"  {name:16s} lakebook S3 {m['lakebook_s3'] * 1000:7.1f} ms, DuckDB S3 {m['duckdb_s3'] * 1000:7.1f} ms "
                     f"({f['s3_vs_duckdb']:.2f}x), lakebook local {m['lakebook_local'] * 1000:7.1f} ms")
    lines.append(f"  flush: {b['events_per_s']['s3']:,.0f} events/s into S3 vs {b['events_per_s']['local']:,.0f} "
                 f"into the local lake ({b['seconds']['s3']:.1f} vs {b['seconds']['local']:.1f} s)")
    return lines


# -- the measurement ---------------------------------------------------------------------------------
def event(i: int, day: int, rng: random.Random) -> dict:
    """A valid flights event of day ``day`` (the contract's shape); ``i`` gives it an id of its own."""
    at = START + timedelta(days=day, seconds=(i * 7919) % 86_399)
    return synthetic_flight(at, i % 9999 + 1, CARRIERS[i // 9999 % 8], ORIGINS[i % 3], rng)


def build(root: Path, config: str, log) -> tuple[object, dict]:
    """A workspace and FLUSHES files of raw.flights written by the real flusher; its flush time."""
    from lakebook.catalog import open_catalog
    from lakebook.ingest import flush_ingest_log_to_raw, open_ingest_log
    from lakebook.ingest.records import validate_to_records
    from lakebook.workspace import Workspace

    ws = Workspace.load(make_workspace(root, config))
    ws.ensure_state()
    contract, rng = ws.contract("flights"), random.Random(20260301)
    ingest_log, catalog = open_ingest_log(ws), open_catalog(ws)
    flushing = 0.0
    try:
        for n in range(FLUSHES):
            events = [event(n * EVENTS_PER_FLUSH + k, n % DAYS, rng) for k in range(EVENTS_PER_FLUSH)]
            outcome = validate_to_records(contract, "flights", events, f"bench-{n}", time.time_ns() // 1000)
            assert not outcome.rejected, outcome.rejected[:3]
            ingest_log.append(outcome.records)
            t0 = time.perf_counter()
            flush_ingest_log_to_raw(ws, ingest_log, catalog)
            flushing += time.perf_counter() - t0
            if (n + 1) % 40 == 0:
                log(f"s3_lake: {root.name}: {n + 1} flushes")
        files, rows = catalog.files("raw", "flights"), catalog.table("raw.flights").row_count
    finally:
        ingest_log.close()
        catalog.close()
    return ws, {"files": len(files), "rows": rows, "seconds": flushing}


def baseline_connection(endpoint: str):
    """Plain DuckDB with lakebook's engine settings, reading ``s3://`` through an fsspec wrapper
    of a pyarrow S3FileSystem on the same endpoint."""
    import duckdb
    import pyarrow.fs as pafs
    from fsspec.implementations.arrow import ArrowFSWrapper

    class S3(ArrowFSWrapper):
        protocol = "s3"

        @classmethod
        def _strip_protocol(cls, path):
            return (path[5:] if path.startswith("s3://") else path).rstrip("/")

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET parquet_metadata_cache = true")
    con.register_filesystem(S3(pafs.S3FileSystem(endpoint_override=endpoint, region=os.environ["AWS_REGION"])))
    return con


def run(log=print) -> dict:
    from s3_support import start_s3_server

    from lakebook.query import LakeSession

    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-s3-") as tmp:
        tmp = Path(tmp)
        server = start_s3_server(tmp / "moto")
        try:
            os.environ.update(server.env)
            server.create_bucket(BUCKET)
            local, built_local = build(tmp / "local", "name: bench-s3-local\n", log)
            s3, built_s3 = build(tmp / "s3", f"name: bench-s3\nlake:\n  root: s3://{BUCKET}/lake\n", log)
            sessions = {"lakebook_s3": LakeSession(s3), "lakebook_local": LakeSession(local)}
            con = baseline_connection(server.endpoint)
            source = f"read_parquet('s3://{BUCKET}/lake/raw/flights/*/*.parquet', hive_partitioning = true)"

            def query(variant: str, sql: str):
                if variant == "duckdb_s3":
                    return con.execute(sql.replace("raw.flights", source)).to_arrow_reader().read_all()  # as lakebook's engine reads
                return sessions[variant].query(sql).table

            answers = {v: {q: normalized(query(v, sql)) for q, sql in QUERIES.items()} for v in VARIANTS}  # warm-up
            same = all(answers[v] == answers["lakebook_local"] for v in VARIANTS)
            samples = {q: {v: [] for v in VARIANTS} for q in QUERIES}
            for rep in range(REPS):
                order = VARIANTS[rep % 3:] + VARIANTS[:rep % 3]
                for q, sql in QUERIES.items():
                    for v in order:
                        t0 = time.perf_counter()
                        query(v, sql)
                        samples[q][v].append(time.perf_counter() - t0)
            s3_keys = len(server.keys(BUCKET, "lake/raw/flights/"))
        finally:
            server.stop()
    rows = built_s3["rows"]
    build_figures = {"flushes": FLUSHES, "events_per_flush": EVENTS_PER_FLUSH, "days": DAYS, "rows": rows,
                     "files": {"local": built_local["files"], "s3": built_s3["files"], "s3_keys": s3_keys},
                     "seconds": {"local": built_local["seconds"], "s3": built_s3["seconds"]},
                     "events_per_s": {"local": built_local["rows"] / built_local["seconds"],
                                      "s3": rows / built_s3["seconds"]}}
    result = {"benchmark": NAME, "machine": info, "build": build_figures, "query": figures(samples),
              "same_answers": same, "samples": samples, "queries": QUERIES, "reps": REPS,
              "s3_server": "moto (standalone server, loopback)"}
    write_result(NAME, result)
    return result


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
