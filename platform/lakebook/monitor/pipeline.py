"""Check kinds over the pipeline's processes: jobs (from their run history), model endpoints
and the stream (from their services' status), and the lambda consistency check. A service
that is not running makes its checks ``unknown`` with the reason, not an error."""

from __future__ import annotations

from datetime import datetime

from ..errors import ServiceError
from .engine import format_seconds
from .measure import Measurement

FAILED = ("failed", "timed_out")
QUANTILES = ("p50", "p95", "p99")


def job_failed(workspace, check, now: datetime) -> Measurement:
    """1 when the job's newest finished run failed or timed out, 0 when it succeeded."""
    from ..jobs.store import FINISHED, JobStore

    job = check.args[0]
    with JobStore(workspace) as store:
        runs = store.runs(job, limit=1, statuses=[s for s in FINISHED if s != "cancelled"])
    labels = {"job": job}
    if not runs:
        return Measurement(None, "", f"no finished run of {job} yet", labels)
    run = runs[0]
    if run["status"] not in FAILED:
        return Measurement(0.0, "", f"run {run['id']} {run['status']} at {run['finished_at']:%Y-%m-%d %H:%M:%S} UTC",
                           labels)
    why = f"{run['error_name']}: {run['error_value']}" if run.get("error_name") else run.get("reason") or run["status"]
    cell = f" in cell {run['error_cell']}" if run.get("error_cell") is not None else ""
    return Measurement(1.0, "", f"run {run['id']} {run['status']}{cell}: {' '.join(str(why).split())[:300]}",
                       labels)


def job_late(workspace, check, now: datetime) -> Measurement:
    """Seconds the job's oldest due run has waited to start (0: none waits)."""
    from ..jobs.store import JobStore

    job = check.args[0]
    with JobStore(workspace) as store:
        waiting = [r for r in store.runs(job, limit=1000, statuses=["queued"]) if r["not_before"] <= now]
    labels = {"job": job}
    if not waiting:
        return Measurement(0.0, "s", f"no run of {job} waiting to start", labels)
    oldest = min(waiting, key=lambda r: r["scheduled_time"])
    waited = max((now - oldest["scheduled_time"]).total_seconds(), 0.0)
    return Measurement(waited, "s", f"run {oldest['id']} due {format_seconds(waited)} ago, not started "
                                    f"({oldest.get('reason') or 'queued'})", labels)


# -- endpoints ------------------------------------------------------------------------------------
def endpoint_latency(workspace, check, now: datetime) -> Measurement:
    """The endpoint's latency quantile (``quantile``: p50, p95, p99) since its replicas started."""
    rows = _endpoint_rows(workspace)
    return latency_from_status(rows, check.args[0], check.options.get("quantile", "p95"))


def latency_from_status(rows: list[dict] | str, endpoint: str, quantile: str) -> Measurement:
    """From the serving service's GET /status endpoints (or why it could not be read)."""
    labels = {"endpoint": endpoint}
    row = _endpoint_row(rows, endpoint)
    if isinstance(row, str):
        return Measurement(None, "ms", row, labels)
    if quantile not in QUANTILES:
        raise ServiceError(f"no latency quantile {quantile!r}", hint=f"quantile: one of {', '.join(QUANTILES)}")
    value = row.get(f"{quantile}_ms")
    if value is None:
        return Measurement(None, "ms", f"{endpoint}: no request measured yet", labels)
    return Measurement(float(value), "ms", f"{endpoint}: {quantile} {value:,.1f} ms over {row.get('requests', 0):,} "
                                           f"requests", labels)


def endpoint_error_rate(workspace, check, now: datetime) -> Measurement:
    """Server errors (5xx) per request of the endpoint since the last evaluation, in percent
    (the first evaluation: since its replicas started)."""
    from .state import MonitorStore

    endpoint = check.args[0]
    rows = _endpoint_rows(workspace)
    with MonitorStore(workspace) as store:
        before = store.memory(check.name)
        measurement = error_rate_from_status(rows, endpoint, before)
        row = _endpoint_row(rows, endpoint)
        if isinstance(row, dict):
            store.remember(check.name, {"requests": row.get("requests", 0), "errors": row.get("errors", 0)}, now)
    return measurement


