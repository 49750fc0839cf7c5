"""Materialization, offline -> SQLite online store, on the same 1,000,000 feature rows:
lakebook's bulk path vs Feast's stock ``materialize`` vs a raw pyarrow + sqlite3 writer.

The workspace (fresh, temporary) holds a synthetic but realistic feature table built
through lakebook's own batch path:

- a seed ``seeds/customers.csv`` (50,000 customers by default; id, segment, signup date)
  loaded into ``ref.customers`` by ``lakebook.transform.seeds.load_seeds``;
- a SQL transform ``transforms/customer_daily.sql`` (zone ``features``) run on DuckDB by
  ``lakebook.transform.run_transforms``: one snapshot per customer and day (20 days), event time
  spread over the day, five features (two BIGINT, three DOUBLE, one of them NULL when the
  customer had no orders), values from hashes of (customer, day) so the run is deterministic.
  That is 1,000,000 rows in ``features.customer_daily`` (one zstd Parquet file under the
  ``current`` folder the runner points at the published version);
- a Feast repository (``feature_repo/feature_store.yaml`` as in this repository, and a
  ``definitions.py`` with one entity, one feature view over ``lake_source("features.customer_daily")``
  and a feature service), registered once with ``lakebook.features.apply``.

Then, interleaved (order alternating per repetition), with the online tables emptied
(``DELETE FROM``, not timed) before every repetition of every variant:

- fast: ``lakebook.features.materialize(workspace)``, whole event-time range from the catalog;
  the view reads a lake table, so lakebook's bulk path runs (features/fast_materialize.py:
  DuckDB keeps the latest row per customer, values serialised a column at a time, one
  ``executemany`` upsert into Feast's own table in one transaction);
- feast: ``lakebook.features.materialize(workspace, engine="feast")``, i.e. Feast's stock
  ``FeatureStore.materialize`` over the same window (local compute engine, DuckDB offline store
  via ibis, pandas dedup, one SQLite ``execute`` per row);
- raw: ``pyarrow.parquet.read_table`` of the same file, the latest row per customer
  (sort by customer, event time; keep the last of each run), then ``sqlite3.executemany``
  of one row per (customer, feature) -- ``(entity_key TEXT, feature_name TEXT, value REAL,
  event_ts TEXT, PRIMARY KEY(entity_key, feature_name))``, the shape of Feast's table with
  plain values -- as an upsert in one transaction, in the same folder;
- informational ``raw_wide``: the same but one row per customer and one column per feature.

Checks: the same number of online rows; for fast and for feast (each from a run of its own,
the one profiled), the online values of a sample of customers read back through
``store.get_online_features`` equal the raw writer's; and the two leave byte-identical
online tables. Throughput is offline feature rows per second: 1,000,000 / seconds.
``ratio_fast_over_feast`` is the speed-up over Feast (target >= 3), ``ratio_fast_over_raw``
the fast path's throughput over the raw writer's (target >= 0.5).

    python bench/materialize.py        # writes bench/results/materialize.json
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import random
import sqlite3
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, _versions, bench_main, machine_info, make_workspace, median, write_result  # noqa: E402

NAME = "materialize"
ROWS = 1_000_000
ENTITIES = int(os.environ.get("BENCH_MATERIALIZE_ENTITIES", 50_000))
REPS = int(os.environ.get("BENCH_MATERIALIZE_REPS", 5))
MIN_REPS = 3
BUDGET_S = float(os.environ.get("BENCH_MATERIALIZE_BUDGET_S", 200))  # no new repetition after this (since start)
FEATURES = ["orders_7d", "spend_7d", "avg_basket_7d", "days_since_order", "churn_score"]
CHECK_ENTITIES = 50
TARGET_OVER_FEAST = 3.0  # speed-up of the fast path over Feast's stock materialize
TARGET_OVER_RAW = 0.5  # the fast path's throughput over the raw writer's

CONFIG = "name: bench-materialize\n"

TRANSFORM_SQL = """\
-- zone: features
-- description: Synthetic daily activity snapshot per customer (benchmark data, deterministic).
-- owner: bench@example.org
-- mode: full
-- event_time: event_timestamp
SELECT
    customer_id,
    TIMESTAMPTZ '2024-03-01 00:00:00+00' + to_days(day) + to_seconds((hash(customer_id, day) % 86400)::BIGINT)
        AS event_timestamp,
    orders_7d,
    round(orders_7d * (8 + (hash(customer_id, day, 2) % 9000) / 100.0), 2) AS spend_7d,
    CASE WHEN orders_7d > 0 THEN round(8 + (hash(customer_id, day, 2) % 9000) / 100.0, 2) END AS avg_basket_7d,
    (hash(customer_id, day, 3) % 45)::BIGINT AS days_since_order,
    (hash(customer_id, day, 4) % 1000000) / 1000000.0 AS churn_score
