"""The Endpoints panel API's pieces that need no server: the endpoints listed while the
serving service is not running, which token goes with which endpoint, the request form's
fields and examples, and what a relayed error may carry."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from lakebook.errors import EndpointUnavailable, NotFound
from lakebook.redact import remember
from lakebook.server.endpoints import (
    EndpointsAPI, endpoint_token, reachable, relayed_body, request_fields,
)
from lakebook.workspace import Workspace

ENDPOINTS = """
serving:
  port: 8123
  endpoints:
    delay: {model: 'models:/flight_delay@champion'}
    canary: {model: 'models:/flight_delay/2'}
"""


@pytest.fixture
def serving_ws(workspace_dir):
    config = workspace_dir / "lakebook.yaml"
    config.write_text(config.read_text() + ENDPOINTS)
    ws = Workspace.load(workspace_dir)
    ws.serving_endpoints_path.parent.mkdir(parents=True, exist_ok=True)
    ws.serving_endpoints_path.write_text(json.dumps({"trial": {"model": "models:/flight_delay/1"}}))
    return ws


def test_without_the_serving_service_the_endpoints_it_would_serve_are_listed_not_running(serving_ws):
    answer = EndpointsAPI(lambda: serving_ws).endpoints_json()
    assert answer["running"] is False and answer["hint"] == "lakebook serve start or lakebook up"
    rows = {row["name"]: row for row in answer["endpoints"]}
    assert list(rows) == ["canary", "delay", "trial"]
    assert {name: (row["status"], row["declared"]) for name, row in rows.items()} == {
        "canary": ("not running", True), "delay": ("not running", True), "trial": ("not running", False)}
    assert rows["delay"]["model"] == "models:/flight_delay@champion"
    assert rows["delay"]["url"] == "http://127.0.0.1:8123/delay"
    assert rows["delay"]["version"] is None and rows["delay"]["requests"] is None


def test_a_workspace_without_endpoints_lists_none(workspace):
    assert EndpointsAPI(lambda: workspace).endpoints_json()["endpoints"] == []


def test_predicting_needs_a_known_and_running_endpoint(serving_ws):
    api = EndpointsAPI(lambda: serving_ws)
    with pytest.raises(NotFound) as unknown:
        api.predict("dealy", b"{}")
    assert "did you mean 'delay'?" in unknown.value.hint
    with pytest.raises(EndpointUnavailable) as stopped:
        api.predict("delay", b"{}")
    assert stopped.value.http_status == 503 and stopped.value.hint == "lakebook serve start or lakebook up"
    with pytest.raises(EndpointUnavailable):
        api.schema_json("delay")


def test_the_token_is_the_endpoints_own_else_a_star_one_else_none():
    tokens = {"delay": [SecretStr("d1"), SecretStr("d2")], "*": [SecretStr("star")], "empty": []}
    assert endpoint_token(tokens, "delay") == "d1"
    assert endpoint_token(tokens, "other") == "star"
    assert endpoint_token(tokens, "empty") == "star"
    assert endpoint_token({}, "delay") is None


def test_a_wildcard_bind_address_is_reached_on_loopback():
    assert reachable("http://0.0.0.0:8000/delay") == "http://127.0.0.1:8000/delay"
    assert reachable("http://127.0.0.1:8000/delay/") == "http://127.0.0.1:8000/delay"
    assert reachable("http://serve.internal:8000/delay") == "http://serve.internal:8000/delay"


def test_form_fields_follow_the_schema_with_its_examples_else_the_models():
    schema = {"type": "object", "required": ["origin", "distance"], "properties": {
        "origin": {"type": "string"}, "distance": {"type": "number"},
        "sched_dep_at": {"type": "string", "format": "date-time", "examples": ["2013-06-01T09:00:00Z"]}}}
    fields = request_fields(schema, {"origin": "JFK", "distance": 1069.0, "sched_dep_at": "ignored"})
    assert fields == [
        {"name": "origin", "type": "string", "format": None, "required": True, "example": "JFK"},
        {"name": "distance", "type": "number", "format": None, "required": True, "example": 1069.0},
        {"name": "sched_dep_at", "type": "string", "format": "date-time", "required": False,
         "example": "2013-06-01T09:00:00Z"}]
    assert request_fields(schema, {})[0]["example"] is None


def test_a_relayed_error_never_carries_a_secret_this_server_holds():
    remember(["lab-secret-token-81f2"])
    echoed = httpx.Response(403, json={"error": {"status": 403, "message": "bad token lab-secret-token-81f2"}})
    assert "lab-secret-token-81f2" not in json.dumps(relayed_body(echoed))
    text = httpx.Response(502, text="Bad Gateway")
    assert relayed_body(text) == {"error": {"status": 502, "message": "Bad Gateway", "hint": None}}
    assert relayed_body(httpx.Response(200, json={"p_late": 0.25})) == {"p_late": 0.25}
