"""Predictions joined with outcomes (transforms/prediction_outcomes.sql) and their live quality
(transforms/prediction_quality.sql) on DuckDB: which predictions get an outcome, and the ROC
AUC and calibration computed in SQL against scikit-learn and pandas, ties included."""

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from events import flight, log_events
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession
from lakebook.transform import load_seeds, run_transforms

REPO = Path(__file__).resolve().parents[2]
TRANSFORMS = ("flights_clean.sql", "prediction_outcomes.sql", "prediction_quality.sql")
ORIGINS = ("EWR", "JFK", "LGA")


def late_flight(i: int) -> dict:
    """Flight ``i``: late on arrival when ``i`` is a multiple of 3 or 5 (mixed with the p_late
    ties below), from one of three origins; the same flight number leaves each origin."""
    return flight(i, origin=ORIGINS[i % 3], arr_delay=40.0 if i % 3 == 0 or i % 5 == 0 else 3.0)


def prediction(f: dict, p: float, *, endpoint="delay", version="1", **inputs) -> dict:
    """A predictions event as the predictor records it, for flight event ``f``."""
    return {"request_id": f"{endpoint}-{version}-{f['origin']}-{f['flight']}-{f['sched_dep_at']}",
            "predicted_at": (datetime.fromisoformat(f["sched_dep_at"]) - timedelta(hours=2)).isoformat(),
            "endpoint": endpoint, "model": "flight_delay", "version": version, "output": p, "latency_ms": 4.2,
            "entity": json.dumps({"origin": f["origin"], "carrier": f["carrier"], "tailnum": f["tailnum"]}),
            "inputs": json.dumps({"distance": f["distance"], "flight": f["flight"], "sched_dep_at": f["sched_dep_at"],
                                  **inputs}),
            "features": "{}", "feature_age_s": "{}", "missing_features": "[]"}


@pytest.fixture
def ws(workspace):
    (workspace.root / "transforms").mkdir()
    for name in TRANSFORMS:
        shutil.copy(REPO / "transforms" / name, workspace.root / "transforms")
    shutil.copytree(REPO / "seeds", workspace.root / "seeds")
    load_seeds(workspace)
    return workspace


def rows(ws, sql: str) -> list[dict]:
    return LakeSession(ws).query(sql).table.to_pylist()


def arrive(ws, flights: list[dict]) -> None:
    log_events(ws, "flights", flights)
    flush_ingest_log_to_raw(ws)


def test_a_prediction_gets_its_flights_outcome_once_the_flight_has_arrived(ws):
    arrived = [late_flight(i) for i in range(6)]
    cancelled = flight(50, dep_time=None, arr_time=None, arr_delay=None, air_time=None)
    later = late_flight(60)  # not in the lake yet
    arrive(ws, arrived + [cancelled])
    sent = [prediction(f, 0.1 * (i + 1)) for i, f in enumerate(arrived + [cancelled, later])]
    # a client that sent the departure with an offset, and events no join can read
    sent.append(prediction(arrived[0], 0.5, endpoint="delay2") | {
        "inputs": json.dumps({"flight": arrived[0]["flight"], "sched_dep_at": "2013-01-01T05:00:00-05:00"})})
    sent.append(prediction(arrived[1], 0.5, endpoint="delay2") | {"inputs": "{not json", "entity": "[1, 2"})
    sent.append(prediction(arrived[2], 0.5, endpoint="delay2", version="2") | {
        "inputs": json.dumps({"flight": "a string", "sched_dep_at": "not a time"})})
    log_events(ws, "predictions", sent)
    flush_ingest_log_to_raw(ws)

    results = {r.name: r for r in run_transforms(ws, engine="duckdb")}
    assert results["warehouse.prediction_outcomes"].rows == 7
    found = {r["request_id"]: r for r in rows(ws, "SELECT * FROM warehouse.prediction_outcomes")}
    ids = {(r["origin"], r["flight"], r["at"]): r["flight_id"] for r in rows(
        ws, "SELECT flight_id, origin, flight, strftime(sched_dep_at, '%Y-%m-%dT%H:%M:%SZ') AS at "
            "FROM warehouse.flights_clean")}
    for f, p in zip(arrived, sent):
        outcome = found.pop(p["request_id"])
        assert outcome["flight_id"] == ids[f["origin"], f["flight"], f["sched_dep_at"]]
        assert outcome["arr_late"] is (f["arr_delay"] > 15) and outcome["p_late"] == p["output"]
        assert (outcome["endpoint"], outcome["model"], outcome["version"], outcome["latency_ms"]) == (
            "delay", "flight_delay", "1", 4.2)
    [offset] = found.values()
    assert offset["endpoint"] == "delay2" and offset["flight_id"] == ids["EWR", 1, arrived[0]["sched_dep_at"]]

    arrive(ws, [later])
    run_transforms(ws, engine="duckdb")
    latest = rows(ws, "SELECT request_id, arr_late FROM warehouse.prediction_outcomes WHERE endpoint = 'delay'")
    assert len(latest) == 7 and {"request_id": sent[7]["request_id"], "arr_late": True} in latest


