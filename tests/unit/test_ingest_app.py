"""The ingest HTTP app in process (Starlette's TestClient, the flusher and validators as
threads): every error status in lakebook's one JSON shape, and /metrics. The uvicorn
subprocess tests (tests/integration/test_ingest_http.py) cover the same app over real HTTP."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import orjson
import pytest
from starlette.testclient import TestClient

from events import flight, metric, ndjson, parse_metrics, weather
from lakebook.ingest import create_app
from lakebook.workspace import Workspace

NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}


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


def test_a_full_backlog_of_one_source_holds_back_no_other(client_for):
    client = client_for("ingest:\n  max_backlog_events: 3\n")
    assert client.post("/v1/events/weather", content=ndjson([weather(i) for i in range(3)]),
                       headers=NDJSON).status_code == 200
    full = client.post("/v1/events/weather", content=ndjson([weather(3)]), headers=NDJSON)
    assert client.post("/v1/events/flights", content=ndjson([flight(1), flight(2)]), headers=NDJSON).status_code == 200
    assert "3 unflushed events of source 'weather'" in error_of(full, 503)["message"] and full.headers["retry-after"]
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["backlog_events"] == 5
    assert health["problems"] == ["backlog of 'weather' is at its limit (3 events): new events of it get 503"]
    samples = parse_metrics(client.get("/metrics").text)
    assert metric(samples, "lakebook_ingest_source_backlog_events", source="weather") == 3
    assert metric(samples, "lakebook_ingest_source_backlog_events", source="flights") == 2


def test_a_contract_broken_while_serving_keeps_its_last_good_version_and_the_others(client_for, workspace_dir):
    client = client_for()
    assert client.post("/v1/events/weather", content=ndjson([weather(0)]), headers=NDJSON).status_code == 200
    path = workspace_dir / "contracts" / "weather.yaml"
    text = path.read_text()
    path.write_text(text.replace("event_time: time_hour", "event_time: [time_hour"))  # not YAML any more
    assert client.post("/v1/events/flights", content=ndjson([flight(1)]), headers=NDJSON).status_code == 200
    answer = client.post("/v1/events/weather", content=ndjson([weather(1), weather(2, origin="BOS")]), headers=NDJSON)
    assert answer.status_code == 200 and answer.json()["accepted"] == 1  # the last good contract decides
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    [problem] = health.json()["problems"]
    assert problem.startswith("contract of 'weather' does not compile (its last good version is served): "
                              "contracts/weather.yaml: not valid YAML")
    assert health.json()["sources"] == ["flights", "planes", "predictions", "weather"]
    path.write_text(text.replace("Hourly", "Hourly (fixed)"))
    assert client.get("/health").json() | {"uptime_s": 0} == health.json() | {
        "status": "ok", "problems": [], "uptime_s": 0, "backlog_events": 3}


def test_a_contract_broken_at_start_makes_only_its_source_answer_503_with_the_reason(client_for, workspace_dir):
    path = workspace_dir / "contracts" / "weather.yaml"
    path.write_text(path.read_text().replace("type: float64", "type: double", 1))
    client = client_for()
    answer = client.post("/v1/events/weather", content=ndjson([weather(0)]), headers=NDJSON)
    error = error_of(answer, 503)
    assert error["message"] == "the contract of source 'weather' does not compile" and answer.headers["retry-after"]
    assert error["hint"].startswith("contracts/weather.yaml: fields.temp.type: Input should be")
    assert client.post("/v1/events/flights", content=ndjson([flight(1)]), headers=NDJSON).status_code == 200
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["sources"] == ["flights", "planes", "predictions"]
    assert "(not served)" in health["problems"][0]


def test_more_events_than_a_request_may_hold_is_413_before_they_are_decoded(client_for):
    client = client_for("ingest:\n  max_events_per_request: 10\n")
    over = [flight(i) for i in range(11)]
    for body, headers in [(ndjson(over), NDJSON), (orjson.dumps(over), JSON), (b"{}\n" * 11, NDJSON),
                          (b"[" + b",".join([b"{}"] * 20_000) + b"]", JSON),  # big: validated off the event loop
                          (b"{}\n" * 20_000, NDJSON)]:
        error = error_of(client.post("/v1/events/flights", content=body, headers=headers), 413)
        assert "over the limit of 10 events per request" in error["message"], error
        assert "ingest.max_events_per_request" in error["hint"]
    assert client.post("/v1/events/flights", content=ndjson(over[:10]), headers=NDJSON).status_code == 200
    assert client.post("/v1/events/flights", content=ndjson(over[:10]) + b"\n" * 50, headers=NDJSON).status_code == 200
    assert client.app.state.service.backlog == 20 and not any(client.app.state.service.metrics.rejected.values())


def test_an_event_is_answered_with_a_bounded_number_of_reasons(client_for):
    answer = client_for().post("/v1/events/flights", content=b"[{}]", headers=JSON)
    assert answer.status_code == 422
    reasons = answer.json()["rejected"][0]["reasons"]
    assert reasons[:1] == ["year: required field is missing"] and reasons[5:] == ["… and 5 more"]


def test_too_many_bodies_waiting_for_validation_is_429_with_retry_after(client_for):
    client = client_for("ingest:\n  max_validating_bodies: 1\n")
    service = client.app.state.service
    release = threading.Event()
    busy = [service.validators.submit(release.wait) for _ in range(service.validators._max_workers)]
    big = orjson.dumps([flight(i) for i in range(200)])  # over INLINE_BODY_BYTES: validated in a thread
    first = concurrent.futures.ThreadPoolExecutor(1).submit(
        client.post, "/v1/events/flights", content=big, headers=JSON)
    deadline = time.monotonic() + 30
    while service.validating == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    refused = client.post("/v1/events/flights", content=big, headers=JSON)
    assert "1 request bodies are being validated (limit 1)" in error_of(refused, 429)["message"]
    assert refused.headers["retry-after"] == "1"
    release.set()
    assert first.result(timeout=30).json()["accepted"] == 200 and all(f.result(30) for f in busy)
    assert service.validating == 0
    assert client.post("/v1/events/flights", content=big, headers=JSON).status_code == 200


# -- cross-site requests (issue 20, item 7) -----------------------------------------------------
@pytest.mark.parametrize("content_type", [
    None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
    "application/jsonx", "text/json",
])
def test_only_json_and_ndjson_bodies_are_read(client_for, content_type):
    client = client_for()
    headers = {"content-type": content_type} if content_type else {}
    answer = client.post("/v1/events/flights", content=ndjson([flight(1)]), headers=headers)
    error = error_of(answer, 415)
    assert "application/json" in error["hint"] and "application/x-ndjson" in error["hint"]
    service = client.app.state.service
    assert service.backlog == 0 and service.metrics.rejected == {}  # not read, so nothing logged or quarantined


def test_json_and_ndjson_types_are_read_whatever_their_case_and_parameters(client_for):
    client = client_for()
    for i, content_type in enumerate(["application/json; charset=utf-8", "Application/X-NDJSON",
                                      "application/jsonl", "application/ndjson ; charset=UTF-8"]):
        answer = client.post("/v1/events/flights", content=ndjson([flight(i)]), headers={"content-type": content_type})
        assert answer.status_code == 200 and answer.json()["accepted"] == 1, (content_type, answer.text)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://testserver:8080", "https://testserver",
                                    "http://localhost.evil.example", "file://", "http://[::1"])
def test_a_request_from_a_foreign_web_page_is_refused(client_for, origin):
    client = client_for()
    foreign = {"origin": origin}
    error = error_of(client.post("/v1/events/flights", content=ndjson([flight(1)]), headers={**NDJSON, **foreign}), 403)
    assert "ingest.allowed_origins" in error["hint"]
    error_of(client.put("/v1/blobs/flights/a.bin", content=b"x", headers=foreign), 403)
    error_of(client.get("/health", headers=foreign), 403)
    service = client.app.state.service
    assert service.backlog == 0 and not service.blobs.root.exists()


@pytest.mark.parametrize("origin", ["http://testserver", "http://localhost:80", "http://127.0.0.1", "http://[::1]:80"])
def test_the_servers_own_origin_and_loopback_names_on_its_port_are_accepted(client_for, origin):
    client = client_for()
    answer = client.post("/v1/events/flights", content=ndjson([flight(1)]), headers={**NDJSON, "origin": origin})
    assert answer.status_code == 200, answer.text


def test_an_allowed_origin_is_accepted_with_cors_headers(client_for):
    client = client_for("ingest:\n  allowed_origins: ['https://app.example.com']\n")
    origin = {"origin": "https://app.example.com"}
    preflight = client.options("/v1/events/flights", headers={**origin, "access-control-request-method": "POST",
                                                              "access-control-request-headers": "content-type"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin["origin"]
    answer = client.post("/v1/events/flights", content=ndjson([flight(1)]), headers={**NDJSON, **origin})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == origin["origin"]
    refused = client.post("/v1/events/flights", content=b"x", headers={"content-type": "text/plain", **origin})
    assert error_of(refused, 415) and refused.headers["access-control-allow-origin"] == origin["origin"]
    error_of(client.post("/v1/events/flights", content=ndjson([flight(2)]),
                         headers={**NDJSON, "origin": "https://other.example.com"}), 403)


def test_an_allowed_origin_must_be_an_origin(workspace_dir):
    from lakebook.errors import ConfigError

    config = workspace_dir / "lakebook.yaml"
    config.write_text("name: t\ningest:\n  allowed_origins: ['https://a.example:8443', 'http://localhost:3000']\n")
    assert Workspace.load(workspace_dir, environ={}).settings.ingest.allowed_origins == [
        "https://a.example:8443", "http://localhost:3000"]
    for bad in ("https://a.example/path", "a.example", "*", "ftp://a.example"):
        config.write_text(f"name: t\ningest:\n  allowed_origins: ['{bad}']\n")
        with pytest.raises(ConfigError, match=r"ingest\.allowed_origins\.0: String should match pattern"):
            Workspace.load(workspace_dir, environ={})


def test_without_tokens_only_loopback_host_names_are_answered(client_for):
    client = client_for()  # a page on a name that resolves to 127.0.0.1 reaches the server with that name as Host
    rebound = {**NDJSON, "host": "attacker.example:8787", "origin": "http://attacker.example:8787"}
    error = error_of(client.post("/v1/events/flights", content=ndjson([flight(1)]), headers=rebound), 403)
    assert "127.0.0.1 or localhost" in error["hint"]
    error_of(client.get("/v1/blobs/flights/a.bin", headers={"host": "attacker.example"}), 403)
    for host in ("localhost:8787", "127.0.0.1:8787", "[::1]:8787"):
        assert client.get("/health", headers={"host": host}).status_code == 200, host


def test_an_unknown_source_is_named_with_the_known_ones_only_to_a_valid_token(client_for):
    client = client_for(environ={"LAKEBOOK_INGEST__TOKENS": '{"weather": ["wx-token"]}'})
    body = ndjson([flight(1)])
    for auth in ({}, {"authorization": "Bearer wrong"}):
        error = error_of(client.post("/v1/events/flight", content=body, headers={**NDJSON, **auth}), 404)
        assert "flights" not in error["hint"] and "weather" not in error["hint"], error
        error = error_of(client.get("/v1/blobs/flight/a.bin", headers=auth), 404)
        assert "flights" not in error["hint"] and "weather" not in error["hint"], error
        assert "sources" not in client.get("/health", headers=auth).json()
    token = {"authorization": "Bearer wx-token"}  # a token of any source may see the names
    error = error_of(client.post("/v1/events/flight", content=body, headers={**NDJSON, **token}), 404)
    assert error["hint"] == "did you mean 'flights'?"
    assert client.get("/health", headers=token).json()["sources"] == ["flights", "planes", "predictions", "weather"]


def test_blobs_are_served_unsniffed_and_sandboxed(client_for):
    client = client_for()
    html = b"<script>fetch('/v1/events/flights', {method: 'POST'})</script>"
    assert client.put("/v1/blobs/flights/page.html", content=html, headers={"content-type": "text/html"}).status_code == 201
    got = client.get("/v1/blobs/flights/page.html")
    assert got.status_code == 200 and got.content == html
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-security-policy"] == "sandbox"  # a document runs in an opaque origin
