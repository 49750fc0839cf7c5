"""The ingest HTTP API against a real ``lakebook ingest serve`` subprocess: formats, partial
acceptance and quarantine, idempotent re-sends, auth, limits, backpressure, health,
metrics and blobs. Each test has its own workspace and its own server; the lake is read
back from the Parquet files the server (or a flush from this process) wrote."""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import httpx
import orjson
import pytest

from events import flight, weather
from ingest_support import (  # noqa: F401  (ingest_server is a fixture)
    JSON, NDJSON, event_ids, flush, ingest_server, lake_ids, load_workspace, metric, ndjson, parse_metrics, read_lake,
)

pytestmark = pytest.mark.integration


def configure(workspace_dir, ingest: str) -> None:
    """Write ingest settings into the workspace's lakebook.yaml (before the server starts)."""
    (workspace_dir / "lakebook.yaml").write_text(f"name: test\ningest:\n{ingest}")


def assert_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    error = body["error"]
    assert error["status"] == status and isinstance(error["message"], str) and error["message"], body
    assert set(error) == {"status", "message", "hint"}, body
    return body


# -- formats -------------------------------------------------------------------------------
def test_object_array_and_ndjson_bodies_are_accepted_and_reach_the_lake(workspace_dir, ingest_server):
    server = ingest_server(workspace_dir, flush_interval_s=60)
    sent = []
    with server.client() as http:
        one = http.post("/v1/events/flights", content=orjson.dumps(flight(0)), headers=JSON)
        sent += [flight(0)]
        many = http.post("/v1/events/flights", json=[flight(i) for i in range(1, 4)])
        sent += [flight(i) for i in range(1, 4)]
        # NDJSON with a blank line and CRLF line ends; the second accepted NDJSON media type
        lines = b"\r\n".join(orjson.dumps(flight(i)) for i in range(4, 8)) + b"\r\n\r\n"
        nd = http.post("/v1/events/flights", content=lines, headers=NDJSON)
        sent += [flight(i) for i in range(4, 8)]
        nd2 = http.post("/v1/events/flights", content=ndjson([flight(8), flight(9)]),
                        headers={"content-type": "application/ndjson"})
        sent += [flight(8), flight(9)]
        wx = http.post("/v1/events/weather", content=ndjson([weather(i) for i in range(3)]), headers=NDJSON)
    answers = [one, many, nd, nd2, wx]
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert [a.json()["accepted"] for a in answers] == [1, 3, 4, 2, 3]
    assert all(a.json()["rejected"] == [] for a in answers)
    request_ids = [a.json()["request_id"] for a in answers]
    assert len(set(request_ids)) == 5 and all(len(r) >= 16 for r in request_ids)

    report = flush(workspace_dir)
    assert report.events == 13
    assert lake_ids(workspace_dir) == {i: 1 for i in event_ids(workspace_dir, sent)}
    table = read_lake(workspace_dir, "raw", "flights")
    assert {"_event_id", "_ingested_at", "sched_dep_at", "carrier", "date"} <= set(table.column_names)
    assert sorted(table.column("flight").to_pylist()) == sorted(e["flight"] for e in sent)
    assert read_lake(workspace_dir, "raw", "weather").num_rows == 3
    assert read_lake(workspace_dir, "quarantine", "flights") is None


