"""The MQTT inlet without a broker: payloads of every form to ingest-log records
(records.payload_to_records), messages (real paho MQTTMessage objects) through MqttInlet into
a real ingest log and on to the lake, holding messages under backpressure, its settings and
credentials, and its service entry. The inlet against a real Mosquitto is in
tests/integration/test_mqtt_broker.py."""

from __future__ import annotations

import json
import sys
import time

import orjson
import pytest

from events import flight, lake_table, ndjson
from lakebook.config import child_environment, load_settings
from lakebook.errors import Backpressure, BadRequest, ConfigError, PayloadTooLarge
from lakebook.ingest.log import EVENTS, NDJSON, REJECTED
from lakebook.ingest.records import payload_to_records
from lakebook.redact import mask
from lakebook.workspace import Workspace

MQTT_CONFIG = "name: test\ningest:\n  mqtt: {url: 'mqtt://127.0.0.1:1', client_id: unit}\n"


def outcome_of(workspace, payload: bytes, max_events: int | None = None):
    return payload_to_records(workspace.contract("flights"), "flights", payload, "req", 1_700_000_000_000_000,
                              max_events)


@pytest.mark.parametrize("form, payload, kinds, accepted", [
    ("one event", orjson.dumps(flight(1)), [NDJSON], 1),
    ("NDJSON", ndjson([flight(1), flight(2), flight(3)]), [NDJSON], 3),
    ("an array", orjson.dumps([flight(1), flight(2)]), [EVENTS], 2),
    ("a pretty-printed event", json.dumps(flight(1), indent=2).encode(), [EVENTS], 1),
    ("NDJSON with a bad line", ndjson([flight(1)]) + b"{oops\n" + ndjson([flight(2)]), [EVENTS, REJECTED], 2),
    ("an array with a refused event", orjson.dumps([flight(1), flight(2, month=13)]), [EVENTS, REJECTED], 1),
])
def test_every_payload_form_becomes_the_records_the_http_path_makes(workspace, form, payload, kinds, accepted):
    outcome = outcome_of(workspace, payload, max_events=3)  # fewer than the lines of the pretty-printed event
    assert [r.kind for r in outcome.records] == kinds and outcome.accepted == accepted, form


@pytest.mark.parametrize("payload, error, message", [
    (b"temperature=4", BadRequest, "body is not valid JSON"),
    (b"  ", BadRequest, "empty body"),
    (ndjson([flight(i) for i in range(4)]), PayloadTooLarge, "the body holds 4 events, over the limit of 3"),
    (orjson.dumps([flight(i) for i in range(4)]), PayloadTooLarge, "the body holds 4 events, over the limit of 3"),
])
def test_a_payload_that_is_not_events_or_holds_too_many_is_an_error(workspace, payload, error, message):
    with pytest.raises(error, match=message):
        outcome_of(workspace, payload, max_events=3)


# -- messages through the inlet ---------------------------------------------------------------------
def message(source: str, payload: bytes, mid: int = 1, prefix: str = "lakebook/events"):
    from paho.mqtt.client import MQTTMessage

    received = MQTTMessage(mid=mid, topic=f"{prefix}/{source}".encode())
    received.payload, received.qos = payload, 1
    return received


@pytest.fixture
def inlet_for(workspace_dir):
    """An MqttInlet on a real IngestService (flusher and validators as threads), not connected."""
    from lakebook.ingest.mqtt import MqttInlet
    from lakebook.ingest.service import IngestService

    made = []

    def make(extra: str = ""):
        (workspace_dir / "lakebook.yaml").write_text(MQTT_CONFIG + extra)
        ws = Workspace.load(workspace_dir, environ={})
        service = IngestService(ws, fork=False, flush_interval_s=60)
        made.append(service)
        return MqttInlet(service, ws.settings.ingest.mqtt, "unit")

    yield make
    for service in made:
        service.stop()


def test_messages_are_logged_counted_and_flushed_with_their_contract_ids(inlet_for, workspace_dir):
    inlet = inlet_for()
    messages = [message("flights", ndjson([flight(1), flight(2)])), message("flights", orjson.dumps(flight(2))),
                message("flights", orjson.dumps([flight(3), flight(4, origin="BOS")])),
                message("no_such_source", orjson.dumps(flight(5))),
                message("flights", orjson.dumps(flight(6)), prefix="old/prefix")]  # a subscription the session kept
    outcomes = inlet.log_messages(messages)
    inlet._count(outcomes)
    assert [o.accepted if o else None for _, o in outcomes] == [2, 1, 1, None, None]
    assert inlet.service.writer.by_source == {"flights": 4}  # durable in the log; the repeat of flight 2 too
    assert inlet.service.metrics.accepted == {"flights": 4} and inlet.service.metrics.rejected == {"flights": 1}
    assert inlet.counters.unroutable == 2

    report = inlet.service.flush_now()
    assert report.events == 3 and report.duplicates == 1
    ws = inlet.service.workspace
    ids = ws.contract("flights").validate([flight(1), flight(2), flight(3)]).accepted.column("_event_id")
    assert sorted(lake_table(ws, "raw", "flights").column("_event_id").to_pylist()) == sorted(ids.to_pylist())
    [refused] = lake_table(ws, "quarantine", "flights").to_pylist()
    assert refused["index"] == 1 and "'BOS' is not one of EWR, JFK, LGA" in refused["reasons"][0]


