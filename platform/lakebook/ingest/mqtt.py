"""The MQTT inlet: events published to ``<ingest.mqtt.topic_prefix>/<source>`` go into the
ingest log as the HTTP server's do: the same contracts, quarantine, limits, metrics and
flusher (IngestService, records.payload_to_records).

A payload is one JSON event, a JSON array of events, or NDJSON. Rejected events are
quarantined with their reasons, as over HTTP; a payload that is not JSON, or holds more than
``ingest.max_events_per_request`` events or ``ingest.max_request_bytes`` bytes, is quarantined
whole with the reason (a publisher gets no answer to learn it from). A topic whose source has
no contract is logged and counted (``lakebook_mqtt_messages_unroutable``), and acknowledged:
there is no table to keep it in.

Invariants:
- A message is acknowledged (PUBACK) only once the commit holding its events, or their
  quarantine rows, is fsynced in the ingest log; acknowledgements go out in the order the
  messages came in (as MQTT requires); the messages waiting at once share one commit.
- The session is persistent (a fixed client id, clean_session=False): what the inlet has not
  acknowledged when it stops or dies, the broker keeps and sends again once it is back. The
  events of a message delivered twice have the same ids, and the flusher stores them once.
- A message that cannot be stored now (a full disk, its source's backlog at the limit, a
  contract file that never compiled) is held, unacknowledged, and tried again with backoff;
  the messages behind it wait, and the broker keeps the rest.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..asgi import ErrorsAndStatuses, routing_error_handler
from ..config import MqttTLS
from ..errors import BadRequest, ConfigError, MissingDependency, PayloadTooLarge, UnknownSource
from ..metrics import CONTENT_TYPE, exposition
from .app import health_answer
from .records import Outcome, checked_ndjson, payload_to_records, rejected_records
from .service import IngestService

log = logging.getLogger("lakebook.ingest.mqtt")

QOS = 1
MAX_BATCH = 1000  # messages stored in one commit at most
# Messages received and not stored yet, at most: the broker sends few QoS 1 messages ahead of
# their acknowledgements (Mosquitto: max_inflight_messages, 20), but QoS 0 ones without limit.
INBOX_MESSAGES = 10_000
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0
ROUTES = "GET /health, GET /metrics"
NOT_VALIDATED = "could not be validated (an internal error; the MQTT inlet's log has the details)"


@dataclass
class InletCounters:
    received: int = 0
    acknowledged: int = 0
    redelivered: int = 0  # received again after the inlet (or its connection) went down before acknowledging
    unroutable: int = 0
    connects: int = 0


def client_id(workspace) -> str:
    return workspace.settings.ingest.mqtt.client_id or f"lakebook-{workspace.settings.name}"


def broker_address(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of an ``mqtt://`` or ``mqtts://`` URL (ports 1883 and 8883 by default)."""
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


def topic_filter(settings) -> str:
    return f"{settings.topic_prefix.rstrip('/')}/+"


def _text(path) -> str | None:
    return None if path is None else str(path)


def _paho():
    try:
        from paho.mqtt import client as mqtt
    except ImportError:
        raise MissingDependency("paho-mqtt", "ingest") from None
    return mqtt


