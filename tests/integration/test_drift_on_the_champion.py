"""Feature drift against the real champion of the example notebook (``model_ws``): the weather
temperature the model was trained on does not drift on the lake as trained; a year of the same
observations 25 F warmer, posted to a real ingest server and flushed, drifts above the fail level."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from events import ndjson
from ingest_support import NDJSON, flush, ingest_server, read_lake  # noqa: F401 - ingest_server is a fixture
from lakebook.ml import current_champion, setup_mlflow
from lakebook.monitor.drift import feature_drift

pytestmark = pytest.mark.integration
TRAINED_TO = datetime(2014, 1, 1, tzinfo=timezone.utc)  # the notebook trains on 2013 (its default dates)
A_YEAR = timedelta(days=365)  # 2013 has no 29 February: the same dates a year later
WEATHER_FIELDS = ["origin", "year", "month", "day", "hour", "temp", "dewp", "humid", "wind_dir", "wind_speed",
                  "wind_gust", "precip", "pressure", "visib", "time_hour"]
FAIL = 0.25  # PSI above this is a large shift


def check(feature: str, **options):
    return SimpleNamespace(args=(feature,), options={"window": "365d", **options})


def a_year_later_and_warmer(ws, degrees: float) -> list[dict]:
    """Every weather observation of the lake, a year later and ``degrees`` F warmer."""
    events = []
    for row in read_lake(ws.root, "raw", "weather", columns=WEATHER_FIELDS).to_pylist():
        at = row["time_hour"].astimezone(timezone.utc) + A_YEAR
        events.append({**row, "year": row["year"] + 1, "temp": row["temp"] + degrees,
                       "time_hour": at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return events


def test_weather_temperature_drifts_when_new_events_are_warmer(model_ws, ingest_server):
    champion = current_champion(setup_mlflow(model_ws), "flight_delay")
    # the feature view's feature against the sample of the training set the notebook logged (the
    # earlier 80% of a year of flights, weighted by departures): a year of weather is close to it
    view = feature_drift(model_ws, check("origin_weather.temp_c"), TRAINED_TO)
    assert view.value < 0.1, view.detail
    assert view.labels == {"feature_view": "origin_weather", "feature": "temp_c", "table": "features.origin_weather",
                           "model": "flight_delay"}
    assert view.detail.endswith(f"against 5,000 of the training set of flight_delay v{champion.version}")
    # a view with a row per carrier and day, not per flight, compared like with like
    daily = feature_drift(model_ws, check("carrier_daily.late_share_1d", against="training_window"), TRAINED_TO)
    assert daily.value == pytest.approx(0.0, abs=0.01), daily.detail
    # the raw column against its values in the training window the run recorded: the same year
    as_trained = feature_drift(model_ws, check("raw.weather.temp"), TRAINED_TO)
    assert as_trained.value == pytest.approx(0.0, abs=0.01), as_trained.detail
    assert as_trained.detail.endswith(f"of the training window of flight_delay v{champion.version} "
                                      "(2013-01-01 to 2014-01-01)")

    events = a_year_later_and_warmer(model_ws, 25.0)
    server = ingest_server(model_ws.root, flush_interval_s=60)
    with server.client() as http:
        for start in range(0, len(events), 1000):
            answer = http.post("/v1/events/weather", content=ndjson(events[start:start + 1000]), headers=NDJSON)
            assert answer.status_code == 200 and answer.json()["rejected"] == [], answer.text
    flush(model_ws.root)

    drifted = feature_drift(model_ws, check("raw.weather.temp"), TRAINED_TO + A_YEAR)
    assert drifted.value > FAIL, drifted.detail
    assert f"{len(events):,} values of raw.weather.temp in the last 365d" in drifted.detail
    by_ks = feature_drift(model_ws, check("raw.weather.temp", method="ks"), TRAINED_TO + A_YEAR)
    assert by_ks.unit == "ks" and by_ks.value > 0.3, by_ks.detail

    # the same check declared in monitors/, evaluated by the engine: it fires, and its alert,
    # kept by the alert manager, lists what reads raw.weather downstream
    from lakebook.monitor.alertstore import AlertStore
    from lakebook.monitor.engine import evaluate
    from lakebook.workspace import Workspace

    (model_ws.root / "monitors").mkdir(exist_ok=True)
    (model_ws.root / "monitors" / "drift.yaml").write_text(
        "checks:\n  - {name: weather_warmer, check: feature_drift(raw.weather.temp), window: 365d, "
        f"fail: '> {FAIL}', for: 0}}\n")
    ws = Workspace.load(model_ws.root)
    evaluation = evaluate(ws, names=["weather_warmer"], now=TRAINED_TO + A_YEAR)
    [(_, result, _)] = evaluation.results
    assert (result.state, result.level) == ("firing", "fail"), result.detail
    [alert] = evaluation.alerts
    assert (alert.status, alert.labels["table"], alert.labels["column"]) == ("firing", "raw.weather", "temp")
    with AlertStore(ws) as store:
        [kept] = store.alerts()
    assert kept["labels"]["alertname"] == "weather_warmer" and "features.origin_weather" in kept["impact"]["tables"]
    assert "origin_weather" in kept["impact"]["feature_views"]


def test_feature_drift_is_unknown_without_a_champion(model_ws):
    measured = feature_drift(model_ws, check("raw.weather.temp", model="no_such_model"), TRAINED_TO)
    assert measured.value is None
    assert measured.detail == "model no_such_model has no champion (models:/no_such_model@champion)"