def test_mixed_batch_accepts_the_valid_events_and_quarantines_each_rejected_one(workspace_dir, ingest_server):
    server = ingest_server(workspace_dir, flush_interval_s=60)
    no_carrier = flight(6)
    del no_carrier["carrier"]
    truncated = b'{"year": 2013, "month": 1, "carrier": "UA"'
    lines = [
        orjson.dumps(flight(0)),                                   # 0 valid
        orjson.dumps(flight(1, month=13)),                          # 1 out of range
        orjson.dumps(flight(2)),                                   # 2 valid
        truncated,                                                 # 3 not JSON
        b"5",                                                      # 4 not an object
        orjson.dumps(flight(5, surprise=1)),                        # 5 unknown field
        orjson.dumps(no_carrier),                                  # 6 required field missing
        orjson.dumps(flight(7, origin="BOS", dep_time="soon")),     # 7 two problems
        orjson.dumps(flight(8)),                                   # 8 valid
        b"{not json",                                              # 9 not JSON either
        orjson.dumps(flight(10)),                                  # 10 valid
    ]
    with server.client() as http:
        answer = http.post("/v1/events/flights", content=b"\n".join(lines), headers=NDJSON)
        all_bad = http.post("/v1/events/flights", json=[flight(20, month=0), "x", None])
        unparseable = http.post("/v1/events/flights", content=b'{"year": 2013,', headers=JSON)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["accepted"] == 4
    reasons = {r["index"]: r["reasons"] for r in doc["rejected"]}
    assert [r["index"] for r in doc["rejected"]] == [1, 3, 4, 5, 6, 7, 9]  # sorted, each once
    assert any("month" in r and "12" in r for r in reasons[1]), reasons[1]
    assert any("JSON" in r for r in reasons[3]), reasons[3]
    assert any("JSON" in r for r in reasons[9]), reasons[9]
    assert any("object" in r for r in reasons[4]), reasons[4]
    assert any("surprise" in r for r in reasons[5]), reasons[5]
    assert any("carrier" in r and "missing" in r for r in reasons[6]), reasons[6]
    assert len(reasons[7]) == 2 and any("origin" in r for r in reasons[7]) and any("dep_time" in r for r in reasons[7])

    assert all_bad.status_code == 422, all_bad.text
    assert all_bad.json()["accepted"] == 0
    assert [r["index"] for r in all_bad.json()["rejected"]] == [0, 1, 2]
    assert_error(unparseable, 400)

    flush(workspace_dir)
    kept = [flight(0), flight(2), flight(8), flight(10)]
    assert lake_ids(workspace_dir) == {i: 1 for i in event_ids(workspace_dir, kept)}
    quarantine = read_lake(workspace_dir, "quarantine", "flights").to_pylist()
    mine = sorted((r for r in quarantine if r["request_id"] == doc["request_id"]), key=lambda r: r["index"])
    assert [r["index"] for r in mine] == [1, 3, 4, 5, 6, 7, 9]
    for row in mine:
        assert row["reasons"] == reasons[row["index"]]
        if row["index"] in (3, 9):
            assert row["raw"] == lines[row["index"]].decode()  # the undecodable line, exactly as sent
        else:
            assert orjson.loads(row["raw"]) == orjson.loads(lines[row["index"]])
        assert row["_received_at"] is not None
    by_request = {r["request_id"] for r in quarantine}
    assert all_bad.json()["request_id"] in by_request
    assert sum(r["request_id"] == all_bad.json()["request_id"] for r in quarantine) == 3
    whole_body = [r for r in quarantine if r["raw"] == '{"year": 2013,']
    assert len(whole_body) == 1 and whole_body[0]["index"] is None and whole_body[0]["reasons"]
    assert len(quarantine) == 7 + 3 + 1


def test_resent_events_are_stored_once_across_flushes_and_restarts(workspace_dir, ingest_server):
    first = [flight(i) for i in range(50)]
    more = [flight(i) for i in range(50, 60)]
    server = ingest_server(workspace_dir, flush_interval_s=60)
    with server.client() as http:
        for body in (first, first, first[:10] + first[:10]):  # re-sends, and repeats inside a batch
            answer = http.post("/v1/events/flights", content=ndjson(body), headers=NDJSON)
            assert answer.status_code == 200 and answer.json()["accepted"] == len(body)
    flush(workspace_dir)
    assert lake_ids(workspace_dir) == {i: 1 for i in event_ids(workspace_dir, first)}

    with server.client() as http:  # re-sent after they reached the lake, with new ones
        answer = http.post("/v1/events/flights", content=ndjson(first + more), headers=NDJSON)
        assert answer.status_code == 200 and answer.json()["accepted"] == 60
    server.stop()  # SIGINT: the server flushes on its way out
    expected = {i: 1 for i in event_ids(workspace_dir, first + more)}
    assert lake_ids(workspace_dir) == expected

    server = ingest_server(workspace_dir, flush_interval_s=60)  # the ids outlive the process
    with server.client() as http:
        answer = http.post("/v1/events/flights", content=ndjson(more + first), headers=NDJSON)
        assert answer.status_code == 200
    flush(workspace_dir)
    assert lake_ids(workspace_dir) == expected


