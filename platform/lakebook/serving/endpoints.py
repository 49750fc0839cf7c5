"""What an endpoint is, apart from Ray: the endpoints a workspace serves (declared in
lakebook.yaml or deployed ad hoc and remembered in the state dir), the Ray Serve options its
settings make, who may call it, the predictor a replica answers with, and the figures its
replicas report (requests, errors, latency percentiles from mergeable histograms).

Invariants: an ad hoc endpoint never shadows a declared one; the endpoints' tokens are read
by each replica from its own settings, never passed through Serve (which logs deployment
arguments and configs); a replaced predictor is closed only once no batch uses it.
"""

from __future__ import annotations

import json
import math
import os
import threading
from contextlib import contextmanager
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

from ..config import EndpointSettings, ray_runtime_options
from ..errors import Backpressure, Conflict, Forbidden, NotFound, did_you_mean

REPLICA_CPUS = 0.25  # a replica mostly waits on the online store; 2-core machines host several
DRAIN_CHECK_S = 0.2  # a stopping replica checks this often whether its requests are done (Serve's
                     # default of 2 s made every delete, scale-down and stop wait at least that)
TOKEN_SETTING = "LAKEBOOK_SERVING__TOKENS or serving.tokens_file"
WILDCARD_HOSTS = {"0.0.0.0", "::", "[::]", ""}


# -- which endpoints --------------------------------------------------------------------------
def declared_endpoints(workspace) -> dict[str, EndpointSettings]:
    return dict(workspace.settings.serving.endpoints)


def adhoc_endpoints(workspace) -> dict[str, EndpointSettings]:
    """The endpoints deployed ad hoc (``lakebook serve deploy``), as remembered."""
    try:
        stored = json.loads(workspace.serving_endpoints_path.read_text())
    except FileNotFoundError:
        return {}
    return {name: EndpointSettings.model_validate(value) for name, value in stored.items()}


def all_endpoints(workspace) -> dict[str, EndpointSettings]:
    return {**adhoc_endpoints(workspace), **declared_endpoints(workspace)}


def refuse_declared(workspace, name: str, hint: str) -> None:
    """Conflict if ``name`` is declared in lakebook.yaml: it is not an ad hoc endpoint's to take."""
    if name in declared_endpoints(workspace):
        raise Conflict(f"endpoint {name!r} is declared in lakebook.yaml", hint=hint)


def remember_adhoc(workspace, name: str, settings: EndpointSettings) -> None:
    refuse_declared(workspace, name, "choose another --name, or change its model in lakebook.yaml")
    _write_adhoc(workspace, {**adhoc_endpoints(workspace), name: settings})


def forget_adhoc(workspace, name: str) -> None:
    endpoints = adhoc_endpoints(workspace)
    if endpoints.pop(name, None) is not None:
        _write_adhoc(workspace, endpoints)


def _write_adhoc(workspace, endpoints: dict[str, EndpointSettings]) -> None:
    path = workspace.serving_endpoints_path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({n: s.model_dump(mode="json") for n, s in endpoints.items()}, indent=1))
    os.replace(tmp, path)


# -- Ray Serve options ------------------------------------------------------------------------
def deployment_options(settings: EndpointSettings, access_log: bool, profile: str | None = None) -> dict[str, Any]:
    """``Deployment.options`` for an endpoint: replicas or autoscaling, room for a full batch
    per replica (Serve's default of 5 requests in flight would never fill one of 16), a
    stopping replica that leaves as soon as its requests are answered, Serve's access log on or
    off (``serving.access_log``), and the workspace's profile for the replicas (on a cluster's
    node they load the workspace in the node's environment)."""
    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": REPLICA_CPUS, **ray_runtime_options(profile)},
                               "max_ongoing_requests": max(2 * settings.max_batch_size, 5),
                               "graceful_shutdown_wait_loop_s": DRAIN_CHECK_S,
                               "logging_config": serve_logging(access_log)}
    if settings.autoscaling is not None:
        options["autoscaling_config"] = settings.autoscaling.model_dump()
    else:
        options["num_replicas"] = settings.replicas
    return options


