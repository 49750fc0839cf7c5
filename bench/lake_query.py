"""Analytic queries through ``%%lake`` vs plain DuckDB on the same Parquet files.

The lake is built once in a fresh temporary workspace by the demo's ingest path
(the demo's pieces: all nycflights13 flights and weather replayed over HTTP into a real
``lakebook ingest serve``, flushed to Parquet; run_demo itself now also runs Spark/Feast
steps that this benchmark does not need). Then, in this one process and interleaved:

- lakebook: a real IPython ``InteractiveShell.instance()`` with ``%load_ext lakebook``;
  ``shell.run_cell_magic('lake', '', sql)`` and the Arrow table of the LakeResult
  (the workspace is found through LAKEBOOK_WORKSPACE, as in a notebook started there);
- baseline: ``duckdb.sql(sql).fetch_arrow_table()`` on DuckDB's default connection, where the
  SQL is the same except ``raw.flights`` / ``raw.weather`` become
  ``read_parquet('<lake>/raw/<t>/*/*.parquet', hive_partitioning=true)``; TimeZone is set to
  UTC as lakebook's engine does, so results are the same (checked);
- informational: ``session_for(workspace).query(sql)`` (lakebook's engine without IPython),
  to split the overhead between the magic and the engine; and ``suggested``: what the
  profiling below suggests for lakebook's engine, a connection with parquet_metadata_cache
  and views WITHOUT ``union_by_name``, run with ``con.execute(sql).to_arrow_table()``
  (one bind instead of two);
- a fixed-overhead probe, ``SELECT 42``, through each path.

Each repetition runs every query once per variant, in an order that rotates per repetition.

    python bench/lake_query.py        # writes bench/results/lake_query.json
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench_main, geomean, machine_info, make_workspace, median, write_result  # noqa: E402

NAME = "lake_query"
REPS = int(os.environ.get("BENCH_LAKE_QUERY_REPS", 12))
WARMUP = 2
PROBE_REPS = 60
TARGET_GEOMEAN_RATIO = 1.10

QUERIES = {
    "count": "SELECT count(*) AS flights FROM raw.flights",
    "per_origin": """
        SELECT origin, count(*) AS flights, round(avg(dep_delay), 1) AS avg_dep_delay,
               round(avg((arr_delay > 15)::INT) * 100, 1) AS pct_arr_late
        FROM raw.flights GROUP BY origin ORDER BY origin""",
    "top_carriers_by_delay": """
        SELECT carrier, count(*) AS flights, round(avg(arr_delay), 2) AS avg_arr_delay
        FROM raw.flights GROUP BY carrier HAVING count(*) > 1000
        ORDER BY avg_arr_delay DESC LIMIT 5""",
    "filter_date_origin": """
        SELECT dest, count(*) AS flights, round(avg(dep_delay), 2) AS avg_dep_delay
        FROM raw.flights
        WHERE origin = 'JFK' AND date BETWEEN DATE '2013-06-01' AND DATE '2013-06-30'
        GROUP BY dest ORDER BY flights DESC, dest LIMIT 10""",
    "top_routes": """
        SELECT origin, dest, count(*) AS flights, round(sum(distance)) AS miles
        FROM raw.flights GROUP BY origin, dest ORDER BY flights DESC, origin, dest LIMIT 20""",
    "window_rank_per_month": """
        SELECT month, carrier, avg_delay, rnk FROM (
            SELECT month, carrier, round(avg(arr_delay), 2) AS avg_delay,
                   rank() OVER (PARTITION BY month ORDER BY avg(arr_delay) DESC) AS rnk
            FROM raw.flights GROUP BY month, carrier)
        WHERE rnk <= 3 ORDER BY month, rnk, carrier""",
    "join_weather_visibility": """
        SELECT CASE WHEN w.visib < 1 THEN 'under 1 mile' WHEN w.visib < 5 THEN '1-5 miles' ELSE '5+ miles' END AS visibility,
               count(*) AS flights, round(avg(f.dep_delay), 1) AS avg_dep_delay
        FROM raw.flights f JOIN raw.weather w ON w.origin = f.origin AND w.time_hour = f.time_hour
        GROUP BY 1 ORDER BY avg_dep_delay DESC""",
    "percentiles_by_origin": """
        SELECT origin, quantile_cont(dep_delay, 0.5) AS p50, quantile_cont(dep_delay, 0.9) AS p90,
               quantile_cont(dep_delay, 0.99) AS p99
        FROM raw.flights GROUP BY origin ORDER BY origin""",
    "hourly_profile": """
        SELECT hour, count(*) AS flights, round(avg(dep_delay), 2) AS avg_dep_delay,
               round(avg(CASE WHEN dep_time IS NULL THEN 1 ELSE 0 END) * 100, 2) AS pct_cancelled
        FROM raw.flights GROUP BY hour ORDER BY hour""",
    "distinct_planes": "SELECT carrier, count(DISTINCT tailnum) AS planes FROM raw.flights GROUP BY carrier ORDER BY carrier",
    "point_lookup": """
        SELECT year, month, day, dep_time, carrier, flight, origin, dest
        FROM raw.flights WHERE tailnum = 'N14228' ORDER BY sched_dep_at LIMIT 50""",
    "one_day_all_columns": """
        SELECT * EXCLUDE (_ingested_at) FROM raw.flights WHERE date = DATE '2013-07-04'
        ORDER BY sched_dep_at, carrier, flight""",
}


def baseline_sql(sql: str, lake: Path) -> str:
    out = sql
    for table in ("flights", "weather"):
        pattern = str(lake / "raw" / table / "*" / "*.parquet").replace("'", "''")
        out = out.replace(f"raw.{table}", f"read_parquet('{pattern}', hive_partitioning=true)")
    return out


def _normalized(table) -> list:
    """Rows as sortable tuples, floats rounded (parallel aggregation may differ in the last bits)."""
    def norm(v):
        if isinstance(v, float):
            return round(v, 6) if math.isfinite(v) else str(v)
        return v

    rows = [tuple(norm(v) for v in row.values()) for row in table.to_pylist()]
    return sorted(rows, key=repr)


def build_lake(tmp: Path, log) -> tuple[Path, dict]:
    """The demo's ingest path with the demo's pieces: every nycflights13 flight and weather
    observation POSTed as 1,000-event NDJSON batches to `lakebook ingest serve` (a child
    process), the server stopped (it flushes on the way out), then a final flush."""
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.ingest.client import send_ndjson_file
    from lakebook.sample_data import nycflights13_ndjson
    from lakebook.services import start_service
    from lakebook.workspace import Workspace

    from _common import clean_env

    root = make_workspace(tmp / "ws")
    workspace = Workspace.load(root, environ={})
    workspace.ensure_state()
    t0 = time.perf_counter()
    files = {s: nycflights13_ndjson(s, tmp) for s in ("weather", "flights")}
    figures = {}
    server = start_service(workspace, "ingest", env=clean_env())
    try:
        for source, path in files.items():
            t1 = time.perf_counter()
            accepted, rejected = send_ndjson_file(server.url, source, path, 1000)
            figures[source] = {"accepted": accepted, "rejected": rejected,
                               "events_per_s": round(accepted / (time.perf_counter() - t1))}
    finally:
        server.stop()
    figures["final_flush_events"] = flush_ingest_log_to_raw(workspace).events
    import duckdb

    for source in files:
        pattern = str(workspace.lake.root / "raw" / source / "*" / "*.parquet").replace("'", "''")
        figures[source]["lake_rows"] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchall()[0][0]
    figures["build_s"] = time.perf_counter() - t0
    log(f"lake_query: lake built in {figures['build_s']:.1f} s: "
        + ", ".join(f"{s} {figures[s]['accepted']:,}" for s in files))
    return root, figures


def run(log=print) -> dict:
    info = machine_info()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-query-") as tmp:
        tmp = Path(tmp)
        os.environ["IPYTHONDIR"] = str(tmp / "ipython")  # keep the user's IPython profile out of it
        reuse = os.environ.get("BENCH_LAKE_QUERY_WORKSPACE")  # development only: a lake built earlier
        root, built = (Path(reuse), {"reused_workspace": reuse}) if reuse else build_lake(tmp, log)
        os.environ["LAKEBOOK_WORKSPACE"] = str(root)
        try:
            result = _measure(root, built, log, info)
        finally:
            os.environ.pop("LAKEBOOK_WORKSPACE", None)
    result["runtime_s"] = time.perf_counter() - started
    write_result(NAME, result)
    return result


def _arrow(relation):
    """Relation -> Arrow table, the same call lakebook's engine makes (fetch_arrow_table; in
    DuckDB 2.0 it is deprecated in favour of to_arrow_table, without the warning noise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return relation.fetch_arrow_table()