def test_messages_of_one_event_each_are_checked_and_logged_together_when_all_pass(inlet_for):
    inlet = inlet_for()
    singles = [message("flights", orjson.dumps(flight(i)) + b"\n", mid=i) for i in range(1, 6)]
    outcomes = inlet.log_messages([*singles, message("weather", orjson.dumps(flight(9)))])
    assert [len(o.records) for _, o in outcomes] == [1, 0, 0, 0, 0, 1] and [o.accepted for _, o in outcomes] == [
        1, 1, 1, 1, 1, 0]
    [together] = outcomes[0][1].records
    assert (together.kind, together.n) == (NDJSON, 5)
    one_refused = [message("flights", orjson.dumps(flight(i, month=13 if i == 7 else 1))) for i in (6, 7, 8)]
    outcomes = inlet.log_messages(one_refused)  # then each is read by itself, and the refused one is quarantined
    assert [(o.accepted, [r.kind for r in o.records]) for _, o in outcomes] == [(1, [NDJSON]), (0, [REJECTED]),
                                                                                (1, [NDJSON])]
    inlet.service.flush_now()
    ws = inlet.service.workspace
    ids = ws.contract("flights").validate([flight(i) for i in (1, 2, 3, 4, 5, 6, 8)]).accepted.column("_event_id")
    assert sorted(lake_table(ws, "raw", "flights").column("_event_id").to_pylist()) == sorted(ids.to_pylist())


def test_a_payload_over_the_byte_limit_is_quarantined_whole_with_the_reason(inlet_for):
    inlet = inlet_for("  max_request_bytes: 100\n")
    payload = orjson.dumps([flight(1), flight(2)])
    [(_, outcome)] = inlet.log_messages([message("flights", payload)])
    assert outcome.accepted == 0 and [r.kind for r in outcome.records] == [REJECTED]
    inlet.service.flush_now()
    [row] = lake_table(inlet.service.workspace, "quarantine", "flights").to_pylist()
    assert row["raw"] == payload.decode() and row["index"] is None
    assert row["reasons"] == [f"message payload of {len(payload)} bytes is over the limit of 100"]


def test_messages_to_a_blob_source_are_quarantined_whole_with_the_reason(inlet_for):
    inlet = inlet_for()
    row = b'{"tailnum": "N10156", "seats": 55}'
    outcomes = inlet.log_messages([message("planes", row, mid=1), message("planes", row, mid=2)])
    assert [(o.accepted, [r.kind for r in o.records]) for _, o in outcomes] == [(0, [REJECTED])] * 2
    inlet.service.flush_now()
    rows = lake_table(inlet.service.workspace, "quarantine", "planes").to_pylist()
    assert [r["reasons"] for r in rows] == [["source 'planes' takes files (kind: blob), not events"]] * 2
    assert lake_table(inlet.service.workspace, "raw", "planes") is None


def test_messages_of_a_source_at_its_backlog_limit_are_held_not_stored(inlet_for):
    inlet = inlet_for("  max_backlog_events: 2\n")
    inlet.log_messages([message("flights", ndjson([flight(1), flight(2)]))])
    with pytest.raises(Backpressure, match="holds 2 unflushed events of source 'flights'"):
        inlet.log_messages([message("weather", b"{}"), message("flights", orjson.dumps(flight(3)))])
    assert inlet.service.log.sources_with_work() == ["flights"]  # the weather message waits with it
    inlet.service.flush_now()
    deadline = time.monotonic() + 10
    while inlet.service.writer.by_source.get("flights"):  # recounted by the writer thread after the flush
        assert time.monotonic() < deadline
        time.sleep(0.01)
    [(_, outcome)] = inlet.log_messages([message("flights", orjson.dumps(flight(3)))])
    assert outcome.accepted == 1


# -- settings ------------------------------------------------------------------------------------------
def write(tmp_path, text: str):
    path = tmp_path / "lakebook.yaml"
    path.write_text(text)
    return path


