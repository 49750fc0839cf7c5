"""The ingest server's counters: plain numbers on the request path (a dict update costs less
than a labelled prometheus_client counter), exposed in Prometheus's text format through a
prometheus_client collector of their own registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..metrics import CONTENT_TYPE, exposition

__all__ = ["CONTENT_TYPE", "IngestMetrics"]


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
    source_flush_failures: dict[str, int] = field(default_factory=dict)
    failing: dict[str, dict] = field(default_factory=dict)  # source -> its last FlushBackoff failure, as a dict

    @staticmethod
    def count(table: dict, key, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    def flushed(self, events: int, at: float) -> None:
        self.flushes += 1
        self.flushed_events += events
        self.last_flush_unix = at

    def flush_failed(self, failures: list[dict], failing: dict[str, dict]) -> None:
        """A flush's failed sources (each counted) and the sources failing after it."""
        for failure in failures:
            self.count(self.source_flush_failures, failure["source"])
        self.flush_errors += bool(failures)
        self.failing = failing

    def exposition(self, backlog: dict[str, int], commits: int, groups: list[dict] = ()) -> bytes:
        """The Prometheus text of these counters, the backlog by source, the log's commits and
        the consumer groups of the bus ({group, source, offset, lag} each)."""
        return exposition(_Collector(self, lambda: (backlog, commits, groups)).collect)


class _Collector:
    def __init__(self, metrics: IngestMetrics, gauges: Callable[[], tuple[dict[str, int], int, list[dict]]]):
        self.metrics = metrics
        self.gauges = gauges

    def collect(self):
        m = self.metrics
        by_source, commits, groups = self.gauges()
        backlog = sum(by_source.values())
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
        yield _labelled("lakebook_ingest_source_backlog_events",
                        "Events of a source in the ingest log not yet flushed.", "source", by_source, GaugeMetricFamily)
        yield CounterMetricFamily("lakebook_ingest_flush_errors", "Flushes in which a source failed (retried).",
                                  value=m.flush_errors)
        yield _labelled("lakebook_ingest_source_flush_failures", "Failed flushes of a source (retried with backoff).",
                        "source", m.source_flush_failures)
        yield GaugeMetricFamily("lakebook_ingest_sources_failing", "Sources whose last flush failed.",
                                value=len(m.failing))
        yield CounterMetricFamily("lakebook_ingest_events_flushed",
                                  "Events written to the lake (duplicates of events already there not counted).",
                                  value=m.flushed_events)
        yield GaugeMetricFamily("lakebook_ingest_last_flush_timestamp_seconds", "When the last flush ended (Unix time).",
                                value=m.last_flush_unix)
        yield _by_group("lakebook_bus_lag_events", "Events accepted and not committed by a consumer group.", groups, "lag")
        yield _by_group("lakebook_bus_committed_offset", "The offset (ingest log sequence number) a consumer group "
                        "committed.", groups, "offset")


def _by_group(name: str, documentation: str, groups: list[dict], key: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["group", "source"])
    for row in groups:
        family.add_metric([row["group"], row["source"]], row[key])
    return family


def _labelled(name: str, documentation: str, label: str, values: dict, kind=CounterMetricFamily):
    family = kind(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([str(key)], value)
    return family