def error_rate_from_status(rows: list[dict] | str, endpoint: str, before: dict) -> Measurement:
    """The error rate from the status rows and the counters seen last time (``before``; the
    counters start again from zero when the service restarts)."""
    labels = {"endpoint": endpoint}
    row = _endpoint_row(rows, endpoint)
    if isinstance(row, str):
        return Measurement(None, "%", row, labels)
    requests, errors = row.get("requests", 0), row.get("errors", 0)
    if before and requests >= before.get("requests", 0) and errors >= before.get("errors", 0):
        requests, errors = requests - before.get("requests", 0), errors - before.get("errors", 0)
    if requests == 0:
        return Measurement(0.0, "%", f"{endpoint}: no requests since the last evaluation", labels)
    return Measurement(errors / requests * 100, "%", f"{endpoint}: {errors:,} of {requests:,} requests failed", labels)


def _endpoint_rows(workspace) -> list[dict] | str:
    """The serving service's endpoints, or why they could not be read."""
    from ..serving.server import admin_request

    try:
        return admin_request(workspace, "GET", "/status", timeout_s=10)["endpoints"]
    except ServiceError as exc:
        return exc.message


def _endpoint_row(rows: list[dict] | str, endpoint: str) -> dict | str:
    if isinstance(rows, str):
        return rows
    found = {r["name"]: r for r in rows}
    if endpoint not in found:
        return f"no endpoint {endpoint!r} (endpoints: {', '.join(found) or 'none'})"
    return found[endpoint]


# -- the stream -----------------------------------------------------------------------------------
def stream_lag(workspace, check, now: datetime) -> Measurement:
    """Events on the bus the stream's consumer group has not consumed (every source, or one)."""
    from ..stream.server import stream_status

    try:
        status = stream_status(workspace)
    except ServiceError as exc:
        status = exc.message
    return lag_from_status(status, check.args[0] if check.args else None)


def lag_from_status(status: dict | str, source: str | None) -> Measurement:
    """From the stream's GET /status (or the bus's offsets when it does not run)."""
    labels = {"source": source} if source else {}
    if isinstance(status, str):
        return Measurement(None, "events", status, labels)
    sources = status.get("sources", {})
    if source is not None:
        if source not in sources:
            return Measurement(None, "events", f"the stream reads no source {source!r} "
                                               f"(sources: {', '.join(sources) or 'none'})", labels)
        sources = {source: sources[source]}
    lags = {s: r.get("lag") for s, r in sources.items() if r.get("lag") is not None}
    if not lags:
        return Measurement(None, "events", "no lag reported" + ("" if status.get("running") else
                                                                 " (the stream is not running)"), labels)
    total = sum(lags.values())
    running = "" if status.get("running", True) else " (the stream is not running)"
    shown = ", ".join(f"{s} {n:,}" for s, n in sorted(lags.items()))
    return Measurement(float(total), "events", f"{total:,} events behind: {shown}{running}", labels)


def lambda_consistency(workspace, check, now: datetime) -> Measurement:
    """Rows of the speed layer and the online store that differ from the batch definition
    (``lakebook features check`` over the last ``window``)."""
    from ..stream.check import check_features

    view, window = check.args[0], check.options["window"]
    report = check_features(workspace, [view], since=f"{int(window)}s")
    mismatches = sum(sum(v.mismatches.values()) for v in report.views)
    speed = sum(v.mismatches["speed"] for v in report.views)
    online = sum(v.mismatches["online"] for v in report.views)
    return Measurement(float(mismatches), "", f"{view}: {speed:,} speed and {online:,} online rows differ from batch",
                       {"feature_view": view})
