"""The ingest server's counters: plain numbers on the request path (a dict update costs less
than a labelled prometheus_client counter), exposed in Prometheus's text format through a
prometheus_client collector of their own registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass
class IngestMetrics:
    accepted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    responses: dict[int, int] = field(default_factory=dict)
    blobs: int = 0
    flushes: int = 0
    flush_errors: int = 0
    flushed_events: int = 0
    last_flush_unix: float = 0.0

    @staticmethod
    def count(table: dict, key, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    def flushed(self, events: int, at: float) -> None:
        self.flushes += 1
        self.flushed_events += events
        self.last_flush_unix = at

    def exposition(self, backlog: int, commits: int) -> bytes:
        """The Prometheus text of these counters, the backlog and the log's commits."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, lambda: (backlog, commits)))
        return generate_latest(registry)


class _Collector:
    def __init__(self, metrics: IngestMetrics, gauges: Callable[[], tuple[int, int]]):
        self.metrics = metrics
        self.gauges = gauges

    def collect(self):
        m = self.metrics
        backlog, commits = self.gauges()
        yield _labelled("lakebook_ingest_events_accepted", "Events accepted (durable in the ingest log).",
                        "source", m.accepted)
        yield _labelled("lakebook_ingest_events_rejected", "Events rejected and quarantined.", "source", m.rejected)
        yield _labelled("lakebook_ingest_responses", "HTTP responses by status code.", "code", m.responses)
        yield GaugeMetricFamily("lakebook_ingest_backlog_events", "Events in the ingest log not yet flushed to the lake.",
                                value=backlog)
        yield CounterMetricFamily("lakebook_ingest_log_commits", "Group commits (fsyncs) of the ingest log.", value=commits)
        yield CounterMetricFamily("lakebook_ingest_blobs_stored", "Blobs stored (not counting a repeat of one).",
                                  value=m.blobs)
        yield CounterMetricFamily("lakebook_ingest_flushes", "Flushes of the ingest log to the lake.", value=m.flushes)
        yield CounterMetricFamily("lakebook_ingest_flush_errors", "Flushes that failed (retried).", value=m.flush_errors)
        yield CounterMetricFamily("lakebook_ingest_events_flushed",
                                  "Events written to the lake (duplicates of events already there not counted).",
                                  value=m.flushed_events)
        yield GaugeMetricFamily("lakebook_ingest_last_flush_timestamp_seconds", "When the last flush ended (Unix time).",
                                value=m.last_flush_unix)


def _labelled(name: str, documentation: str, label: str, values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([str(key)], value)
    return family
