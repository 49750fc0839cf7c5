"""The ingest HTTP app in process (Starlette's TestClient, the flusher and validators as
threads): every error status in lakebook's one JSON shape, and /metrics. The uvicorn
subprocess tests (tests/integration/test_ingest_http.py) cover the same app over real HTTP."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from events import flight, metric, ndjson, parse_metrics, weather
from lakebook.ingest import create_app
from lakebook.workspace import Workspace

NDJSON = {"content-type": "application/x-ndjson"}


@pytest.fixture
def client_for(workspace_dir):
    clients = []

    def make(config: str = "", environ: dict | None = None) -> TestClient:
        (workspace_dir / "lakebook.yaml").write_text("name: test\n" + config)
        ws = Workspace.load(workspace_dir, environ=environ or {})
        client = TestClient(create_app(ws, fork=False, flush_interval_s=60), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def error_of(answer, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert set(error) == {"status", "message", "hint"} and error["status"] == status and error["message"]
    return error


def test_an_accepted_batch_and_a_wholly_rejected_one(client_for):
    client = client_for()
    ok = client.post("/v1/events/flights", content=ndjson([flight(1), flight(2)]), headers=NDJSON)
    assert ok.status_code == 200 and ok.json()["accepted"] == 2
    bad = client.post("/v1/events/flights", content=ndjson([flight(3, month=13)]), headers=NDJSON)
    assert bad.status_code == 422
    doc = bad.json()
    assert doc["accepted"] == 0 and doc["rejected_count"] == 1 and "month" in doc["rejected"][0]["reasons"][0]


def test_unknown_source_and_unknown_route_are_404(client_for):
    client = client_for()
    error = error_of(client.post("/v1/events/flight", content=ndjson([flight(1)]), headers=NDJSON), 404)
    assert error["hint"] == "did you mean 'flights'?"
    error = error_of(client.get("/v2/nothing"), 404)
    assert "POST /v1/events/{source}" in error["hint"]
    assert error_of(client.get("/v1/events/flights"), 405)["hint"].startswith("routes:")


def test_missing_wrong_and_unconfigured_tokens(client_for):
    client = client_for(environ={"LAKEBOOK_INGEST__TOKENS": '{"flights": ["fl-token"]}'})
    body = ndjson([flight(1)])
    missing = client.post("/v1/events/flights", content=body, headers=NDJSON)
    assert error_of(missing, 401)["hint"] == "send 'Authorization: Bearer <token>'"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/v1/events/flights", content=body, headers={**NDJSON, "authorization": "Bearer nope"})
    assert "not valid for source 'flights'" in error_of(wrong, 401)["message"]
    other = client.post("/v1/events/weather", content=ndjson([weather(1)]),
                        headers={**NDJSON, "authorization": "Bearer fl-token"})
    assert "no token is configured for source 'weather'" in error_of(other, 403)["message"]
    right = client.post("/v1/events/flights", content=body, headers={**NDJSON, "authorization": "Bearer fl-token"})
    assert right.status_code == 200


def test_a_body_over_the_limit_is_413(client_for):
    client = client_for("ingest:\n  max_request_bytes: 1000\n")
    error = error_of(client.post("/v1/events/flights", content=ndjson([flight(i) for i in range(20)]),
                                 headers=NDJSON), 413)
    assert "limit of 1000" in error["message"]


def test_a_full_backlog_is_503_with_retry_after(client_for):
    client = client_for("ingest:\n  max_backlog_events: 2\n  flush_interval_s: 7\n")
    assert client.post("/v1/events/flights", content=ndjson([flight(1), flight(2)]), headers=NDJSON).status_code == 200
    full = client.post("/v1/events/flights", content=ndjson([flight(3)]), headers=NDJSON)
    error = error_of(full, 503)
    assert "2 unflushed events" in error["message"] and full.headers["retry-after"] == "60"


def test_a_body_that_is_not_json_is_400_and_quarantined(client_for):
    client = client_for()
    error = error_of(client.post("/v1/events/flights", content=b"{nope", headers={"content-type": "application/json"}),
                     400)
    assert "not valid JSON" in error["message"]
    assert client.app.state.service.metrics.rejected == {"flights": 1}


def test_metrics_are_prometheus_text(client_for):
    client = client_for()
    client.post("/v1/events/flights", content=ndjson([flight(1), flight(2), flight(3, month=13)]), headers=NDJSON)
    client.post("/v1/events/nope", content=ndjson([flight(4)]), headers=NDJSON)
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = parse_metrics(answer.text)
    assert metric(samples, "lakebook_ingest_events_accepted_total", source="flights") == 2
    assert metric(samples, "lakebook_ingest_events_rejected_total", source="flights") == 1
    assert metric(samples, "lakebook_ingest_responses_total", code=404) == 1
    assert metric(samples, "lakebook_ingest_responses_total", code=200) == 1
    assert metric(samples, "lakebook_ingest_backlog_events") == 2
    assert metric(samples, "lakebook_ingest_log_commits_total") >= 1
    assert "# TYPE lakebook_ingest_backlog_events gauge" in answer.text
    assert "# HELP lakebook_ingest_events_accepted_total Events accepted (durable in the ingest log)." in answer.text