FROM (
    SELECT customer_id, day, ((hash(customer_id, day, 1) % 7) * (segment = 'retail')::INT
                              + (hash(customer_id, day, 5) % 3))::BIGINT AS orders_7d
    FROM (SELECT c.customer_id, c.segment, unnest(range({days})) AS day FROM ref.customers AS c) AS s
) AS d
"""

DEFINITIONS = '''\
"""Benchmark feature repository: daily customer snapshots."""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, ValueType
from feast.types import Float64, Int64

from lakebook.features import lake_source

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)

customer_daily = FeatureView(
    name="customer_daily",
    entities=[customer],
    ttl=timedelta(days=30),
    schema=[
        Field(name="orders_7d", dtype=Int64),
        Field(name="spend_7d", dtype=Float64),
        Field(name="avg_basket_7d", dtype=Float64),
        Field(name="days_since_order", dtype=Int64),
        Field(name="churn_score", dtype=Float64),
    ],
    source=lake_source("features.customer_daily"),
)

customer_v1 = FeatureService(name="customer_v1", features=[customer_daily])
'''


def build_workspace(tmp: Path, log) -> tuple[object, dict]:
    from lakebook.transform import run_transforms
    from lakebook.transform import load_seeds
    from lakebook.features import apply
    from lakebook.workspace import Workspace

    days = ROWS // ENTITIES
    assert days * ENTITIES == ROWS, "BENCH_MATERIALIZE_ENTITIES must divide 1,000,000"
    root = make_workspace(tmp / "ws", CONFIG)
    (root / "seeds").mkdir()
    rnd = random.Random(13)
    with open(root / "seeds" / "customers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "segment", "signup_date"])
        for i in range(ENTITIES):
            w.writerow([f"C{i:07d}", rnd.choice(["retail", "retail", "retail", "business"]),
                        f"20{rnd.randint(15, 23)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"])
    (root / "transforms").mkdir()
    (root / "transforms" / "customer_daily.sql").write_text(TRANSFORM_SQL.format(days=days))
    (root / "feature_repo").mkdir()
    (root / "feature_repo" / "feature_store.yaml").write_text(
        (REPO / "feature_repo" / "feature_store.yaml").read_text().replace("project: nycflights", "project: bench"))
    (root / "feature_repo" / "definitions.py").write_text(DEFINITIONS)
    ws = Workspace.load(root, environ={})
    ws.ensure_state()
    t0 = time.perf_counter()
    load_seeds(ws)
    [result] = run_transforms(ws, ["customer_daily"], engine="duckdb")
    built = {"seed_rows": ENTITIES, "transform": {"rows": result.rows, "files": result.files, "seconds": result.seconds,
                                                   "engine": result.engine}}
    t1 = time.perf_counter()
    built["applied"] = apply(ws)
    built["apply_s"] = time.perf_counter() - t1
    built["build_s"] = time.perf_counter() - t0
    log(f"materialize: workspace built in {built['build_s']:.1f} s ({result.rows:,} feature rows, "
        f"{ENTITIES:,} customers x {days} days; feast apply {built['apply_s']:.1f} s)")
    assert result.rows == ROWS, result.rows
    return ws, built


def parquet_files(ws) -> list[str]:
    return sorted(str(p) for p in (ws.lake.table_dir("features", "customer_daily") / "current").glob("*.parquet"))


def latest_per_entity(table):
    """The last row (by event time) of every customer: sort, then keep where the key changes."""
    import numpy as np
    import pyarrow.compute as pc

    table = table.take(pc.sort_indices(table, [("customer_id", "ascending"), ("event_timestamp", "ascending")]))
    keys = table.column("customer_id").combine_chunks()
    last = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        last[:-1] = pc.not_equal(keys.slice(0, len(keys) - 1), keys.slice(1)).to_numpy(zero_copy_only=False)
    return table.filter(last)


def baseline_long(files: list[str], db: Path) -> int:
    import pyarrow.parquet as pq

    latest = latest_per_entity(pq.read_table(files))
    keys = latest.column("customer_id").to_pylist()
    stamps = [t.isoformat() for t in latest.column("event_timestamp").to_pylist()]
    con = sqlite3.connect(db)
    try:
        with con:
            for name in FEATURES:
                con.executemany(
                    "INSERT INTO online (entity_key, feature_name, value, event_ts) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
                    "event_ts = excluded.event_ts",
                    zip(keys, [name] * len(keys), latest.column(name).to_pylist(), stamps))
    finally:
        con.close()
    return len(keys) * len(FEATURES)


def baseline_wide(files: list[str], db: Path) -> int:
    import pyarrow.parquet as pq

    latest = latest_per_entity(pq.read_table(files))
    columns = ["customer_id", *FEATURES]
    rows = zip(*(latest.column(c).to_pylist() for c in columns),
               (t.isoformat() for t in latest.column("event_timestamp").to_pylist()))
    con = sqlite3.connect(db)
    try:
        with con:
            con.executemany(
                f"INSERT INTO online_wide ({', '.join(columns)}, event_ts) VALUES ({', '.join('?' * (len(columns) + 1))}) "
                "ON CONFLICT(customer_id) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in [*FEATURES, "event_ts"]), rows)
    finally:
        con.close()
    return latest.num_rows


def create_baseline_tables(db: Path) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute("CREATE TABLE IF NOT EXISTS online (entity_key TEXT, feature_name TEXT, value REAL, "
                    "event_ts TEXT, PRIMARY KEY (entity_key, feature_name))")
        con.execute("CREATE TABLE IF NOT EXISTS online_wide (customer_id TEXT PRIMARY KEY, orders_7d INTEGER, "
                    "spend_7d REAL, avg_basket_7d REAL, days_since_order INTEGER, churn_score REAL, event_ts TEXT)")
    con.close()


def empty_tables(db: Path) -> dict[str, int]:
    """DELETE FROM every table (not timed); returns the row counts before."""
    if not db.exists():
        return {}
    con = sqlite3.connect(db)
    counts = {}
    with con:
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            counts[name] = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            con.execute(f'DELETE FROM "{name}"')
    con.close()
    return counts


def run(log=print) -> dict:
    info = machine_info()
    info["versions"].update(_versions("feast", "ibis-framework", "protobuf"))
    info["versions"]["sqlite"] = sqlite3.sqlite_version
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-materialize-") as tmp:
        tmp = Path(tmp)
        ws, built = build_workspace(tmp, log)
        result = _measure(ws, built, log, info, started)
    result["runtime_s"] = time.perf_counter() - started
    write_result(NAME, result)
    return result


def _measure(ws, built: dict, log, info: dict, started: float) -> dict:
    from lakebook import features

    files = parquet_files(ws)
    online_db = ws.feast_dir / "online.db"
    base_db = ws.feast_dir / "baseline.db"  # same folder, same disk
    create_baseline_tables(base_db)

    def run_fast():
        done = features.materialize(ws)
        assert done["engines"] == {"customer_daily": "lakebook"}, done["engines"]

    def run_feast():
        with contextlib.redirect_stdout(io.StringIO()):  # Feast prints a progress line per view
            features.materialize(ws, engine="feast")

    variants = {"fast": (run_fast, online_db), "feast": (run_feast, online_db),
                "raw": (lambda: baseline_long(files, base_db), base_db),
                "raw_wide": (lambda: baseline_wide(files, base_db), base_db)}
    samples = {v: [] for v in variants}
    online_rows = {v: [] for v in variants}
    order = list(variants)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        load = []
        r = 0
        while r <= REPS and (r <= MIN_REPS or time.perf_counter() - started < BUDGET_S):  # repetition 0: warm-up
            rot = order if r % 2 == 0 else order[::-1]
            for v in rot:
                fn, db = variants[v]
                empty_tables(db)
                t0 = time.perf_counter()
                fn()
                seconds = time.perf_counter() - t0
                rows_after = count_online_rows(db, v)
                if r == 0:
                    log(f"  warm-up {v}: {seconds:.2f} s, {rows_after:,} online rows")
                    continue
                samples[v].append(seconds)
                online_rows[v].append(rows_after)
            if r:
                load.append(os.getloadavg()[0])
                log(f"  rep {r}: " + ", ".join(f"{v} {samples[v][-1]:.2f} s" for v in order) + f" (load {load[-1]:.1f})")
            r += 1
        checked = {}
        for v, run_it in (("fast", run_fast), ("feast", run_feast)):  # one profiled run each, then its values
            empty_tables(online_db)
            profile = profile_once(run_it, PROFILE_PARTS[v])
            checked[v] = {"profile": profile, "value_check": _check_same_values(ws, features, base_db),
                          "table": feast_table(online_db)}
            log(f"  profile of one {v} run (cProfile, cumulative s): "
                + ", ".join(f"{k} {p['cumulative_s']:.2f}" for k, p in profile["parts"].items()))
    meds = {v: median(s) for v, s in samples.items()}
    rate = {v: ROWS / m for v, m in meds.items()}
    over_feast, over_raw = meds["feast"] / meds["fast"], meds["raw"] / meds["fast"]
    return {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "data": f"synthetic: {ROWS:,} rows in features.customer_daily = {ENTITIES:,} customers x "
                    f"{ROWS // ENTITIES} daily snapshots, 5 features (2 BIGINT, 3 DOUBLE, one nullable) + event_timestamp; "
                    "seed ref.customers (load_seeds) and a DuckDB SQL transform in zone features (run_transforms)",
            "transform_sql": TRANSFORM_SQL.format(days=ROWS // ENTITIES),
            "feast_definitions": DEFINITIONS,
            "workspace": built,
            "parquet_files": [{"name": Path(f).name, "bytes": Path(f).stat().st_size} for f in files],
            "fast": "lakebook.features.materialize(workspace): whole event-time range from the catalog; lakebook's bulk "
                    "path (DuckDB latest row per entity, vectorised Feast bytes, one executemany upsert into Feast's "
                    "SQLite table in one transaction, Feast's registry updated)",
            "feast": "lakebook.features.materialize(workspace, engine='feast'): Feast's FeatureStore.materialize over "
                     "the same window (local compute engine, DuckDB offline store, SQLite online store, "
                     "entity_key_serialization_version 3)",
            "raw": "pyarrow.parquet.read_table(same files) -> latest row per customer (sort_indices + key change "
                   "mask) -> sqlite3.executemany upsert, one row per (customer, feature): (entity_key TEXT, "
                   "feature_name TEXT, value REAL, event_ts TEXT, PRIMARY KEY(entity_key, feature_name)), one "
                   "transaction, default sqlite3 settings, file next to Feast's online.db",
            "raw_wide": "informational: same read and dedup, one row per customer, one column per feature",
            "reset": "DELETE FROM the target table(s) before every repetition of every variant (not timed)",
            "reps": r - 1, "max_reps": REPS, "min_reps": MIN_REPS, "budget_s": BUDGET_S, "warmup_reps": 1,
            "order": "same process; variants alternate order per repetition (forward, reversed)",
            "rows_per_s": "offline feature rows (1,000,000) / seconds",
        },
        "online_rows": {v: rows[-1] for v, rows in online_rows.items()},
        "same_online_row_count": online_rows["fast"][-1] == online_rows["feast"][-1] == online_rows["raw"][-1]
                                 == ENTITIES * len(FEATURES),
        "value_check": {v: c["value_check"] for v, c in checked.items()},
        "fast_and_feast_tables_identical": checked["fast"]["table"] == checked["feast"]["table"],
        "profile_once": {v: c["profile"] for v, c in checked.items()},
        "samples_s": samples,
        "loadavg_1m_per_rep": load,
        "medians_s": meds,
        "rows_per_s": rate,
        "ratio_fast_over_feast": over_feast,
        "ratio_fast_over_raw": over_raw,
        "ratio_feast_over_raw": meds["raw"] / meds["feast"],
        "ratio_fast_over_raw_wide": meds["raw_wide"] / meds["fast"],
        "targets": {"ratio_fast_over_feast": _target(over_feast, TARGET_OVER_FEAST),
                    "ratio_fast_over_raw": _target(over_raw, TARGET_OVER_RAW)},
    }


def _target(value: float, target: float) -> dict:
    return {"target": f">= {target:g}", "value": value, "met": value >= target}


def count_online_rows(db: Path, variant: str) -> int:
    con = sqlite3.connect(db)
    try:
        table = {"raw": "online", "raw_wide": "online_wide"}.get(variant) or feast_table_name(con)
        return con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    finally:
        con.close()


def feast_table_name(con) -> str:
    return con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%customer_daily'").fetchone()[0]


def feast_table(db: Path) -> list[tuple]:
    """Every row of Feast's online table, in key order."""
    con = sqlite3.connect(db)
    try:
        return con.execute(f'SELECT * FROM "{feast_table_name(con)}" ORDER BY entity_key, feature_name').fetchall()
    finally:
        con.close()