def _suggested_connection(lake: Path):
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET parquet_metadata_cache = true")
    con.execute("CREATE SCHEMA raw")
    for table in ("flights", "weather"):
        pattern = str(lake / "raw" / table / "*" / "*.parquet").replace("'", "''")
        con.execute(f"CREATE VIEW raw.{table} AS SELECT * FROM read_parquet('{pattern}', hive_partitioning = true)")
    return con


def _measure(root: Path, built: dict, log, info: dict) -> dict:
    import duckdb
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from lakebook.query import session_for
    from lakebook.workspace import Workspace

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "lakebook")
    workspace = Workspace.load(root, environ={})
    lake = workspace.lake.root
    duckdb.execute("SET TimeZone = 'UTC'")  # as lakebook's engine does; results are compared below
    session = session_for(Workspace.load(root, environ={}))
    files = {t: len(list((lake / "raw" / t).glob("*/*.parquet"))) for t in ("flights", "weather")}

    def run_lake(sql):
        return shell.run_cell_magic("lake", "", sql).table

    def run_duckdb(sql):
        return _arrow(duckdb.sql(sql))

    def run_session(sql):
        return session.query(sql).table

    suggested = _suggested_connection(lake)

    def run_suggested(sql):
        with warnings.catch_warnings():  # DuckDB 2.0 warns that DB-API Arrow output copies once more
            warnings.simplefilter("ignore", UserWarning)
            return suggested.execute(sql).to_arrow_table()

    variants = {"lakebook": run_lake, "duckdb": run_duckdb, "session_query": run_session, "suggested": run_suggested}
    sqls = {name: {"lakebook": sql, "session_query": sql, "suggested": sql, "duckdb": baseline_sql(sql, lake)}
            for name, sql in QUERIES.items()}

    checks = {}
    for name, q in sqls.items():
        a, b = run_lake(q["lakebook"]), run_duckdb(q["duckdb"])
        checks[name] = {"rows": a.num_rows, "columns": a.num_columns,
                        "same_result": a.column_names == b.column_names and _normalized(a) == _normalized(b)}
        if not checks[name]["same_result"]:
            log(f"  WARNING: {name}: %%lake and duckdb results differ")
        c = run_suggested(q["suggested"])
        checks[name]["suggested_same_result"] = c.column_names == a.column_names and _normalized(c) == _normalized(a)
    for _ in range(WARMUP):
        for name, q in sqls.items():
            for v, fn in variants.items():
                fn(q[v])

    probe = {v: [] for v in variants}
    for r in range(PROBE_REPS):
        for v, fn in variants.items():
            t0 = time.perf_counter_ns()
            fn("SELECT 42 AS answer")
            probe[v].append((time.perf_counter_ns() - t0) / 1e6)
    probe_medians = {v: median(x) for v, x in probe.items()}
    log("  fixed overhead, SELECT 42: " + ", ".join(f"{v} {m:.3f} ms" for v, m in probe_medians.items()))

    samples = {name: {v: [] for v in variants} for name in sqls}
    order = list(variants)
    for r in range(REPS):
        rot = order[r % len(order):] + order[:r % len(order)]
        for name, q in sqls.items():
            for v in rot:
                fn, sql = variants[v], q[v]
                t0 = time.perf_counter_ns()
                table = fn(sql)
                _ = table.num_rows
                samples[name][v].append((time.perf_counter_ns() - t0) / 1e6)

    per_query = {}
    for name, s in samples.items():
        lb, dk, sq, sg = (median(s[v]) for v in ("lakebook", "duckdb", "session_query", "suggested"))
        per_query[name] = {
            "sql": " ".join(QUERIES[name].split()),
            "lakebook_median_ms": lb, "duckdb_median_ms": dk, "session_query_median_ms": sq,
            "suggested_median_ms": sg,
            "overhead_ms": lb - dk, "ratio": lb / dk, "suggested_ratio": sg / dk,
            "magic_overhead_ms": lb - sq, "engine_overhead_ms": sq - dk,
            **checks[name],
            "samples_ms": s,
        }
        log(f"  {name:24s} %%lake {lb:8.2f} ms  duckdb {dk:8.2f} ms  ratio {lb / dk:5.2f}  "
            f"(+{lb - dk:6.2f} ms: magic {lb - sq:+.2f}, engine {sq - dk:+.2f}); suggested {sg:8.2f} ms")
    ratios = [p["ratio"] for p in per_query.values()]
    gm = geomean(ratios)
    settings = {
        "lakebook_connection": {r["name"]: r["value"] for r in session.query(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('threads', 'TimeZone', 'parquet_metadata_cache')"
        ).table.to_pylist()},
        "baseline_default_connection": dict(duckdb.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('threads', 'TimeZone', 'parquet_metadata_cache')").fetchall()),
    }
    return {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "lake": "fresh temp workspace; all nycflights13 flights + weather replayed over HTTP into "
                    "`lakebook ingest serve` with lakebook.ingest.client.send_ndjson_file (1,000-event batches), flushed to Parquet",
            "lake_contents": built, "parquet_files": files,
            "lakebook": "IPython InteractiveShell.instance(), %load_ext lakebook, shell.run_cell_magic('lake', '', sql)"
                        ".table; workspace via LAKEBOOK_WORKSPACE",
            "baseline": "duckdb.sql(sql).fetch_arrow_table() on the default connection; raw.<t> replaced by "
                        "read_parquet('<lake>/raw/<t>/*/*.parquet', hive_partitioning=true); SET TimeZone='UTC'",
            "lakebook_view_definition": "read_parquet('<lake>/raw/<t>/*/*.parquet', hive_partitioning = true, "
                                        "union_by_name = true) (lakebook.lake.views.folder_select)",
            "duckdb_settings": settings,
            "reps": REPS, "warmup_reps": WARMUP,
            "suggested": "informational: DuckDB connection with parquet_metadata_cache, views over the same files "
                         "without union_by_name, con.execute(sql).to_arrow_table()",
            "order": "same process; every repetition runs each query with each variant, rotating the variant order",
        },
        "fixed_overhead_select_42_ms": {"medians": probe_medians, "samples": probe},
        "per_query": per_query,
        "geomean_ratio": gm,
        "geomean_ratio_session_query": geomean([p["session_query_median_ms"] / p["duckdb_median_ms"] for p in per_query.values()]),
        "geomean_ratio_suggested": geomean([p["suggested_ratio"] for p in per_query.values()]),
        "median_overhead_ms": median([p["overhead_ms"] for p in per_query.values()]),
        "median_magic_overhead_ms": median([p["magic_overhead_ms"] for p in per_query.values()]),
        "all_results_equal": all(c["same_result"] for c in checks.values()),
        "targets": {"geomean_ratio_le_1.10": {"target": TARGET_GEOMEAN_RATIO, "value": gm, "met": gm <= TARGET_GEOMEAN_RATIO}},
    }


