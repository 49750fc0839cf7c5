"""The model endpoints' metrics, from the figures the replicas report to the serving service
(``Controller.status(latency=True)``): per endpoint its requests, errors (5xx) and rejected
requests (4xx), its latency as a histogram, the model version it answers with, whether it
runs and its running replicas. Labels: the endpoint's name (declared or deployed by name)."""

from __future__ import annotations

from typing import Iterable

from ..metrics import counter, gauge, histogram
from .endpoints import LatencyHistogram

# Prometheus's usual latency bounds, in seconds: the replicas' finer buckets (10 % apart) are
# summed under each (LatencyHistogram.cumulative)
LATENCY_BOUNDS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
_ENDPOINT = ["endpoint"]


def serving_families(rows: list[dict]) -> Iterable:
    """The families of the endpoints ``rows`` (``Controller.describe`` rows, with ``latency``)."""
    by_name = {row["name"]: row for row in rows}

    def each(key: str) -> dict:
        return {name: row.get(key) for name, row in by_name.items()}

    yield gauge("lakebook_serving_endpoints", "Endpoints the serving service runs or tries to deploy.", len(rows))
    yield counter("lakebook_serving_requests", "Prediction requests answered.", each("requests"), _ENDPOINT)
    yield counter("lakebook_serving_errors", "Prediction requests answered with a server error (5xx).",
                  each("errors"), _ENDPOINT)
    yield counter("lakebook_serving_rejected", "Prediction requests refused (4xx: bad input, no token).",
                  each("rejected"), _ENDPOINT)
    yield histogram("lakebook_serving_request_duration_seconds",
                    "Prediction latency in the replica (bounds within 10 %).",
                    {name: _latency(row.get("latency")) for name, row in by_name.items()}, _ENDPOINT)
    yield gauge("lakebook_serving_model_version", "The registered model version an endpoint answers with.",
                {name: _number(row.get("version")) for name, row in by_name.items()}, _ENDPOINT)
    yield gauge("lakebook_serving_endpoint_running", "1 while Serve reports the endpoint RUNNING.",
                {name: int(row.get("status") == "RUNNING") for name, row in by_name.items()}, _ENDPOINT)
    yield gauge("lakebook_serving_replicas", "Running replicas of an endpoint.", each("replicas"), _ENDPOINT)


def _latency(counts: list[int] | None) -> tuple[list[tuple[float, int]], int, float]:
    latency = LatencyHistogram(counts)
    bounds = latency.cumulative([bound * 1000 for bound in LATENCY_BOUNDS_S])
    return [(ms / 1000, count) for ms, count in bounds], sum(latency.counts), latency.total_ms() / 1000


def _number(version) -> float | None:
    try:
        return float(version)
    except (TypeError, ValueError):
        return None