def serve_logging(access_log: bool) -> dict[str, Any]:
    """Serve's ``LoggingConfig`` (as a dict) for the proxy and the replicas."""
    return {"enable_access_log": access_log}


def user_config(model_uri: str) -> dict[str, str]:
    """All a replica is told at run time: the model version to answer with. Changing only this
    makes Serve call ``reconfigure`` on the live replicas."""
    return {"model_uri": model_uri}


# -- who may call ---------------------------------------------------------------------------
def token_bytes(tokens) -> dict[str, list[bytes]]:
    """``serving.tokens`` as the bytes ``asgi.token_matches`` compares."""
    return {name: [t.get_secret_value().encode() for t in values] for name, values in tokens.items()}


def authorize(request, tokens: dict[str, list[bytes]], endpoint: str) -> None:
    """Open when no serving token is configured at all (loopback only, checked at start);
    else Unauthorized without a bearer token, Forbidden with one not valid for ``endpoint``."""
    from ..asgi import bearer_token, token_matches

    if not any(tokens.values()):
        return
    given = bearer_token(request)
    if not token_matches(given, tokens.get(endpoint, []) + tokens.get("*", [])):
        raise Forbidden(f"the token is not valid for endpoint {endpoint!r}",
                        hint=f"a token for {endpoint!r} or '*' in {TOKEN_SETTING}")


def endpoint_token(tokens: dict, name: str) -> str | None:
    """A serving token valid for endpoint ``name`` (its own, else a ``*`` one), if any."""
    for key in (name, "*"):
        if tokens.get(key):
            return tokens[key][0].get_secret_value()
    return None


