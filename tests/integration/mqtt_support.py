"""Helpers for the MQTT inlet tests: a real Mosquitto broker (Debian's ``mosquitto``) on a free
loopback port with a generated config, a real paho publisher, and the inlet started through
the service model. Imported by the test modules (not a conftest.py: see ingest_support)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from events import metric, parse_metrics
from lakebook.ingest.mosquitto import start_mosquitto
from lakebook.services import ServiceProcess, free_port, start_service

MOSQUITTO = "/usr/sbin/mosquitto"
PREFIX = "lakebook/events"


@dataclass
class Broker:
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_broker(folder: Path, users: dict[str, str] | None = None, port: int | None = None,
                 tls: "Certificates | None" = None) -> Broker:
    """Mosquitto on 127.0.0.1 (anonymous, or only ``users`` with their passwords; over TLS with
    ``tls``), keeping sessions in memory only. Queued messages are not capped (its default
    drops QoS 1 messages beyond 1,000 per client while a client is away)."""
    assert os.path.exists(MOSQUITTO), "mosquitto is installed by `make test` (Debian package mosquitto)"
    port = port or free_port()
    lines = []
    if tls is not None:
        lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
    if users:
        folder.mkdir(parents=True, exist_ok=True)
        lines += ["allow_anonymous false", f"password_file {_password_file(folder, users)}"]
    else:
        lines.append("allow_anonymous true")
    process = start_mosquitto(MOSQUITTO, folder / "mosquitto.conf", folder / "mosquitto.log", port, lines)
    return Broker(port, process, folder / "mosquitto.log")


@dataclass
class Certificates:
    ca: Path
    cert: Path  # the broker's, for IP 127.0.0.1, signed by ``ca``
    key: Path


def make_certificates(folder: Path) -> Certificates:
    """A throw-away CA and a broker certificate it signed (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = Certificates(folder / "ca.pem", folder / "broker.pem", folder / "broker.key")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for command in (
        ["req", "-x509", *ec, "-keyout", folder / "ca.key", "-out", made.ca, "-days", "1", "-subj", "/CN=lakebook test CA"],
        ["req", *ec, "-keyout", made.key, "-out", folder / "broker.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", folder / "broker.csr", "-CA", made.ca, "-CAkey", folder / "ca.key", "-CAcreateserial",
         "-out", made.cert, "-days", "1", "-extfile", folder / "san.ext"],
    ):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return made


def _password_file(folder: Path, users: dict[str, str]) -> Path:
    path = folder / "passwords"
    path.touch(mode=0o600)
    for user, password in users.items():
        subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", str(path), user,
                        password], check=True, capture_output=True)
    return path


@pytest.fixture
def brokers(tmp_path):
    """A factory: ``brokers(**start_broker options)`` starts a real Mosquitto; every one it
    started is stopped after the test, whatever happened."""
    started: list[Broker] = []

    def start(**options) -> Broker:
        started.append(start_broker(tmp_path / f"mosquitto-{len(started)}", **options))
        return started[-1]

    yield start
    for one in started:
        one.stop()


@pytest.fixture
def broker(brokers):
    """A real anonymous Mosquitto on a free loopback port; stopped after the test."""
    return brokers()


class Publisher:
    """A real paho client publishing at QoS 1; ``publish`` returns once the broker has the message."""

    def __init__(self, port: int, client_id: str = "test-publisher", ca: Path | None = None, **credentials):
        from paho.mqtt import client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if credentials:
            self.client.username_pw_set(credentials["username"], credentials["password"])
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, source: str, payload: bytes, timeout_s: float = 10) -> None:
        info = self.client.publish(f"{PREFIX}/{source}", payload, qos=1)
        info.wait_for_publish(timeout_s)
        assert info.is_published(), f"the broker did not take a message to {source} within {timeout_s} s"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_config(broker: Broker, extra: str = "") -> str:
    return f"name: mqtt\ningest:\n  mqtt:\n    url: {broker.url}\n    client_id: test-inlet\n{extra}"


def start_inlet(workspace, log_path: Path, *, flush_interval_s: float = 600, env: dict | None = None,
                wait: bool = True) -> ServiceProcess:
    """``lakebook ingest mqtt`` through the service model; with ``wait``, once it is ready
    (connected and subscribed). It flushes only when stopped, unless told otherwise."""
    return start_service(workspace, "mqtt", log_path=log_path, env=env, wait=wait, flush_interval_s=flush_interval_s)


def inlet_metrics(inlet: ServiceProcess) -> dict:
    return parse_metrics(httpx.get(f"{inlet.base_url}/metrics", timeout=10).text)


def wait_for_acks(inlet: ServiceProcess, count: int, timeout_s: float = 60) -> dict:
    """The inlet's metrics once it has acknowledged ``count`` messages."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = inlet_metrics(inlet)
        if metric(samples, "lakebook_mqtt_messages_acknowledged_total") >= count:
            return samples
        assert time.monotonic() < deadline, f"{count} messages not acknowledged within {timeout_s} s: {samples}"
        time.sleep(0.1)


def first_health(inlet: ServiceProcess, timeout_s: float = 60) -> httpx.Response:
    """The first answer of the inlet's /health, whatever its status (it answers 503 until it
    is connected and subscribed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(f"{inlet.base_url}/health", timeout=5)
        except httpx.TransportError:
            assert time.monotonic() < deadline and inlet.running, inlet.log_text()
            time.sleep(0.1)