# -- auth ----------------------------------------------------------------------------------
def test_tokens_from_the_environment_guard_each_source(workspace_dir, ingest_server):
    env = dict(os.environ, LAKEBOOK_INGEST__TOKENS=json.dumps({"flights": ["secret", "second"]}))
    server = ingest_server(workspace_dir, flush_interval_s=60, env=env)
    body = ndjson([flight(0)])

    def post(source="flights", auth=None, content=body):
        headers = dict(NDJSON, **({"authorization": auth} if auth is not None else {}))
        return http.post(f"/v1/events/{source}", content=content, headers=headers)

    with server.client() as http:
        assert http.get("/health").json()["dev_mode"] is False
        missing = post()
        assert_error(missing, 401)
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_error(post(auth="Bearer wrong"), 401)
        assert_error(post(auth="Bearer secre"), 401)
        assert_error(post(auth="Bearer"), 401)
        assert_error(post(auth="Basic c2VjcmV0"), 401)
        assert_error(post(auth="secret"), 401)
        assert_error(post("weather", auth="Bearer secret", content=ndjson([weather(0)])), 403)
        assert_error(post("weather", content=ndjson([weather(0)])), 401)
        assert_error(post("nope", auth="Bearer secret"), 404)
        ok = post(auth="Bearer secret")
        assert ok.status_code == 200 and ok.json()["accepted"] == 1
        ok2 = post(auth="Bearer second", content=ndjson([flight(1)]))
        assert ok2.status_code == 200 and ok2.json()["accepted"] == 1

        assert_error(http.put("/v1/blobs/flights/a.bin", content=b"x"), 401)
        assert_error(http.put("/v1/blobs/weather/a.bin", content=b"x", headers={"authorization": "Bearer secret"}), 403)
        put = http.put("/v1/blobs/flights/a.bin", content=b"x", headers={"authorization": "Bearer secret"})
        assert put.status_code == 201, put.text
        assert_error(http.get("/v1/blobs/flights/a.bin"), 401)
        got = http.get("/v1/blobs/flights/a.bin", headers={"authorization": "Bearer second"})
        assert got.status_code == 200 and got.content == b"x"
    flush(workspace_dir)
    # only the two authorised events were stored; refused requests left no trace in the lake
    assert lake_ids(workspace_dir) == {i: 1 for i in event_ids(workspace_dir, [flight(0), flight(1)])}
    assert read_lake(workspace_dir, "quarantine", "flights") is None
    assert read_lake(workspace_dir, "raw", "weather") is None


def test_tokens_file_with_a_wildcard_token(workspace_dir, tmp_path, ingest_server):
    tokens = tmp_path / "tokens.yaml"  # outside the workspace, as a secret should be
    tokens.write_text('"*": [everywhere]\nweather: wx-only\n')
    configure(workspace_dir, f"  tokens_file: {tokens}\n")
    server = ingest_server(workspace_dir, flush_interval_s=60)
    with server.client() as http:
        def post(source, token, event):
            return http.post(f"/v1/events/{source}", content=ndjson([event]),
                             headers=dict(NDJSON, authorization=f"Bearer {token}"))

        assert post("flights", "everywhere", flight(0)).status_code == 200
        assert post("weather", "everywhere", weather(0)).status_code == 200
        assert post("weather", "wx-only", weather(1)).status_code == 200
        assert_error(post("flights", "wx-only", flight(1)), 401)
        assert_error(http.post("/v1/events/flights", content=ndjson([flight(2)]), headers=NDJSON), 401)
    flush(workspace_dir)
    assert read_lake(workspace_dir, "raw", "flights").num_rows == 1
    assert read_lake(workspace_dir, "raw", "weather").num_rows == 2


