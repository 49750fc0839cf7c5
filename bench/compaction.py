"""Lake compaction: a GROUP BY over a partition of 2,000 small files before and after
``lakebook lake compact``, vs the same rows in one file; compaction throughput; the query's
latency while a compaction runs; planning over the catalog's list of files vs a glob.

The partition is made as live ingest makes it: FLUSHES batches of EVENTS_PER_FLUSH synthetic
flights of one day, each validated as the server validates a request body
(``validate_to_records``), appended to the ingest log and moved to the lake by the real
flusher (``flush_ingest_log_to_raw``): one flush, one file. The workspace is then copied
twice (a workspace can be copied: the catalog keeps lake paths relative):

- ``alone``: ``compact_lake`` with nothing else running (throughput: rows rewritten / s);
- ``busy``: ``compact_lake`` while a thread runs the query in a loop (its latency, and that
  every answer holds every row once).

The baseline is a workspace whose raw.flights is the same rows in one file (the writer's
``write_date_partitions``, recorded in the catalog). Every query runs through lakebook's
query engine (``LakeSession``), warm, the layouts taking turns. Goal: the query after
compaction <= GOAL_RATIO x the single-file baseline (median).

Planning: DuckDB's EXPLAIN of the query over ``read_parquet([2,000 listed paths])`` (what a
view over an append-only table now is) vs ``read_parquet('<table>/*/*.parquet')`` (the glob it
was), each on a fresh connection; and lakebook's cost of listing the manifest (the snapshot's
``files``) and writing the view's SQL.

    python bench/compaction.py [--dirty]       # writes bench/results/compaction.json
    BENCH_COMPACTION_FLUSHES=200 python bench/compaction.py --dirty   # a short probe
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench_main, machine_info, make_workspace, median, percentile, synthetic_flight, write_result  # noqa: E402

NAME = "compaction"
FLUSHES = int(os.environ.get("BENCH_COMPACTION_FLUSHES", "2000"))
EVENTS_PER_FLUSH = 150
REPS = int(os.environ.get("BENCH_COMPACTION_REPS", "7"))
GOAL_RATIO = 1.5
DAY = datetime(2026, 3, 1, tzinfo=timezone.utc)
QUERY = """SELECT origin, carrier, count(*) AS flights, avg(dep_delay) AS avg_delay, max(arr_delay) AS worst
FROM raw.flights GROUP BY origin, carrier ORDER BY origin, carrier"""
COUNT = "SELECT count(*) AS n, count(DISTINCT _event_id) AS ids FROM raw.flights"


# -- pure parts (tests/unit/test_bench_compaction.py) --------------------------------------------------
def figures(before: list[float], after: list[float], single: list[float], during: list[float]) -> dict:
    """Medians (and p95 of the query during compaction), the ratios to the single-file layout,
    and the goal on the median after compaction."""
    out = {name: {"median_s": median(xs), "p95_s": percentile(xs, 95), "samples": len(xs)}
           for name, xs in (("before", before), ("after", after), ("single_file", single), ("during", during))}
    base = out["single_file"]["median_s"]
    out["before_vs_single"] = out["before"]["median_s"] / base
    out["after_vs_single"] = out["after"]["median_s"] / base
    out["goal_ratio"] = GOAL_RATIO
    out["met"] = out["after_vs_single"] <= GOAL_RATIO
    return out


def rounded(table) -> list[tuple]:
    """Rows with floats rounded (parallel aggregation may differ in the last bits)."""
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row.values()) for row in table.to_pylist()]


CARRIERS = ("UA", "AA", "B6", "DL", "EV", "MQ", "US", "WN")
ORIGINS = ("EWR", "JFK", "LGA")


def event(i: int, rng: random.Random) -> dict:
    """A valid flights event of DAY (the contract's shape); ``i`` gives it an event id of its own
    (carrier, flight, origin and departure time are the id's parts)."""
    at = DAY + timedelta(seconds=i * 86_399 // (FLUSHES * EVENTS_PER_FLUSH))
    return synthetic_flight(at, i % 9999 + 1, CARRIERS[i // 9999 % 8], ORIGINS[i // (9999 * 8) % 3], rng)


def summary(result: dict) -> list[str]:
    q = result["query"]
    c = result["compaction"]
    p = result["planning"]
    return [
        f"compaction: {result['build']['files']:,} files / {result['build']['rows']:,} rows written by "
        f"{result['build']['flushes']:,} real flushes in {result['build']['seconds']:.0f} s",
        f"  GROUP BY median: before {q['before']['median_s'] * 1000:.1f} ms ({q['before_vs_single']:.1f}x single file), "
        f"after {q['after']['median_s'] * 1000:.1f} ms ({q['after_vs_single']:.2f}x; goal <= {GOAL_RATIO}x: "
        f"{'met' if q['met'] else 'MISSED'}), single file {q['single_file']['median_s'] * 1000:.1f} ms",
        f"  while compacting: median {q['during']['median_s'] * 1000:.1f} ms, p95 {q['during']['p95_s'] * 1000:.1f} ms "
        f"over {q['during']['samples']} queries, every answer complete: {c['busy']['answers_complete']}",
        f"  compaction alone: {c['alone']['seconds']:.2f} s, {c['alone']['rows_per_s']:,.0f} rows/s "
        f"({c['alone']['files_replaced']:,} files -> {c['alone']['files_written']}); busy: {c['busy']['seconds']:.2f} s",
        f"  planning (EXPLAIN, fresh connection): listed {p['explain_listed_s'] * 1000:.1f} ms vs glob "
        f"{p['explain_glob_s'] * 1000:.1f} ms; manifest + view SQL {p['manifest_and_sql_s'] * 1000:.1f} ms",
    ]


# -- the measurement ---------------------------------------------------------------------------------
def build(root: Path, log) -> tuple[object, dict]:
    """The workspace and its partition of FLUSHES small files, through the real flusher."""
    from lakebook.catalog import open_catalog
    from lakebook.ingest import flush_ingest_log_to_raw, open_ingest_log
    from lakebook.ingest.records import validate_to_records
    from lakebook.workspace import Workspace

    ws = Workspace.load(make_workspace(root, "name: bench-compaction\n"), environ={})
    ws.ensure_state()
    contract, rng = ws.contract("flights"), random.Random(20260301)
    ingest_log, catalog = open_ingest_log(ws), open_catalog(ws)
    started = time.perf_counter()
    try:
        for n in range(FLUSHES):
            events = [event(n * EVENTS_PER_FLUSH + k, rng) for k in range(EVENTS_PER_FLUSH)]
            outcome = validate_to_records(contract, "flights", events, f"bench-{n}", time.time_ns() // 1000)
            assert not outcome.rejected, outcome.rejected[:3]
            ingest_log.append(outcome.records)
            flush_ingest_log_to_raw(ws, ingest_log, catalog)
            if (n + 1) % 500 == 0:
                log(f"compaction: {n + 1:,} flushes")
        files, rows = catalog.files("raw", "flights"), catalog.table("raw.flights").row_count
    finally:
        ingest_log.close()
        catalog.close()
    return ws, {"flushes": FLUSHES, "files": len(files), "rows": rows, "events_sent": FLUSHES * EVENTS_PER_FLUSH,
                "seconds": time.perf_counter() - started}


def copy_workspace(ws, root: Path):
    from lakebook.workspace import Workspace

    shutil.copytree(ws.root, root, symlinks=True)
    return Workspace.load(root, environ={})


def single_file_workspace(ws, root: Path):
    """A workspace whose raw.flights holds the same rows in one file."""
    import pyarrow.parquet as pq

    from lakebook.catalog import open_catalog
    from lakebook.lake import write_date_partitions
    from lakebook.workspace import Workspace

    single = Workspace.load(make_workspace(root, "name: bench-compaction-single\n"), environ={})
    single.ensure_state()
    catalog = open_catalog(ws)
    rows = pq.ParquetDataset(catalog.files("raw", "flights"), partitioning=None).read()  # the files' own columns
    catalog.close()
    catalog = open_catalog(single)
    files = write_date_partitions(rows.sort_by("sched_dep_at"), single.lake.table_dir("raw", "flights"), "sched_dep_at",
                                  "part-all", ingested_column="_ingested_at", compression=single.settings.lake.compression)
    catalog.record_files("raw", "flights", files)
    catalog.close()
    return single


def timed(session, sql: str) -> tuple[float, object]:
    t0 = time.perf_counter()
    table = session.query(sql).table
    return time.perf_counter() - t0, table


def planning(ws) -> dict:
    """EXPLAIN over the listed files vs the glob (fresh connections), and the manifest's cost."""
    import duckdb

    from lakebook.catalog import CatalogSnapshot, open_catalog
    from lakebook.lake import listed_select, sql_string

    catalog = open_catalog(ws)
    table = catalog.table("raw.flights")
    paths = catalog.files("raw", "flights")
    glob = sql_string(str(ws.lake.table_dir("raw", "flights") / "*" / "*.parquet"))
    sources = {"listed": f"read_parquet([{', '.join(map(sql_string, paths))}], hive_partitioning = true)",
               "glob": f"read_parquet({glob}, hive_partitioning = true)"}
    samples: dict[str, list[float]] = {"listed": [], "glob": [], "manifest": []}
    for rep in range(REPS):
        for name in (("listed", "glob") if rep % 2 == 0 else ("glob", "listed")):
            con = duckdb.connect()
            t0 = time.perf_counter()
            con.execute(f"EXPLAIN {QUERY.replace('raw.flights', sources[name])}").fetchall()
            samples[name].append(time.perf_counter() - t0)
            con.close()
        snapshot = CatalogSnapshot(ws.catalog_url, ws.lake.root, lambda: catalog)
        t0 = time.perf_counter()
        snapshot.refresh()
        listed_select(snapshot.files(snapshot.tables["raw.flights"]), table.columns)
        samples["manifest"].append(time.perf_counter() - t0)
        snapshot.close()
    catalog.close()
    return {"files": len(paths), "explain_listed_s": median(samples["listed"]),
            "explain_glob_s": median(samples["glob"]), "manifest_and_sql_s": median(samples["manifest"]),
            "samples": samples}


def compact_alone(ws) -> dict:
    from lakebook.ingest import compact_lake

    t0 = time.perf_counter()
    report = compact_lake(ws, "flights")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": report.rows, "rows_per_s": report.rows / seconds,
            "files_replaced": sum(p.replaced for p in report.partitions),
            "files_written": sum(len(p.written) for p in report.partitions),
            "bytes_before": sum(p.bytes_before for p in report.partitions),
            "bytes_after": sum(p.bytes_after for p in report.partitions)}


def compact_busy(ws, expected: list[dict]) -> tuple[dict, list[float]]:
    """Compaction while a thread runs the query and the count in a loop; the query's latencies."""
    from lakebook.ingest import compact_lake
    from lakebook.query import LakeSession

    latencies, answers, stop = [], [], threading.Event()

    def loop():
        session = LakeSession(ws)
        while not stop.is_set():
            seconds, _ = timed(session, QUERY)
            latencies.append(seconds)
            answers.append(session.query(COUNT).table.to_pylist())

    reader = threading.Thread(target=loop)
    reader.start()
    time.sleep(0.5)  # the loop is running before the compaction starts
    t0 = time.perf_counter()
    try:
        report = compact_lake(ws, "flights")
    finally:
        seconds = time.perf_counter() - t0
        stop.set()
        reader.join()
    return {"seconds": seconds, "rows": report.rows, "queries": len(latencies),
            "answers_complete": all(a == expected for a in answers)}, latencies


def run(log=print) -> dict:
    from lakebook.query import LakeSession

    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-compaction-") as tmp:
        tmp = Path(tmp)
        ws, built = build(tmp / "ws", log)
        log(f"compaction: {built['files']:,} files built in {built['seconds']:.0f} s")
        alone, busy = copy_workspace(ws, tmp / "alone"), copy_workspace(ws, tmp / "busy")
        single = single_file_workspace(ws, tmp / "single")
        plan = planning(ws)
        sessions = {"before": LakeSession(ws), "single_file": LakeSession(single)}
        expected = sessions["before"].query(COUNT).table.to_pylist()
        answers = {name: s.query(QUERY).table for name, s in sessions.items()}  # warm-up, and the answers
        samples: dict[str, list[float]] = {"before": [], "single_file": [], "after": []}
        for rep in range(REPS):
            for name in (list(sessions) if rep % 2 == 0 else list(sessions)[::-1]):
                samples[name].append(timed(sessions[name], QUERY)[0])
        alone_figures = compact_alone(alone)
        after = LakeSession(alone)
        answers["after"] = after.query(QUERY).table
        for _ in range(REPS):
            samples["after"].append(timed(after, QUERY)[0])
        busy_figures, during = compact_busy(busy, expected)
        same = all(rounded(answers[name]) == rounded(answers["single_file"]) for name in answers)
    query = figures(samples["before"], samples["after"], samples["single_file"], during)
    result = {"benchmark": NAME, "machine": info, "build": built, "query": query, "same_answers": same,
              "compaction": {"alone": alone_figures, "busy": busy_figures}, "planning": plan,
              "samples": samples, "during_samples": during, "query_sql": QUERY}
    write_result(NAME, result)
    return result


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