PROFILE_PARTS = {  # variant: {name in the result: (file name ends with, function name)}
    "fast": {
        "latest row per entity (DuckDB)": ("features/fast_materialize.py", "latest_rows"),
        "entity keys (vectorised)": ("features/encoding.py", "entity_keys"),
        "values -> protobuf bytes (vectorised)": ("features/encoding.py", "value_protos"),
        "value_text (str per value)": ("features/encoding.py", "value_texts"),
        "sqlite3 executemany, one transaction": ("~", "<method 'executemany' of 'sqlite3.Connection' objects>"),
        "Feast registry record": ("features/fast_materialize.py", "_recorded"),
    },
    "feast": {
        "offline query set-up (ibis expression, lazy)": ("offline_stores/ibis.py", "pull_all_from_table_or_query_ibis"),
        "offline read (DuckDB via ibis -> Arrow, all rows in range)": ("offline_stores/ibis.py", "_to_arrow_internal"),
        "dedup latest per entity (pandas)": ("backends/pandas_backend.py", "drop_duplicates"),
        "convert Arrow -> protobuf values": ("feast/utils.py", "_convert_arrow_to_proto"),
        "online_write_batch (SQLite)": ("online_stores/sqlite.py", "online_write_batch"),
        "  of which sqlite3 Connection.execute, one call per row": ("~", "<method 'execute' of 'sqlite3.Connection' objects>"),
        "  of which serialize_entity_key": ("key_encoding_utils.py", "serialize_entity_key"),
    },
}