# -- limits --------------------------------------------------------------------------------
def test_bodies_over_max_request_bytes_get_413_and_store_nothing(workspace_dir, ingest_server):
    limit = 2000
    configure(workspace_dir, f"  max_request_bytes: {limit}\n")
    server = ingest_server(workspace_dir, flush_interval_s=60)
    small = ndjson([flight(0), flight(1), flight(2)])
    assert len(small) < limit
    exactly = small + b"\n" * (limit - len(small))  # blank NDJSON lines are skipped
    over = [flight(i) for i in range(10, 20)]
    with server.client() as http:
        ok = http.post("/v1/events/flights", content=exactly, headers=NDJSON)
        assert ok.status_code == 200 and ok.json()["accepted"] == 3, ok.text
        body = assert_error(http.post("/v1/events/flights", content=exactly + b"\n", headers=NDJSON), 413)
        assert str(limit) in body["error"]["message"]
        assert_error(http.post("/v1/events/flights", content=ndjson(over), headers=NDJSON), 413)
        assert_error(http.post("/v1/events/flights", content=b"[" + b" " * 5_000_000 + b"]", headers=JSON), 413)

        def chunks():  # no content-length: the limit holds while streaming
            for event in over:
                yield orjson.dumps(event) + b"\n"

        assert_error(http.post("/v1/events/flights", content=chunks(), headers=NDJSON), 413)
        assert_error(http.put("/v1/blobs/flights/big.bin", content=b"b" * (limit + 1)), 413)
        assert http.put("/v1/blobs/flights/fits.bin", content=b"b" * limit).status_code == 201
        assert http.get("/health").status_code == 200
    flush(workspace_dir)
    assert lake_ids(workspace_dir) == {i: 1 for i in event_ids(workspace_dir, [flight(0), flight(1), flight(2)])}
    assert read_lake(workspace_dir, "quarantine", "flights") is None
    blobs = load_workspace(workspace_dir).lake.blobs_dir / "flights"
    assert sorted(p.name for p in blobs.iterdir() if p.is_file()) == ["fits.bin"]


def test_backlog_over_the_limit_gets_503_with_retry_after_until_a_flush(workspace_dir, ingest_server):
    configure(workspace_dir, "  max_backlog_events: 5\n")
    server = ingest_server(workspace_dir, flush_interval_s=3)
    accepted, refused, next_i = [], [], 0

    def batch(n):
        nonlocal next_i
        events = [flight(i) for i in range(next_i, next_i + n)]
        next_i += n
        return events

    with server.client() as http:
        refusal = None
        for _ in range(5):  # a flush between two requests empties the backlog: try again
            events = batch(10)
            answer = http.post("/v1/events/flights", content=ndjson(events), headers=NDJSON)
            assert answer.status_code == 200, answer.text
            accepted += events
            events = batch(1)
            answer = http.post("/v1/events/flights", content=ndjson(events), headers=NDJSON)
            if answer.status_code == 503:
                refused += events
                refusal = answer
                break
            accepted += events
        assert refusal is not None, "the server never pushed back"
        assert_error(refusal, 503)
        assert int(refusal.headers["retry-after"]) == 3  # the flush interval
        assert http.get("/health").json()["backlog_events"] >= 5

        deadline = time.monotonic() + 20  # the server's own flusher catches up, then it accepts again
        while True:
            events = batch(1)
            answer = http.post("/v1/events/flights", content=ndjson(events), headers=NDJSON)
            if answer.status_code == 200:
                accepted += events
                break
            assert answer.status_code == 503 and "retry-after" in answer.headers
            refused += events
            assert time.monotonic() < deadline, "backpressure never let go"
            time.sleep(0.2)
        samples = parse_metrics(http.get("/metrics").text)
        assert metric(samples, "lakebook_ingest_responses_total", code=503) == len(refused)
    flush(workspace_dir)
    ids = lake_ids(workspace_dir)
    assert ids == {i: 1 for i in event_ids(workspace_dir, accepted)}
    assert not set(event_ids(workspace_dir, refused)) & set(ids)