def deciles(p: np.ndarray, late: np.ndarray, ids: list[str]) -> list[tuple]:
    """SQL's ntile(10) over (p, id): the first n % 10 groups hold one more row."""
    order = sorted(range(len(p)), key=lambda i: (p[i], ids[i]))
    groups = np.array_split(np.array(order), 10)
    return [(d + 1, len(g), int(late[g].sum()), p[g].mean(), late[g].mean()) for d, g in enumerate(groups)]


def test_live_roc_auc_and_calibration_per_model_version(ws):
    flights = [late_flight(i) for i in range(157)]
    arrive(ws, flights)
    rng = np.random.default_rng(7)
    p1 = np.round(rng.uniform(0.05, 0.95, len(flights)), 1)  # nine values: ties across both outcomes
    p2 = rng.uniform(0, 1, len(flights))
    events = [prediction(f, float(p1[i])) for i, f in enumerate(flights)]
    events += [prediction(f, float(p2[i]), version="2") for i, f in enumerate(flights[:40])]
    log_events(ws, "predictions", events)
    flush_ingest_log_to_raw(ws)
    run_transforms(ws, engine="duckdb")

    quality = rows(ws, "SELECT * FROM warehouse.prediction_quality ORDER BY version, decile NULLS FIRST")
    late = np.array([f["arr_delay"] > 15 for f in flights], dtype=float)
    for version, p, n in (("1", p1, 157), ("2", p2[:40], 40)):
        mine = [r for r in quality if r["version"] == version]
        overall, per_decile = mine[0], mine[1:]
        assert overall["decile"] is None and overall["predictions"] == n and overall["late"] == late[:n].sum()
        assert overall["roc_auc"] == pytest.approx(roc_auc_score(late[:n], p), abs=1e-12)
        assert overall["mean_p_late"] == pytest.approx(p.mean()) and overall["late_share"] == pytest.approx(late[:n].mean())
        assert overall["calibration_gap"] == pytest.approx(p.mean() - late[:n].mean())
        ids = [e["request_id"] for e in events if e["version"] == version]
        expected = deciles(p, late[:n], ids)
        assert [(r["decile"], r["predictions"], r["late"]) for r in per_decile] == [e[:3] for e in expected]
        assert [r["mean_p_late"] for r in per_decile] == pytest.approx([e[3] for e in expected])
        assert [r["late_share"] for r in per_decile] == pytest.approx([e[4] for e in expected])
        assert all(r["roc_auc"] is None for r in per_decile)
    tied = [v for v in set(p1) if 0 < late[p1 == v].mean() < 1]
    assert tied, "some p_late values are shared by late and punctual flights"


def test_auc_is_null_while_a_version_has_only_one_kind_of_outcome(ws):
    flights = [late_flight(i) for i in (1, 2, 4)]  # none late
    arrive(ws, flights)
    log_events(ws, "predictions", [prediction(f, 0.3) for f in flights])
    flush_ingest_log_to_raw(ws)
    run_transforms(ws, engine="duckdb")
    [overall] = rows(ws, "SELECT * FROM warehouse.prediction_quality WHERE decile IS NULL")
    assert (overall["predictions"], overall["late"], overall["roc_auc"], overall["late_share"]) == (3, 0, None, 0.0)


def test_with_no_predictions_yet_both_tables_exist_empty(ws):
    arrive(ws, [late_flight(0)])
    results = {r.name: r.rows for r in run_transforms(ws, engine="duckdb")}
    assert results["warehouse.prediction_outcomes"] == 0 and results["warehouse.prediction_quality"] == 0
    assert rows(ws, "SELECT count(*) AS n FROM warehouse.prediction_quality") == [{"n": 0}]