def profile_once(fn, parts: dict) -> dict:
    """One extra run under cProfile (not a timed sample): where the time goes.
    cProfile inflates Python-heavy parts, so read the shares, not the absolute times."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    fn()
    prof.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats
    found_parts = {}
    for label, (suffix, func) in parts.items():
        found = [(v[1], v[3]) for (path, _, name), v in stats.items() if name == func and path.endswith(suffix)]
        found_parts[label] = {"calls": sum(c for c, _ in found), "cumulative_s": round(sum(t for _, t in found), 3),
                              "share": round(sum(t for _, t in found) / total, 3)}
    return {"total_s_under_profiler": round(total, 3), "parts": found_parts, "top_own_time": top_own_time(stats)}


def top_own_time(stats, n: int = 10) -> list[dict]:
    """The functions with the most own time (cProfile tottime)."""
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    return [{"function": f"{Path(path).name}:{line}({name})" if path != "~" else name, "calls": v[1],
             "own_s": round(v[2], 3), "cumulative_s": round(v[3], 3)} for (path, line, name), v in rows]


def _check_same_values(ws, features, base_db: Path) -> dict:
    """The online values of a sample of customers, read back through Feast's
    ``get_online_features``, equal the raw writer's."""
    rnd = random.Random(7)
    ids = [f"C{rnd.randrange(ENTITIES):07d}" for _ in range(CHECK_ENTITIES)]
    online = features.online_features(ws, "customer_v1", [{"customer_id": i} for i in ids])
    con = sqlite3.connect(base_db)
    expected = {(k, n): v for k, n, v in con.execute("SELECT entity_key, feature_name, value FROM online")}
    con.close()
    mismatches = []
    for j, cid in enumerate(ids):
        for name in FEATURES:
            a, b = online[name][j], expected.get((cid, name), "missing")
            same = (a is None and b is None) or (
                a is not None and b not in (None, "missing") and math.isclose(float(a), float(b), rel_tol=1e-12))
            if not same:
                mismatches.append([cid, name, a, b])
    return {"customers": CHECK_ENTITIES, "values": CHECK_ENTITIES * len(FEATURES), "mismatches": mismatches[:10],
            "equal": not mismatches}