# -- health and metrics ----------------------------------------------------------------------
def test_health_and_metrics_report_what_happened(workspace_dir, ingest_server):
    server = ingest_server(workspace_dir, flush_interval_s=0.5)
    with server.client() as http:
        health = http.get("/health")
        assert health.status_code == 200
        doc = health.json()
        assert doc["status"] == "ok" and doc["sources"] == ["flights", "planes", "predictions", "weather"] and doc["dev_mode"] is True
        assert doc["backlog_events"] == 0 and doc["uptime_s"] >= 0

        before_text = http.get("/metrics")
        assert before_text.status_code == 200 and before_text.headers["content-type"].startswith("text/plain")
        before = parse_metrics(before_text.text)
        for name in ("lakebook_ingest_backlog_events", "lakebook_ingest_log_commits_total",
                     "lakebook_ingest_flushes_total", "lakebook_ingest_flush_errors_total",
                     "lakebook_ingest_blobs_stored_total", "lakebook_ingest_events_flushed_total"):
            assert (name, ()) in before, name

        mixed = ndjson([flight(0), flight(1), flight(2), flight(3, month=99), flight(4, origin="XXX")])
        assert http.post("/v1/events/flights", content=mixed, headers=NDJSON).status_code == 200
        assert http.post("/v1/events/weather", content=ndjson([weather(0), weather(1)]), headers=NDJSON).status_code == 200
        assert http.post("/v1/events/nope", content=ndjson([flight(5)]), headers=NDJSON).status_code == 404
        assert http.put("/v1/blobs/flights/m.bin", content=b"1").status_code == 201
        assert http.put("/v1/blobs/flights/m.bin", content=b"1").status_code == 200  # not stored again
        after = parse_metrics(http.get("/metrics").text)

        def delta(name, **labels):
            return metric(after, name, **labels) - metric(before, name, **labels)

        assert delta("lakebook_ingest_events_accepted_total", source="flights") == 3
        assert delta("lakebook_ingest_events_rejected_total", source="flights") == 2
        assert delta("lakebook_ingest_events_accepted_total", source="weather") == 2
        assert delta("lakebook_ingest_responses_total", code=404) == 1
        assert delta("lakebook_ingest_responses_total", code=201) == 1
        assert delta("lakebook_ingest_responses_total", code=200) >= 3
        assert delta("lakebook_ingest_log_commits_total") >= 1
        assert delta("lakebook_ingest_blobs_stored_total") == 1

        deadline = time.monotonic() + 20  # the server's flusher (every 0.5 s) drains the backlog
        while True:
            samples = parse_metrics(http.get("/metrics").text)
            if metric(samples, "lakebook_ingest_backlog_events") == 0 and \
                    metric(samples, "lakebook_ingest_flushes_total") > metric(before, "lakebook_ingest_flushes_total"):
                break
            assert time.monotonic() < deadline, "the server never flushed"
            time.sleep(0.1)
        assert metric(samples, "lakebook_ingest_flush_errors_total") == 0
        assert metric(samples, "lakebook_ingest_events_flushed_total") == 5  # 3 flights, 2 weather
        health = http.get("/health").json()
        assert health["backlog_events"] == 0 and health["last_flush_unix"] > time.time() - 60
    assert read_lake(workspace_dir, "raw", "flights").num_rows == 3  # written by the server itself
    assert read_lake(workspace_dir, "raw", "weather").num_rows == 2
    assert read_lake(workspace_dir, "quarantine", "flights").num_rows == 2


# -- blobs ---------------------------------------------------------------------------------
BAD_BLOB_NAMES = [
    "..%2Fx", "..%2F..%2Flakebook.yaml", "%2E%2E%2Fx", "%2E%2E", ".hidden", ".", "a%20b", "with%20space.txt",
    "a..b", "-dash", "_under", "x" * 201, "%C3%A9t%C3%A9.txt", "a%00b", "a%5Cb", "a%3Bb", "%2Fetc%2Fpasswd",
    "a%2Fb", "a:b", "%20lead",
]


def files_outside_logs(root):
    """Every path in the workspace except the ingest log and catalog databases (which change)."""
    workspace = load_workspace(root)
    logs = workspace.ingest_log_path.parent
    return sorted(p for p in root.rglob("*")
                  if logs not in p.parents and p != logs and not p.name.startswith("catalog.sqlite"))