class MqttInlet:
    """Messages from the broker -> the ingest log -> acknowledgements. paho's network thread
    receives; one thread of this class stores and acknowledges."""

    def __init__(self, service: IngestService, settings, client_id: str):
        self.service = service
        self.settings = settings
        self.topic = topic_filter(settings)
        self.counters = InletCounters()
        self.connection_problem: str | None = f"not connected to {settings.url} yet"
        self.store_problem: str | None = None  # why the last try to store messages failed
        self._prefix = self.topic[:-2]
        self._inbox: queue.Queue = queue.Queue(maxsize=INBOX_MESSAGES)
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._worker: threading.Thread | None = None
        self.client = self._client(client_id)

    # -- the connection (paho's network thread) ---------------------------------------------
    def _client(self, client_id: str):
        mqtt = _paho()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                             protocol=mqtt.MQTTv311, manual_ack=True)
        self._authenticate(client)
        client.reconnect_delay_set(1, 30)
        client.on_connect, client.on_connect_fail = self._connected, self._connect_failed
        client.on_subscribe, client.on_disconnect = self._subscribed, self._disconnected
        client.on_message = self._received
        return client

    def _authenticate(self, client) -> None:
        """The configured credentials, and TLS for an ``mqtts://`` broker."""
        username, password = self.settings.username, self.settings.password
        if username is not None:
            client.username_pw_set(username.get_secret_value(), password and password.get_secret_value())
        if broker_address(self.settings.url)[2]:
            tls = self.settings.tls or MqttTLS()
            client.tls_set(ca_certs=_text(tls.ca_certs), certfile=_text(tls.certfile), keyfile=_text(tls.keyfile))
            client.tls_insecure_set(tls.insecure)

    def _connection(self, problem: str | None) -> None:
        """What keeps the inlet from receiving now (None: nothing), logged when it changes."""
        if problem is not None and problem != self.connection_problem:
            log.warning("%s", problem)
        self.connection_problem = problem

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connection(f"{self.settings.url} refused the connection: {reason_code}")
            return
        self.counters.connects += 1
        client.subscribe(self.topic, qos=QOS)  # kept by the session anyway; again in case the prefix changed

    def _connect_failed(self, client, userdata) -> None:
        why = sys.exc_info()[1]  # paho calls this while it handles the OSError of the attempt
        self._connection(f"cannot connect to {self.settings.url}{f' ({why})' if why else ''}; trying again")

    def _subscribed(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        self._connection(f"the broker refused the subscription to {self.topic}: {refused[0]}" if refused else None)

    def _disconnected(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._stop.is_set():
            self._connection(f"disconnected from {self.settings.url} ({reason_code}); reconnecting")

    def _received(self, client, userdata, message) -> None:
        self.counters.received += 1
        self.counters.redelivered += bool(message.dup)
        while not self._stop.is_set():  # a full inbox holds the network thread, and TCP holds the broker
            try:
                self._inbox.put(message, timeout=0.5)
                return
            except queue.Full:
                continue

    # -- storing and acknowledging (this class's thread) ------------------------------------
    def start(self) -> None:
        self._worker = threading.Thread(target=self._store_loop, name="lakebook-mqtt-store", daemon=True)
        self._worker.start()
        host, port, _ = broker_address(self.settings.url)
        self.client.connect_async(host, port, keepalive=self.settings.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        """Stop taking messages (those not stored yet stay with the broker), then disconnect."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=60)
        self.client.disconnect()
        self.client.loop_stop()

    def _store_loop(self) -> None:
        while not self._stop.is_set():
            messages = self._take()
            if messages and self._store(messages):
                self._acknowledge(messages)

    def _take(self) -> list:
        """The messages waiting (at most MAX_BATCH); waits a little for the first."""
        try:
            messages = [self._inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(messages) < MAX_BATCH:
            try:
                messages.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return messages

    def _store(self, messages: list) -> bool:
        """Log the messages' events in one commit, trying again until it works; False if the
        inlet is stopped first (the messages are then not acknowledged)."""
        delay = RETRY_FIRST_S
        while not self._stop.is_set():
            try:
                outcomes = self.log_messages(messages)
            except Exception as exc:  # noqa: BLE001 - held and retried: the broker keeps the messages meanwhile
                self.store_problem = f"messages cannot be stored now: {getattr(exc, 'message', None) or exc!r}"
                log.warning("%s; trying again in %.1f s", self.store_problem, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.store_problem = None
            self._count(outcomes)
            return True
        return False

    def log_messages(self, messages: list) -> list[tuple[str, Outcome | None]]:
        """(source, outcome) of each message, its records durable in the ingest log (an
        outcome of None: the source has no contract). Backpressure (the source's backlog is
        at its limit, a contract that never compiled, a full disk) stores none of them."""
        received_us = time.time_ns() // 1000
        sources = [self._source(m.topic) for m in messages]
        contracts = {source: self._contract(source) for source in set(sources)}
        together = self._single_events(messages, sources, contracts, received_us)
        outcomes = [(source, together.get(i) or self._outcome(m, source, contracts[source], received_us))
                    for i, (m, source) in enumerate(zip(messages, sources))]
        for source in {source for source, outcome in outcomes if outcome is not None and outcome.accepted}:
            self.service.check_backlog(source)
        records = [r for _, outcome in outcomes if outcome is not None for r in outcome.records]
        if records:
            self.service.writer.submit(records).result()
        return outcomes

    def _contract(self, source: str):
        """The source's contract; None if it has none (ContractUnavailable if its file never compiled)."""
        try:
            return self.service.workspace.contract(source)
        except UnknownSource:
            return None

    def _single_events(self, messages: list, sources: list[str], contracts: dict,
                       received_us: int) -> dict[int, Outcome]:
        """The outcomes of the messages that hold one event on one line (a device sending an
        event per message), by position: those of a source checked together as one NDJSON
        body and logged as one record, when every one passes (else each is read by itself)."""
        lines: dict[str, list[tuple[int, bytes]]] = {}
        limit = self.service.settings.max_request_bytes
        for i, (message, source) in enumerate(zip(messages, sources)):
            line = message.payload.strip()
            if contracts[source] is not None and not contracts[source].contract.is_blob and line[:1] == b"{" \
                    and b"\n" not in line and len(line) <= limit:
                lines.setdefault(source, []).append((i, line))
        together = {}
        for source, found in lines.items():
            if len(found) < 2:
                continue
            checked = checked_ndjson(contracts[source], source, b"\n".join(line for _, line in found), received_us)
            if checked is not None and checked.accepted == len(found):  # the first message carries the record
                together.update({i: Outcome(checked.records if n == 0 else [], 1, [])
                                 for n, (i, _) in enumerate(found)})
        return together

    def _outcome(self, message, source: str, contract, received_us: int) -> Outcome | None:
        if contract is None:
            return None
        request_id = uuid.uuid4().hex
        try:
            self._check_size(message.payload)
            if contract.contract.is_blob:
                raise BadRequest(f"source {source!r} takes files (kind: blob), not events",
                                 hint=f"PUT /v1/blobs/{source}/<name>, or a drop folder (ingest.drops)")
            return payload_to_records(contract, source, message.payload, request_id, received_us,
                                      self.service.settings.max_events_per_request)
        except (BadRequest, PayloadTooLarge) as exc:
            reason = exc.message
        except Exception:  # noqa: BLE001 - kept in quarantine rather than holding up every message behind it
            log.exception("a message of %s could not be validated; quarantined", source)
            reason = NOT_VALIDATED
        raw = message.payload.decode("utf-8", "backslashreplace")
        records = rejected_records(source, request_id, received_us, [(None, raw, reason)])
        return Outcome(records, 0, [{"index": None, "reasons": [reason]}])

    def _source(self, topic: str) -> str:
        """The source a topic names; the whole topic, which names no source, if it is not under
        the prefix (a subscription the broker kept in the session from another prefix)."""
        prefix, _, source = topic.rpartition("/")
        return source if prefix == self._prefix else topic

    def _check_size(self, payload: bytes) -> None:
        limit = self.service.settings.max_request_bytes
        if len(payload) > limit:
            raise PayloadTooLarge(f"message payload of {len(payload)} bytes is over the limit of {limit}",
                                  hint="publish smaller messages (ingest.max_request_bytes)")

    def _count(self, outcomes: list[tuple[str, Outcome | None]]) -> None:
        metrics = self.service.metrics
        for source, outcome in outcomes:
            if outcome is None:
                self._unroutable(source)
                continue
            metrics.count(metrics.accepted, source, outcome.accepted)
            metrics.count(metrics.rejected, source, len(outcome.rejected))

    def _unroutable(self, source: str) -> None:
        self.counters.unroutable += 1
        if source not in self._warned:  # once per source: a chatty device must not flood the log
            self._warned.add(source)
            topic = source if "/" in source else f"{self._prefix}/{source}"
            log.warning("messages to %s are dropped: no contract for source %r", topic, source)

    def _acknowledge(self, messages: list) -> None:
        for message in messages:
            if message.qos > 0:
                self.client.ack(message.mid, message.qos)
                self.counters.acknowledged += 1

    # -- what /health and /metrics show -----------------------------------------------------
    def problems(self) -> list[str]:
        return [p for p in (self.connection_problem, self.store_problem) if p]

    def metrics_text(self) -> bytes:
        return exposition(_Collector(self).collect)


class _Collector:
    def __init__(self, inlet: MqttInlet):
        self.inlet = inlet

    def collect(self):
        c = self.inlet.counters
        yield GaugeMetricFamily("lakebook_mqtt_connected", "1 while connected and subscribed to the broker.",
                                value=int(self.inlet.connection_problem is None))
        for name, value, documentation in [
            ("received", c.received, "Messages received from the broker."),
            ("acknowledged", c.acknowledged, "Messages acknowledged (PUBACK) after their events were durable."),
            ("redelivered", c.redelivered, "Messages the broker sent again (not acknowledged before)."),
            ("unroutable", c.unroutable, "Messages to a topic whose source has no contract (dropped)."),
        ]:
            yield CounterMetricFamily(f"lakebook_mqtt_messages_{name}", documentation, value=value)
        yield CounterMetricFamily("lakebook_mqtt_connects", "Connections made to the broker.", value=c.connects)


# -- the service: the inlet with its /health and /metrics -------------------------------------------
async def health(request: Request) -> Response:
    """As the ingest server's /health, with the broker connection: 503 until connected and
    subscribed (``lakebook up`` waits for that)."""
    inlet: MqttInlet = request.app.state.inlet
    return health_answer(request.app.state.service, request, inlet.problems(),
                         blocked=inlet.connection_problem is not None, broker=inlet.settings.url, topic=inlet.topic)


async def metrics(request: Request) -> Response:
    """The ingest server's metrics (accepted, rejected, backlog, commits, flushes) and the inlet's."""
    return Response(request.app.state.service.metrics_text() + request.app.state.inlet.metrics_text(),
                    media_type=CONTENT_TYPE)


def create_inlet_app(workspace, *, flush_interval_s: float | None = None) -> Starlette:
    """The inlet, started and stopped with an ASGI app that serves its /health and /metrics.
    The IngestService (and its flusher child) is made before any thread is started."""
    if workspace.settings.ingest.mqtt is None:
        raise ConfigError("ingest.mqtt is not set: the MQTT inlet has no broker to take events from",
                          hint="add `ingest: {mqtt: {url: mqtt://127.0.0.1:1883}}` to lakebook.yaml")
    service = IngestService(workspace, flush_interval_s=flush_interval_s, validator_processes=False)
    inlet = MqttInlet(service, workspace.settings.ingest.mqtt, client_id(workspace))

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        inlet.start()
        try:
            yield
        finally:
            await asyncio.to_thread(inlet.stop)
            await asyncio.to_thread(service.stop)

    app = Starlette(routes=[Route("/health", health, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])],
                    lifespan=lifespan, exception_handlers={HTTPException: routing_error_handler(f"routes: {ROUTES}")})
    app.state.service, app.state.inlet = service, inlet
    app.add_middleware(ErrorsAndStatuses,
                       count_status=lambda status: service.metrics.count(service.metrics.responses, status))
    return app


def serve_mqtt(workspace, port: int | None = None, *, flush_interval_s: float | None = None, echo=print) -> None:
    """Run the inlet until interrupted, its /health and /metrics on 127.0.0.1:``port``; flushes
    the log on the way out."""
    import uvicorn

    app = create_inlet_app(workspace, flush_interval_s=flush_interval_s)
    settings = workspace.settings.ingest.mqtt
    port = port or settings.health_port
    echo(f"lakebook MQTT inlet: {settings.url} topics {topic_filter(settings)} (client id {client_id(workspace)}), "
         f"health on http://127.0.0.1:{port}  (workspace {workspace.root})")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=10)