def summary(result: dict) -> list[str]:
    r, m, t = result["rows_per_s"], result["medians_s"], result["targets"]
    met = {k: "MET" if v["met"] else "MISSED" for k, v in t.items()}
    checks = result["value_check"]
    return [
        f"materialize 1M feature rows -> SQLite online: lakebook fast path {r['fast']:,.0f} rows/s ({m['fast']:.2f} s), "
        f"Feast stock {r['feast']:,.0f} rows/s ({m['feast']:.2f} s), pyarrow+sqlite3 {r['raw']:,.0f} rows/s "
        f"({m['raw']:.2f} s)",
        f"            fast/feast speed-up {result['ratio_fast_over_feast']:.2f} (target >= {TARGET_OVER_FEAST:g}: "
        f"{met['ratio_fast_over_feast']}); fast/raw {result['ratio_fast_over_raw']:.2f} (target >= {TARGET_OVER_RAW:g}: "
        f"{met['ratio_fast_over_raw']}); feast/raw {result['ratio_feast_over_raw']:.2f}",
        f"            sampled values equal to raw: fast {checks['fast']['equal']}, feast {checks['feast']['equal']}; "
        f"fast and feast tables identical: {result['fast_and_feast_tables_identical']}; "
        f"online rows {result['online_rows']['fast']:,} / {result['online_rows']['feast']:,} / {result['online_rows']['raw']:,}",
    ]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