def test_blobs_are_stored_append_only_and_read_back(workspace_dir, ingest_server):
    server = ingest_server(workspace_dir, flush_interval_s=60)
    data = os.urandom(3 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    with server.client() as http:
        put = http.put("/v1/blobs/flights/scan-2013_01.v1.bin", content=data,
                       headers={"content-type": "image/png"})
        assert put.status_code == 201, put.text
        meta = put.json()
        assert (meta["sha256"], meta["size"], meta["content_type"]) == (digest, len(data), "image/png")
        assert (meta["source"], meta["name"]) == ("flights", "scan-2013_01.v1.bin")

        got = http.get("/v1/blobs/flights/scan-2013_01.v1.bin")
        assert got.status_code == 200
        assert got.content == data
        assert got.headers["content-type"].startswith("image/png")
        assert got.headers["x-sha256"] == digest

        again = http.put("/v1/blobs/flights/scan-2013_01.v1.bin", content=data, headers={"content-type": "image/png"})
        assert again.status_code == 200 and again.json()["sha256"] == digest and again.json()["stored_at"] == meta["stored_at"]
        changed = data[:-1] + bytes([data[-1] ^ 1])  # not b"!": a random last byte is that one time in 256
        conflict = assert_error(http.put("/v1/blobs/flights/scan-2013_01.v1.bin", content=changed), 409)
        assert "scan-2013_01.v1.bin" in conflict["error"]["message"]
        assert http.get("/v1/blobs/flights/scan-2013_01.v1.bin").content == data  # unchanged

        other = http.put("/v1/blobs/weather/scan-2013_01.v1.bin", content=b"weather copy")  # per-source names
        assert other.status_code == 201 and other.json()["size"] == 12
        assert http.get("/v1/blobs/weather/scan-2013_01.v1.bin").content == b"weather copy"
        empty = http.put("/v1/blobs/flights/empty", content=b"")
        assert empty.status_code == 201 and empty.json()["size"] == 0
        assert http.get("/v1/blobs/flights/empty").headers["content-type"].startswith("application/octet-stream")

        assert_error(http.get("/v1/blobs/flights/never-stored.bin"), 404)
        assert_error(http.put("/v1/blobs/nope/x.bin", content=b"x"), 404)
        assert_error(http.get("/v1/blobs/nope/x.bin"), 404)
        assert_error(http.put("/v1/blobs/%2E%2E/x.bin", content=b"x"), 404)

        before = files_outside_logs(workspace_dir)
        for name in BAD_BLOB_NAMES:
            for answer in (http.put(f"/v1/blobs/flights/{name}", content=b"evil"), http.get(f"/v1/blobs/flights/{name}")):
                assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
                if answer.headers.get("content-type", "").startswith("application/json"):
                    assert "error" in answer.json()
            assert http.get("/health").status_code == 200
        after = files_outside_logs(workspace_dir)
    assert after == before, "a rejected blob name left a file behind"
    assert not any(p.read_bytes() == b"evil" for p in workspace_dir.parent.rglob("*") if p.is_file())
    assert (load_workspace(workspace_dir).lake.blobs_dir / "flights" / "scan-2013_01.v1.bin").read_bytes() == data


def test_large_rejections_are_summarised_in_the_answer_and_kept_whole_in_quarantine(workspace_dir, ingest_server):
    configure(workspace_dir, "  max_rejections_reported: 3\n")
    server = ingest_server(workspace_dir, flush_interval_s=60)
    bad = [flight(i, origin="BOS") for i in range(10)]
    with server.client() as http:
        answer = http.post("/v1/events/flights", content=ndjson([flight(100)] + bad), headers=NDJSON)
    doc = answer.json()
    assert answer.status_code == 200 and doc["accepted"] == 1
    assert doc["rejected_count"] == 10 and [r["index"] for r in doc["rejected"]] == [1, 2, 3]
    server.stop()
    quarantined = read_lake(workspace_dir, "quarantine", "flights")
    assert sorted(quarantined.column("index").to_pylist()) == list(range(1, 11))


# -- one source's trouble is its own -------------------------------------------------------------
def wait_for(condition, what: str, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_a_source_whose_flush_fails_is_reported_and_retried_while_the_others_reach_the_lake(workspace_dir,
                                                                                           ingest_server):
    blocker = load_workspace(workspace_dir).lake.table_dir("raw", "weather")
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the table's folder goes: writing it fails")
    server = ingest_server(workspace_dir, flush_interval_s=0.3)
    with server.client() as http:
        assert http.post("/v1/events/weather", content=ndjson([weather(i) for i in range(4)]),
                         headers=NDJSON).status_code == 200
        assert http.post("/v1/events/flights", content=ndjson([flight(i) for i in range(6)]),
                         headers=NDJSON).status_code == 200
        failures = wait_for(lambda: metric(parse_metrics(http.get("/metrics").text),
                                           "lakebook_ingest_source_flush_failures_total", source="weather"),
                            "a failed flush of weather to be counted")
        assert failures >= 1
        wait_for(lambda: read_lake(workspace_dir, "raw", "flights"), "flights to reach the lake")
        health = http.get("/health").json()
        assert health["status"] == "degraded" and health["backlog_events"] == 4
        assert any(p.startswith("flush of 'weather' failing (") and "NotADirectoryError" in p
                   for p in health["problems"]), health["problems"]
        samples = parse_metrics(http.get("/metrics").text)
        assert metric(samples, "lakebook_ingest_source_backlog_events", source="weather") == 4
        assert metric(samples, "lakebook_ingest_sources_failing") == 1
        blocker.unlink()  # the trouble goes away: the next try (after its backoff) flushes weather
        wait_for(lambda: http.get("/health").json()["status"] == "ok", "weather to flush after its backoff")
    assert read_lake(workspace_dir, "raw", "weather").num_rows == 4
    assert read_lake(workspace_dir, "raw", "flights").num_rows == 6
    assert "flush of weather failed (1 in a row" in server.log_text() and "NotADirectoryError" in server.log_text()


def test_a_contract_broken_while_serving_is_logged_once_and_its_last_good_version_serves(workspace_dir,
                                                                                        ingest_server):
    server = ingest_server(workspace_dir, flush_interval_s=0.3)
    path = workspace_dir / "contracts" / "weather.yaml"
    path.write_text(path.read_text().replace("min: -60, max: 140", "min: -60, max: [140"))
    big = ndjson([weather(i) for i in range(5000)])  # over 1 MiB: validated by a validator process
    assert len(big) > 1 << 20
    with server.client() as http:
        for _ in range(3):
            assert http.post("/v1/events/flights", content=ndjson([flight(0)]), headers=NDJSON).status_code == 200
            answer = http.post("/v1/events/weather", content=ndjson([weather(0), weather(1, temp=500.0)]),
                               headers=NDJSON)
            assert answer.status_code == 200 and answer.json()["accepted"] == 1  # the last good contract's max
            assert http.post("/v1/events/weather", content=big, headers=NDJSON).json()["accepted"] == 5000
            assert http.get("/health").json()["status"] == "degraded"
        wait_for(lambda: read_lake(workspace_dir, "raw", "weather"), "the flusher to flush weather")
    server.stop()
    assert read_lake(workspace_dir, "raw", "weather").num_rows == 5000  # each event once
    assert server.log_text().count("contracts/weather.yaml: not valid YAML") == 1, server.log_text()[-3000:]


def test_a_server_started_with_a_broken_contract_serves_the_other_sources(workspace_dir, ingest_server):
    path = workspace_dir / "contracts" / "weather.yaml"
    text = path.read_text()
    path.write_text(text.replace("event_time: time_hour", "event_time: hour"))  # not a timestamp field
    server = ingest_server(workspace_dir, flush_interval_s=0.3)
    with server.client() as http:
        refused = http.post("/v1/events/weather", content=ndjson([weather(0)]), headers=NDJSON)
        error = assert_error(refused, 503)["error"]
        assert "must have type timestamp" in error["hint"] and refused.headers["retry-after"] == "30"
        assert http.post("/v1/events/flights", content=ndjson([flight(0)]), headers=NDJSON).status_code == 200
        assert http.get("/health").json()["sources"] == ["flights", "planes", "predictions"]
        path.write_text(text)  # fixed: served from the next request on, no restart
        assert http.post("/v1/events/weather", content=ndjson([weather(0)]), headers=NDJSON).status_code == 200
        wait_for(lambda: read_lake(workspace_dir, "raw", "weather"), "weather to reach the lake")
        assert http.get("/health").json()["status"] == "ok"


def test_sixteen_mib_of_empty_objects_under_a_memory_limit_is_413_and_the_server_stays_healthy(workspace_dir,
                                                                                              ingest_server):
    import resource

    import psutil

    server = ingest_server(workspace_dir, flush_interval_s=60)
    processes = [psutil.Process(server.process.pid), *psutil.Process(server.process.pid).children(recursive=True)]
    assert len(processes) >= 3  # the server, its flusher and its validators
    headroom = 512 << 20  # address space each may add: ample for a request, not for millions of objects
    for process in processes:
        limit = process.memory_info().vms + headroom
        resource.prlimit(process.pid, resource.RLIMIT_AS, (limit, limit))
    peaks = {p.pid: peak_rss(p.pid) for p in processes}
    array = b"[" + b"{}," * ((16 * 1024 * 1024 - 2) // 3 - 1) + b"{}]"  # 5.6 million events
    lines = b"{}\n" * (16 * 1024 * 1024 // 3)
    assert len(array) <= 16 * 1024 * 1024 and len(lines) <= 16 * 1024 * 1024
    with server.client(timeout=300) as http:
        for body, headers in ((array, JSON), (lines, NDJSON)):
            answer = http.post("/v1/events/flights", content=body, headers=headers)
            error = assert_error(answer, 413)["error"]
            assert "over the limit of 100,000 events per request" in error["message"]
        assert http.get("/health").json()["status"] == "ok"
        ok = http.post("/v1/events/flights", content=ndjson([flight(i) for i in range(3000)]), headers=NDJSON)
        assert ok.status_code == 200 and ok.json()["accepted"] == 3000
    assert all(p.is_running() for p in processes)
    grown = {p.pid: peak_rss(p.pid) - peaks[p.pid] for p in processes}
    assert max(grown.values()) < 200 << 20, grown  # each body cost at most a few times its size


def peak_rss(pid: int) -> int:
    """The peak resident memory of a process (VmHWM), in bytes."""
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
    return int(status["VmHWM"].split()[0]) * 1024


# -- cross-site requests and concurrent blobs -------------------------------------------------
def test_web_pages_of_other_origins_and_non_json_bodies_are_refused(workspace_dir, ingest_server):
    server = ingest_server(workspace_dir, flush_interval_s=60)
    body = ndjson([flight(0)])
    with server.client() as http:
        form = http.post("/v1/events/flights", content=b"x=1", headers={"content-type": "application/x-www-form-urlencoded"})
        assert_error(form, 415)
        assert_error(http.post("/v1/events/flights", content=body, headers={"content-type": "text/plain"}), 415)
        foreign = http.post("/v1/events/flights", content=body, headers={**NDJSON, "origin": "http://evil.example"})
        assert "ingest.allowed_origins" in assert_error(foreign, 403)["error"]["hint"]
        rebound = http.post("/v1/events/flights", content=body,
                            headers={**NDJSON, "host": f"rebound.example:{server.port}",
                                     "origin": f"http://rebound.example:{server.port}"})
        assert_error(rebound, 403)
        own = http.post("/v1/events/flights", content=body, headers={**NDJSON, "origin": f"http://localhost:{server.port}"})
        assert own.status_code == 200 and own.json()["accepted"] == 1, own.text
    flush(workspace_dir)
    assert lake_ids(workspace_dir) == {i: 1 for i in event_ids(workspace_dir, [flight(0)])}
    assert read_lake(workspace_dir, "quarantine", "flights") is None  # refused bodies are not data


def test_concurrent_puts_of_one_blob_name_store_exactly_one_content(workspace_dir, ingest_server):
    server = ingest_server(workspace_dir, flush_interval_s=60)
    writers = 12

    def race(http, name: str, bodies: list[bytes]) -> list:
        barrier = Barrier(len(bodies))

        def put(body: bytes):
            barrier.wait()
            return http.put(f"/v1/blobs/flights/{name}", content=body)

        with ThreadPoolExecutor(len(bodies)) as pool:
            return list(pool.map(put, bodies))

    with server.client(limits=httpx.Limits(max_connections=writers)) as http:
        for round_ in range(4):
            bodies = [os.urandom(512 * 1024) for _ in range(writers)]
            answers = race(http, f"different-{round_}.bin", bodies)
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [201] + [409] * (writers - 1), statuses
            winner = next(b for b, a in zip(bodies, answers) if a.status_code == 201)
            got = http.get(f"/v1/blobs/flights/different-{round_}.bin")
            assert got.content == winner and got.headers["x-sha256"] == hashlib.sha256(winner).hexdigest()
            assert got.headers["x-content-type-options"] == "nosniff"
        same = os.urandom(512 * 1024)
        answers = race(http, "same.bin", [same] * writers)
        assert sorted(a.status_code for a in answers) == [200] * (writers - 1) + [201]
        assert len({a.json()["stored_at"] for a in answers}) == 1
        assert http.get("/v1/blobs/flights/same.bin").content == same
    blobs = load_workspace(workspace_dir).lake.blobs_dir / "flights"
    assert not [p for p in blobs.rglob("*.tmp")], "a writer left a temporary file behind"
