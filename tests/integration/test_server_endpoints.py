"""The Endpoints panel's REST API on a real Jupyter server (pytest-jupyter) in front of a real
serving service (`start_service(ws, "serve")`: its own Ray, Ray Serve, the example notebook's
champion from a real MLflow registry, features from a real Feast online store). The serving
token is in the workspace's tokens file, which the Jupyter server reads: the browser never
holds it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import httpx
import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from lakebook.services import free_port
from test_stream import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("jp_server_cleanup"), pytest.mark.timeout(1800)]

TOKEN = "lab-relay-token-6c1d9e"
CHAMPION = "models:/flight_delay@champion"
FIELDS = ["origin", "carrier", "tailnum", "distance", "sched_hour_local", "sched_weekday"]


def serving_workspace(template, root, *, tokens_file):
    """A copy of ``template`` declaring the endpoint ``delay`` on free ports, its token in ``tokens_file``."""
    from lakebook.workspace import Workspace

    shutil.copytree(template, root, symlinks=True)
    tokens_file.write_text(f"delay: {TOKEN}\n")
    config = root / "lakebook.yaml"
    config.write_text(config.read_text() + (
        f"serving:\n  port: {free_port()}\n  tokens_file: {tokens_file}\n"
        f"  endpoints:\n    delay: {{model: '{CHAMPION}'}}\n"))
    return Workspace.load(root)


@pytest.fixture(scope="module")
def serving(model_template, tmp_path_factory):
    """The serving service running ``delay`` on a copy of the model template."""
    from lakebook.services import start_service

    folder = tmp_path_factory.mktemp("lab-serving")
    ws = serving_workspace(model_template, folder / "ws", tokens_file=folder / "serving-tokens.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEBOOK_")}
    service = start_service(ws, "serve", env=env)
    try:
        yield ws
    finally:
        service.stop()


@pytest.fixture
def jp_server_config(serving) -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"lakebook": True}},
                   "LakebookApp": {"workspace": str(serving.root)}})


async def fetch_json(jp_fetch, *parts, **kwargs) -> dict:
    response = await jp_fetch("lakebook", "api", "endpoints", *parts, **kwargs)
    assert response.code == 200 and response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def fetch_error(jp_fetch, *parts, **kwargs) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("lakebook", "api", "endpoints", *parts, **kwargs)
    return caught.value.code, json.loads(caught.value.response.body)


def a_flight(ws) -> dict:
    from lakebook.query import LakeSession

    return LakeSession(ws).query(
        "SELECT origin, carrier, tailnum, distance, "
        "hour(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_hour_local, "
        "dayofweek(sched_dep_at AT TIME ZONE 'America/New_York') AS sched_weekday "
        "FROM warehouse.flights_clean WHERE tailnum IS NOT NULL ORDER BY flight_id LIMIT 1").table.to_pylist()[0]


def champion_version(ws) -> str:
    from lakebook.serving import resolve_model

    return resolve_model(ws, CHAMPION).version


async def test_the_list_shows_the_running_endpoint_with_its_model_version(jp_fetch, serving):
    answer = await fetch_json(jp_fetch)
    assert answer["running"] is True
    [row] = answer["endpoints"]
    assert (row["name"], row["model"], row["status"]) == ("delay", CHAMPION, "RUNNING")
    assert row["version"] == champion_version(serving) and row["declared"] is True
    assert {"requests", "errors", "rejected", "p50_ms", "p99_ms"} <= set(row)


async def test_the_schema_lists_the_request_fields_with_the_models_own_examples(jp_fetch, serving):
    from mlflow.models import Model

    from lakebook.ml import setup_mlflow

    schema = await fetch_json(jp_fetch, "delay", "schema")
    assert (schema["name"], schema["version"]) == ("delay", champion_version(serving))
    fields = {f["name"]: f for f in schema["fields"]}
    assert list(fields) == FIELDS and all(f["required"] for f in fields.values())
    assert (fields["distance"]["type"], fields["sched_weekday"]["type"]) == ("number", "integer")
    uri = f"models:/flight_delay/{schema['version']}"
    setup_mlflow(serving)
    logged = Model.load(uri).load_input_example(uri).iloc[0]  # read here on its own, as MLflow keeps it
    assert [fields[n]["example"] for n in ("origin", "carrier", "sched_hour_local", "sched_weekday")] == \
        [logged[n] for n in ("origin", "carrier", "sched_hour_local", "sched_weekday")]
    assert fields["distance"]["example"] == pytest.approx(logged["distance"])
    assert fields["tailnum"]["example"] is None  # an entity key the model's input example does not hold


async def test_a_prediction_is_relayed_with_the_servers_token_and_counted(jp_fetch, serving):
    flight = a_flight(serving)
    response = await jp_fetch("lakebook", "api", "endpoints", "delay", "predict", method="POST",
                              body=json.dumps(flight))
    answer = json.loads(response.body)
    assert response.code == 200 and answer["version"] == champion_version(serving)
    assert 0 < answer["p_late"] < 1 and answer["model"] == "flight_delay"
    assert set(answer["feature_age_s"]) == {"origin_delays", "origin_weather", "carrier_daily", "plane_stats"}
    assert isinstance(answer["missing_features"], list) and TOKEN not in response.body.decode()
    url = (await fetch_json(jp_fetch))["endpoints"][0]["url"]
    assert httpx.post(f"{url}/predict", json=flight, timeout=30).status_code == 401  # the endpoint wants a token

    async def counted() -> int:
        return (await fetch_json(jp_fetch))["endpoints"][0]["requests"]

    for _ in range(300):  # the replicas report their figures every second
        if await counted() >= 1:
            break
        await asyncio.sleep(0.1)
    assert await counted() >= 1


async def test_the_endpoints_errors_come_back_with_their_status(jp_fetch, serving):
    flight = a_flight(serving)
    status, body = await fetch_error(jp_fetch, "delay", "predict", method="POST",
                                     body=json.dumps({**flight, "distance": "far", "origin": None}))
    assert status == 422 and body["error"]["status"] == 422
    assert {tuple(d["loc"]) for d in body["error"]["details"]} == {(0, "origin"), (0, "distance")}
    status, body = await fetch_error(jp_fetch, "delay", "predict", method="POST", body="{not json")
    assert status == 400 and "not JSON" in body["error"]["message"]
    status, body = await fetch_error(jp_fetch, "dealy", "predict", method="POST", body="{}")
    assert status == 404 and "did you mean 'delay'?" in body["error"]["hint"]
    status, body = await fetch_error(jp_fetch, "dealy", "schema")
    assert status == 404


class TestWithoutTheServingService:
    @pytest.fixture
    def jp_server_config(self, model_template, tmp_path) -> Config:
        ws = serving_workspace(model_template, tmp_path / "ws", tokens_file=tmp_path / "tokens.yaml")
        return Config({"ServerApp": {"jpserver_extensions": {"lakebook": True}},
                       "LakebookApp": {"workspace": str(ws.root)}})

    async def test_the_declared_endpoints_show_not_running_and_predict_is_503(self, jp_fetch):
        answer = await fetch_json(jp_fetch)
        assert answer["running"] is False and answer["hint"] == "lakebook serve start or lakebook up"
        assert [(r["name"], r["status"], r["version"]) for r in answer["endpoints"]] == [
            ("delay", "not running", None)]
        status, body = await fetch_error(jp_fetch, "delay", "predict", method="POST", body="{}")
        assert status == 503 and body["error"]["hint"] == "lakebook serve start or lakebook up"
