"""The MQTT inlet against a real Mosquitto: every payload form reaches the lake with the ids
its contract gives, bad payloads are quarantined with their reasons, credentials come from
the environment and the tokens file and never reach the log, kill -9 during a QoS 1 stream
loses and duplicates nothing, and `lakebook up` runs the inlet when ingest.mqtt is set."""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field

import httpx
import orjson
import pytest

from events import flight, metric, ndjson
from ingest_support import event_ids, flush, lake_ids, load_workspace, make_workspace, read_lake
from lakebook.services import free_port
from mqtt_support import (  # noqa: F401 - broker and brokers are fixtures
    Publisher, broker, brokers, first_health, inlet_metrics, make_certificates, mqtt_config, start_inlet,
    wait_for_acks,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_every_payload_form_reaches_the_lake_and_bad_payloads_are_quarantined(tmp_path, brokers):
    user, password = "inlet-user", "mqtt-pw-5c1e9a"
    mosquitto = brokers(users={user: password, "device": "device-pw"})
    tokens = tmp_path / "tokens.yaml"  # the password from the tokens file, the user from the environment
    tokens.write_text(f"mqtt: {{password: {password}}}\n")
    root = make_workspace(tmp_path / "ws", mqtt_config(mosquitto, f"  max_events_per_request: 5\n"
                                                                  f"  tokens_file: {tokens}\n"))
    env = dict(os.environ, LAKEBOOK_INGEST__MQTT__USERNAME=user)
    inlet = start_inlet(load_workspace(root), tmp_path / "inlet.log", env=env)
    publisher = Publisher(mosquitto.port, username="device", password="device-pw")
    try:
        valid = {
            "one event": orjson.dumps(flight(0)),
            "an array": orjson.dumps([flight(1), flight(2), flight(3)]),
            "NDJSON": ndjson([flight(4), flight(5), flight(6)]),
            "a pretty-printed event": json.dumps(flight(7), indent=2).encode(),
        }
        bad = {
            "NDJSON with a line that is not JSON": ndjson([flight(8)]) + b"{not json\n" + ndjson([flight(9)]),
            "an event the contract refuses": orjson.dumps([flight(10), flight(11, origin="BOS")]),
            "not JSON at all": b"\xff\xfe temperature=4",
            "too many events": orjson.dumps([flight(i) for i in range(20, 26)]),
        }
        for payload in [*valid.values(), *bad.values()]:
            publisher.publish("flights", payload)
        publisher.publish("no_such_source", orjson.dumps(flight(30)))
        samples = wait_for_acks(inlet, len(valid) + len(bad) + 1)
        assert metric(samples, "lakebook_mqtt_messages_unroutable_total") == 1
        assert metric(samples, "lakebook_ingest_events_accepted_total", source="flights") == 8 + 2 + 1
        assert metric(samples, "lakebook_ingest_events_rejected_total", source="flights") == 1 + 1 + 1 + 1
        assert metric(samples, "lakebook_mqtt_connected") == 1
    finally:
        publisher.close()
        assert inlet.stop() == 0  # a clean stop: its last flush writes the lake

    expected = event_ids(root, [flight(i) for i in range(11)])
    assert lake_ids(root) == {i: 1 for i in expected}
    quarantine = read_lake(root, "quarantine", "flights").to_pylist()
    assert len(quarantine) == 4

    def reasons(index, raw: str) -> list[str]:
        [row] = [r for r in quarantine if r["index"] == index and r["raw"].startswith(raw)]
        return row["reasons"]

    assert reasons(1, "{not json")[0].startswith("invalid JSON")
    assert reasons(1, orjson.dumps(flight(11, origin="BOS")).decode()) == ["origin: 'BOS' is not one of EWR, JFK, LGA"]
    assert reasons(None, "\\xff\\xfe temperature=4")[0].startswith("body is not valid JSON")
    assert reasons(None, orjson.dumps([flight(20)])[:-1].decode()) == [
        "the body holds 6 events, over the limit of 5 events per request"]
    log_text = inlet.log_text()
    assert password not in log_text and "device-pw" not in log_text
    assert "no contract for source 'no_such_source'" in log_text


def test_over_tls_the_inlet_checks_the_broker_against_the_configured_ca(tmp_path, brokers):
    certificates = make_certificates(tmp_path / "certs")
    mosquitto = brokers(tls=certificates)
    url = f"mqtts://127.0.0.1:{mosquitto.port}"
    trusting = make_workspace(tmp_path / "ws", f"name: mqtt\ningest:\n  mqtt:\n    url: {url}\n"
                                               f"    tls: {{ca_certs: {certificates.ca}}}\n")
    # the system's CAs do not know the test CA: that inlet never gets connected
    untrusting = make_workspace(tmp_path / "other", f"name: other\ningest:\n  mqtt:\n    url: {url}\n")
    inlet = start_inlet(load_workspace(trusting), tmp_path / "inlet.log")
    refused = start_inlet(load_workspace(untrusting), tmp_path / "refused.log", wait=False)
    try:
        publisher = Publisher(mosquitto.port, ca=certificates.ca)
        publisher.publish("flights", orjson.dumps(flight(1)))
        publisher.close()
        wait_for_acks(inlet, 1)
        first_health(refused)
        time.sleep(2)  # time to try (at most 1 s between tries at first)
        health = httpx.get(f"{refused.base_url}/health", timeout=5)
        problem = health.json()["problems"][0]
        assert health.status_code == 503 and f"cannot connect to {url}" in problem, health.text
        assert "certificate verify failed" in problem
        assert inlet.stop() == 0
    finally:
        inlet.kill()
        refused.kill()
    assert lake_ids(trusting) == {i: 1 for i in event_ids(trusting, [flight(1)])}


def test_the_inlet_waits_for_its_broker_and_says_why_until_it_is_there(tmp_path, brokers):
    port = free_port()
    root = make_workspace(tmp_path / "ws", f"name: mqtt\ningest:\n  mqtt:\n    url: mqtt://127.0.0.1:{port}\n")
    inlet = start_inlet(load_workspace(root), tmp_path / "inlet.log", wait=False)
    try:
        health = first_health(inlet)  # up, and honest about why it is not ready
        assert health.status_code == 503 and health.json()["status"] == "degraded", health.text
        assert f"cannot connect to mqtt://127.0.0.1:{port} ([Errno 111] Connection refused)" in health.json()["problems"][0]
        brokers(port=port)
        inlet.wait_ready(timeout_s=60)  # reconnects by itself (at most 30 s between tries)
        assert httpx.get(f"{inlet.base_url}/health", timeout=5).json()["status"] == "ok"
    finally:
        inlet.kill()


# -- kill -9 during a QoS 1 stream -------------------------------------------------------------------
KILLS = 10
SEED = 20130111


@dataclass
class Stream:
    """What the publisher thread published (each message acknowledged by the broker)."""

    port: int
    stop: threading.Event = field(default_factory=threading.Event)
    published: list[range] = field(default_factory=list)  # flight indices of each message
    problems: list[str] = field(default_factory=list)


def publish_stream(stream: Stream, seed: int) -> None:
    """QoS 1 messages of 1-20 flights in every payload form, each waited for (wait_for_publish)."""
    rng = random.Random(seed)
    forms = [ndjson, lambda events: orjson.dumps(events), lambda events: orjson.dumps(events[0])]
    publisher = Publisher(stream.port)
    next_index = 0
    try:
        while not stream.stop.is_set():
            form = rng.choice(forms)
            size = 1 if form is forms[2] else rng.randint(1, 20)
            indices = range(next_index, next_index + size)
            publisher.publish("flights", form([flight(i) for i in indices]), timeout_s=30)
            stream.published.append(indices)
            next_index += size
            time.sleep(rng.uniform(0, 0.006))
    except Exception as exc:  # noqa: BLE001 - reported by the test
        stream.problems.append(repr(exc))
    finally:
        publisher.close()


@pytest.mark.timeout(400)
def test_kill_9_during_a_qos1_stream_loses_and_duplicates_nothing(tmp_path, broker):
    root = make_workspace(tmp_path / "ws", mqtt_config(broker))
    workspace = load_workspace(root)
    rng = random.Random(SEED)
    stream = Stream(broker.port)
    publisher = threading.Thread(target=publish_stream, args=(stream, SEED), daemon=True)
    log_path = tmp_path / "inlet.log"
    redelivered, during_rounds = [], []
    inlet = start_inlet(workspace, log_path)
    publisher.start()
    try:
        for _ in range(KILLS):
            before = len(stream.published)
            time.sleep(rng.uniform(0.5, 2.0))
            redelivered.append(metric(inlet_metrics(inlet), "lakebook_mqtt_messages_redelivered_total"))
            inlet.kill()
            assert inlet.process.returncode == -9
            during_rounds.append(len(stream.published) - before)
            inlet = start_inlet(workspace, log_path)
        time.sleep(1)
        stream.stop.set()
        publisher.join(60)
        assert not publisher.is_alive() and not stream.problems, stream.problems
        wait_for_acks(inlet, 1, timeout_s=5)
        published = [i for indices in stream.published for i in indices]
        expected = event_ids(root, [flight(i) for i in published])
        deadline, duplicates = time.monotonic() + 120, 0
        while set(expected) - lake_ids(root).keys():  # the broker delivers what is left
            assert time.monotonic() < deadline, "published messages did not all reach the lake"
            duplicates += flush(root).duplicates
            time.sleep(0.5)
        redelivered.append(metric(inlet_metrics(inlet), "lakebook_mqtt_messages_redelivered_total"))
        assert inlet.stop() == 0
    finally:
        stream.stop.set()
        inlet.kill()
    flush(root)

    in_lake = lake_ids(root)
    assert not {i: n for i, n in in_lake.items() if n > 1}, "events in the lake more than once"
    assert in_lake.keys() == set(expected), "events in the lake that were never published"
    assert len(set(expected)) == len(expected)
    print(f"\nmqtt kill test: {KILLS} kills, {len(stream.published)} messages / {len(expected)} events published "
          f"({min(during_rounds)}-{max(during_rounds)} messages per round), {sum(redelivered):.0f} redelivered {redelivered}, "
          f"{duplicates} events logged twice and stored once")
    # the test did what it claims: messages flowed in every round, and kills left some unacknowledged
    assert min(during_rounds) > 0 and sum(redelivered) > 0


# -- lakebook up --------------------------------------------------------------------------------------
def test_up_starts_the_inlet_when_ingest_mqtt_is_set(tmp_path, broker, isolated_env):
    from test_up import lakebook, up_running

    root = make_workspace(tmp_path / "ws", mqtt_config(broker))
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
    with up_running(root, env) as (up, output, children):
        table = output.text()
        assert re.search(r"^mqtt\s+http://127\.0\.0\.1:\d+\s+ready\s+\S+mqtt\.log$", table, re.M), table
        rows = {r["service"]: r for r in json.loads(lakebook(root, "status", "--json", env=env).stdout)}
        assert set(rows) == {"ingest", "mqtt", "monitor", "lab"} and rows["mqtt"]["status"] == "ready", rows
        publisher = Publisher(broker.port)
        publisher.publish("flights", orjson.dumps(flight(1)))
        publisher.close()
        deadline = time.monotonic() + 30
        while not lake_ids(root):
            assert time.monotonic() < deadline, "the event published over MQTT did not reach the lake"
            flush(root)
            time.sleep(0.2)
        assert lake_ids(root) == {i: 1 for i in event_ids(root, [flight(1)])}