def test_the_inlet_is_off_unless_configured_and_has_loopback_defaults(tmp_path):
    assert load_settings(write(tmp_path, "name: x\n"), environ={}).ingest.mqtt is None
    mqtt = load_settings(write(tmp_path, "ingest:\n  mqtt: {}\n"), environ={}).ingest.mqtt
    assert (mqtt.url, mqtt.topic_prefix, mqtt.client_id, mqtt.tls) == ("mqtt://127.0.0.1:1883", "lakebook/events",
                                                                       None, None)
    env = {"LAKEBOOK_INGEST__MQTT__URL": "mqtts://broker.example.org:8883"}
    assert load_settings(write(tmp_path, "name: x\n"), environ=env).ingest.mqtt.url == env["LAKEBOOK_INGEST__MQTT__URL"]


@pytest.mark.parametrize("text, expected", [
    ("ingest:\n  mqtt: {password: pw-in-yaml-1}\n", "ingest.mqtt.password must not be written in lakebook.yaml"),
    ("ingest:\n  mqtt: {username: someone}\n", "ingest.mqtt.username must not be written in lakebook.yaml"),
    ("ingest:\n  mqtt: {url: 'mqtt://u:pw-in-url-2@host:1883'}\n", "ingest.mqtt.url: String should match pattern"),
    ("ingest:\n  mqtt: {tls: {insecure: true}}\n", "tls settings need an mqtts:// url"),
    ("ingest:\n  mqtt: {topic_prefix: 'a/#'}\n", "ingest.mqtt.topic_prefix: String should match pattern"),
    ("ingest:\n  mqtt: {topic_prefx: x}\n", "ingest.mqtt.topic_prefx: unknown key; did you mean 'topic_prefix'? "
                                            "allowed keys: client_id, health_port, keepalive_s, password, tls"),
])
def test_bad_inlet_settings_are_refused_without_quoting_credentials(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    assert expected in str(info.value), str(info.value)
    assert "pw-in-yaml-1" not in str(info.value) and "pw-in-url-2" not in str(info.value)


def test_credentials_come_from_the_environment_then_the_tokens_file_and_are_masked(tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("flights: tok-a\nmqtt: {username: file-user, password: file-pw-7d1}\n")
    text = f"ingest:\n  tokens_file: {tokens}\n  mqtt: {{}}\n"
    from_file = load_settings(write(tmp_path, text), environ={}).ingest
    assert (from_file.mqtt.username.get_secret_value(), from_file.mqtt.password.get_secret_value()) == (
        "file-user", "file-pw-7d1")
    assert list(from_file.tokens) == ["flights"]  # the mqtt entry is not a source's token
    env = {"LAKEBOOK_INGEST__MQTT__PASSWORD": "env-pw-93b"}
    mixed = load_settings(write(tmp_path, text), environ=env).ingest.mqtt
    assert (mixed.username.get_secret_value(), mixed.password.get_secret_value()) == ("file-user", "env-pw-93b")
    assert mask("connect with env-pw-93b and file-pw-7d1") == "connect with *** and ***"
    assert "env-pw-93b" not in repr(mixed)


def test_a_child_without_secrets_gets_no_mqtt_credentials(tmp_path):
    environ = {"LAKEBOOK_INGEST__MQTT__PASSWORD": "pw-1", "LAKEBOOK_INGEST__MQTT__USERNAME": "u",
               "LAKEBOOK_INGEST__MQTT": "{password: pw-2}", "LAKEBOOK_INGEST__MQTT__URL": "mqtt://127.0.0.1:1883"}
    kernel = child_environment(tmp_path, secrets=False, environ=environ)
    assert set(kernel) == {"LAKEBOOK_INGEST__MQTT__URL", "LAKEBOOK_WORKSPACE"}


# -- the service ---------------------------------------------------------------------------------------
def test_the_inlet_is_a_service_that_lakebook_up_runs_when_configured(workspace_dir):
    from lakebook.services import Launch, enabled_services, service

    plain = Workspace.load(workspace_dir, environ={})
    assert enabled_services(plain) == ["ingest", "monitor", "lab"]
    (workspace_dir / "lakebook.yaml").write_text(MQTT_CONFIG)
    ws = Workspace.load(workspace_dir, environ={})
    assert enabled_services(ws) == ["ingest", "mqtt", "monitor", "lab"]
    spec = service("mqtt")
    assert spec.command(ws, Launch(9003, options={"flush_interval_s": 2})) == [
        sys.executable, "-m", "lakebook", "-w", str(ws.root), "ingest", "mqtt", "--port", "9003", "--flush-interval", "2"]
    assert spec.default_port(ws) == 8788 and spec.secrets and ("paho.mqtt", "paho-mqtt", "ingest") in spec.requires
