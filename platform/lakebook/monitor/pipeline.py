"""Check kinds over the pipeline's processes: jobs (from their run history), model endpoints
and the stream (from their services' status), and the lambda consistency check. A service
that is not running makes its checks ``unknown`` with the reason, not an error."""

from __future__ import annotations

from dataclasses import dataclass
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
# The serving service's figures count from when its replicas started, so a slow spell would
# stay in them for good. The endpoint kinds measure a window instead: each evaluation keeps a
# snapshot of the counters (requests, errors, latency histogram buckets) in the check's memory,
# and measures the difference to a baseline snapshot: the previous evaluation's, or with the
# option ``window`` the newest one at least that old. The first evaluation only takes the
# baseline (unknown); counters lower than last time (the figures restarted from zero) make the
# counts since then the window.

@dataclass(frozen=True)
class EndpointWindow:
    """An endpoint's requests, errors and latency bucket counts (``delta``) since ``since``;
    ``delta`` None when there is no baseline yet. ``restarted``: the counters started again."""

    delta: dict | None
    since: datetime | None
    restarted: bool = False


def endpoint_latency(workspace, check, now: datetime) -> Measurement:
    """The endpoint's latency quantile (``quantile``: p50, p95, p99) over the requests of its
    window (see above)."""
    quantile = check.options.get("quantile", "p95")
    if quantile not in QUANTILES:
        raise ServiceError(f"no latency quantile {quantile!r}", hint=f"quantile: one of {', '.join(QUANTILES)}")
    endpoint = check.args[0]
    return latency_in_window(_endpoint_window(workspace, check, now), endpoint, quantile)


def endpoint_error_rate(workspace, check, now: datetime) -> Measurement:
    """Server errors (5xx) per request of the endpoint over its window (see above), in percent."""
    return error_rate_in_window(_endpoint_window(workspace, check, now), check.args[0])


def latency_in_window(window: EndpointWindow | str, endpoint: str, quantile: str) -> Measurement:
    """The quantile of the latencies in the window (or why there is none: unknown)."""
    from ..serving.endpoints import LatencyHistogram

    labels = {"endpoint": endpoint}
    empty = _empty_window(window, endpoint)
    if empty is not None:
        return Measurement(None, "ms", empty, labels)
    counts = [0] * LatencyHistogram.BUCKETS
    for index, count in window.delta["latency"].items():
        counts[int(index)] = count
    value = LatencyHistogram(counts).percentile(float(quantile[1:]))
    return Measurement(value, "ms", f"{endpoint}: {quantile} {value:,.1f} ms over {window.delta['requests']:,} "
                                    f"requests {_since(window)}", labels)


def error_rate_in_window(window: EndpointWindow | str, endpoint: str) -> Measurement:
    """Errors / requests in the window in percent (or why there are none: unknown)."""
    labels = {"endpoint": endpoint}
    empty = _empty_window(window, endpoint)
    if empty is not None:
        return Measurement(None, "%", empty, labels)
    requests, errors = window.delta["requests"], window.delta["errors"]
    return Measurement(errors / requests * 100, "%", f"{endpoint}: {errors:,} of {requests:,} requests failed "
                                                     f"{_since(window)}", labels)


def _empty_window(window: EndpointWindow | str, endpoint: str) -> str | None:
    """Why the window has nothing to measure, or None when it has requests."""
    if isinstance(window, str):
        return window
    if window.delta is None:
        return f"{endpoint}: baseline taken; measured from the next evaluation"
    if not window.delta["requests"]:
        return f"{endpoint}: no requests {_since(window)}"
    return None


def _since(window: EndpointWindow) -> str:
    restarted = " (its figures started again from zero)" if window.restarted else ""
    return f"since {window.since:%Y-%m-%d %H:%M:%S} UTC{restarted}"


def endpoint_snapshot(row: dict, now: datetime) -> dict:
    """The counters of a status row (its ``latency`` bucket counts as {index: count}, the
    empty buckets left out) at ``now``, as a check remembers them."""
    latency = {str(i): c for i, c in enumerate(row.get("latency") or []) if c}
    return {"at": now.isoformat(), "requests": row.get("requests", 0), "errors": row.get("errors", 0),
            "latency": latency}


def endpoint_window(history: list[dict], current: dict, window_s: float) -> tuple[EndpointWindow, list[dict]]:
    """The window ending at ``current`` (a snapshot) over the remembered snapshots (oldest
    first), and the snapshots to remember for the next evaluation. The baseline is the newest
    snapshot at least ``window_s`` old (0: the previous evaluation's), else the oldest."""
    now = datetime.fromisoformat(current["at"])
    if not history:
        return EndpointWindow(None, None), [current]
    newest = history[-1]
    if _counted_down(newest, current):  # the counters restarted after the newest snapshot
        return EndpointWindow(_difference(current, None), datetime.fromisoformat(newest["at"]), True), [current]
    old_enough = [i for i, s in enumerate(history)
                  if (now - datetime.fromisoformat(s["at"])).total_seconds() >= window_s]
    start = old_enough[-1] if old_enough else 0
    baseline = history[start]
    return (EndpointWindow(_difference(current, baseline), datetime.fromisoformat(baseline["at"])),
            [*history[start:], current])


def _counted_down(before: dict, after: dict) -> bool:
    return (after["requests"] < before["requests"] or after["errors"] < before["errors"]
            or any(after["latency"].get(i, 0) < c for i, c in before["latency"].items()))


def _difference(current: dict, baseline: dict | None) -> dict:
    """The counts of ``current`` less those of ``baseline`` (None: all of them)."""
    base = baseline or {"requests": 0, "errors": 0, "latency": {}}
    latency = {i: c - base["latency"].get(i, 0) for i, c in current["latency"].items()}
    return {"requests": current["requests"] - base["requests"], "errors": current["errors"] - base["errors"],
            "latency": {i: c for i, c in latency.items() if c}}


def _endpoint_window(workspace, check, now: datetime) -> EndpointWindow | str:
    """The check's window over the serving service's figures now, its snapshot remembered
    (or why the figures could not be read: the baseline stays as it was)."""
    from .state import MonitorStore

    row = _endpoint_row(_endpoint_rows(workspace), check.args[0])
    if isinstance(row, str):
        return row
    with MonitorStore(workspace) as store:
        history = store.memory(check.name).get("snapshots", [])
        window, kept = endpoint_window(history, endpoint_snapshot(row, now), check.options.get("window", 0.0))
        store.remember(check.name, {"snapshots": kept}, now)
    return window


def _endpoint_rows(workspace) -> list[dict] | str:
    """The serving service's endpoints with their latency histograms, or why they could not be read."""
    from ..serving.server import admin_request

    try:
        return admin_request(workspace, "GET", "/status?latency=1", timeout_s=10)["endpoints"]
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