def summary(result: dict) -> list[str]:
    t = result["targets"]["geomean_ratio_le_1.10"]
    worst = max(result["per_query"].items(), key=lambda kv: kv[1]["ratio"])
    probe = result["fixed_overhead_select_42_ms"]["medians"]
    return [
        f"lake_query  %%lake vs duckdb over {len(result['per_query'])} queries: geomean time ratio "
        f"{result['geomean_ratio']:.3f} (target <= {TARGET_GEOMEAN_RATIO}: {'MET' if t['met'] else 'NOT MET'}); "
        f"median overhead {result['median_overhead_ms']:.1f} ms/query; results identical: {result['all_results_equal']}",
        f"            worst: {worst[0]} {worst[1]['lakebook_median_ms']:.1f} vs {worst[1]['duckdb_median_ms']:.1f} ms "
        f"(x{worst[1]['ratio']:.2f}); session.query without IPython: geomean ratio "
        f"{result['geomean_ratio_session_query']:.3f} (the overhead is in the engine, not the magic)",
        f"            fixed per-cell cost (SELECT 42): %%lake {probe['lakebook']:.2f} ms, session.query "
        f"{probe['session_query']:.2f} ms, duckdb.sql {probe['duckdb']:.2f} ms; "
        f"'suggested' engine variant: geomean ratio {result['geomean_ratio_suggested']:.3f}",
    ]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