def reachable(url: str) -> str:
    """``url`` with a wildcard bind address (0.0.0.0) replaced by loopback, to connect to."""
    parts = urlsplit(url)
    if parts.hostname in WILDCARD_HOSTS:
        parts = parts._replace(netloc=f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1")
    return urlunsplit(parts).rstrip("/")


# -- the predictor answering now --------------------------------------------------------------
def _close_in_background(value) -> None:
    threading.Thread(target=value.close, name="lakebook-close-predictor", daemon=True).start()


class Current:
    """The value (a predictor) answering now. ``use()`` lends it to one request; ``swap(new)``
    makes ``new`` answer the next requests and closes the old one once no request holds it
    (with ``close``, by default in a thread of its own: closing flushes, off the event loop)."""

    def __init__(self, close=_close_in_background):
        self._close = close
        self._lock = threading.Lock()
        self._value = None
        self._users: dict[int, int] = {}
        self._retired: dict[int, Any] = {}

    @property
    def value(self):
        return self._value

    @contextmanager
    def use(self):
        with self._lock:
            value = self._value
            if value is None:
                raise Backpressure("no model is loaded yet", hint="the endpoint is starting; retry in a moment")
            self._users[id(value)] = self._users.get(id(value), 0) + 1
        try:
            yield value
        finally:
            self._release(value)

    def _release(self, value) -> None:
        with self._lock:
            self._users[id(value)] -= 1
            done = self._users[id(value)] == 0 and id(value) in self._retired
            if self._users[id(value)] == 0:
                del self._users[id(value)]
            if done:
                del self._retired[id(value)]
        if done:
            self._close(value)

    def swap(self, new) -> None:
        with self._lock:
            old, self._value = self._value, new
            idle = old is not None and id(old) not in self._users
            if old is not None and not idle:
                self._retired[id(old)] = old
        if idle:
            self._close(old)


def predict_grouped(predictors: list, requests: list[list[dict]]) -> list[list[dict]]:
    """A batch of requests, each with the predictor that parsed it: one model call per
    predictor (two when a swap fell inside the batch), the answers split back per request."""
    answers: list = [None] * len(requests)
    groups: dict[int, list[int]] = {}
    for index, predictor in enumerate(predictors):
        groups.setdefault(id(predictor), []).append(index)
    for indexes in groups.values():
        flat = predictors[indexes[0]].predict([row for i in indexes for row in requests[i]])
        for i in indexes:
            answers[i], flat = flat[:len(requests[i])], flat[len(requests[i]):]
    return answers


# -- figures ------------------------------------------------------------------------------------
class LatencyHistogram:
    """Latencies in buckets 10 % apart from 0.05 ms to ~2 min: mergeable across replicas, and
    a percentile is read to within 5 %."""

    LOWEST_MS, RATIO, BUCKETS = 0.05, 1.1, 160

    def __init__(self, counts: list[int] | None = None):
        self.counts = list(counts) if counts is not None else [0] * self.BUCKETS

    def record(self, ms: float) -> None:
        index = 0 if ms <= self.LOWEST_MS else int(math.log(ms / self.LOWEST_MS, self.RATIO)) + 1
        self.counts[min(index, self.BUCKETS - 1)] += 1

    def merge(self, other: "LatencyHistogram") -> "LatencyHistogram":
        return LatencyHistogram([a + b for a, b in zip(self.counts, other.counts)])

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile in ms (the geometric middle of its bucket), None when empty."""
        total = sum(self.counts)
        if not total:
            return None
        rank, seen = math.ceil(total * q / 100), 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= max(rank, 1):
                return round(self.LOWEST_MS * self.RATIO ** (index - 0.5) if index else self.LOWEST_MS, 3)
        return None  # unreachable: seen reaches total

    def upper_ms(self, index: int) -> float:
        """The upper edge of bucket ``index`` in ms (the last bucket has none: infinity)."""
        return self.LOWEST_MS * self.RATIO ** index if index < self.BUCKETS - 1 else math.inf

    def cumulative(self, bounds_ms: list[float]) -> list[tuple[float, int]]:
        """For each bound (ascending), the latencies at or under it: Prometheus's ``le``
        buckets. A bucket is counted under the bound its upper edge reaches, so a bound falls
        within 10 % of where it would cut the exact latencies."""
        return [(bound, sum(c for i, c in enumerate(self.counts) if self.upper_ms(i) <= bound * 1.000001))
                for bound in bounds_ms]

    def total_ms(self) -> float:
        """The latencies' sum, each taken as the geometric middle of its bucket."""
        return sum(c * (self.LOWEST_MS * self.RATIO ** (i - 0.5) if i else self.LOWEST_MS)
                   for i, c in enumerate(self.counts) if c)


class ReplicaFigures:
    """One replica's counters since it started (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests = self.errors = self.rejected = 0
        self.latency = LatencyHistogram()

    def record(self, status: int, ms: float) -> None:
        with self._lock:
            self.requests += 1
            self.errors += status >= 500
            self.rejected += 400 <= status < 500
            self.latency.record(ms)

    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": self.requests, "errors": self.errors, "rejected": self.rejected,
                    "latency": list(self.latency.counts)}


def aggregate(snapshots: Iterable[dict]) -> dict:
    """An endpoint's figures from its replicas' last snapshots (a replica that died keeps its
    last report)."""
    snapshots = list(snapshots)
    total = {key: sum(s[key] for s in snapshots) for key in ("requests", "errors", "rejected")}
    latency = merged_latency(snapshots)
    return {**total, **{f"p{q}_ms": latency.percentile(q) for q in (50, 95, 99)}}


def merged_latency(snapshots: Iterable[dict]) -> LatencyHistogram:
    """The latencies of every snapshot in one histogram."""
    latency = LatencyHistogram()
    for snapshot in snapshots:
        latency = latency.merge(LatencyHistogram(snapshot["latency"]))
    return latency


def require_known(name: str, known: Iterable[str]) -> None:
    known = list(known)
    if name not in known:
        raise NotFound(f"no endpoint {name!r}", hint=did_you_mean(name, known) or
                       f"endpoints: {', '.join(known) or 'none'}; deploy one with 'lakebook serve deploy'")

