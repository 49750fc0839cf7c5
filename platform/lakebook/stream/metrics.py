"""The stream's status in Prometheus's text format: per source (its consumer group) events,
rate, committed offset, lag and failures; per view pushes, rows pushed, the last push and
events too late to apply."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..metrics import CONTENT_TYPE
from ..metrics import exposition as _exposition

__all__ = ["CONTENT_TYPE", "exposition"]
_SOURCE = [  # (metric, kind, key in a source's status, help)
    ("lakebook_stream_events", "counter", "events", "events the stream read from the bus"),
    ("lakebook_stream_events_per_second", "gauge", "events_per_s", "events read per second over the last 10 s"),
    ("lakebook_stream_committed_offset", "gauge", "committed", "the consumer group's committed bus offset"),
    ("lakebook_stream_lag_events", "gauge", "lag", "events accepted but not yet committed by the consumer group"),
    ("lakebook_stream_failures", "counter", "failures", "failed micro-batches (retried from the checkpoints)"),
]
_VIEW = [
    ("lakebook_stream_pushes", "counter", "pushes", "pushes to the online store"),
    ("lakebook_stream_pushed_rows", "counter", "pushed_rows", "entity rows pushed to the online store"),
    ("lakebook_stream_last_push_timestamp_seconds", "gauge", "last_push_unix", "Unix time of the last push"),
    ("lakebook_stream_late_events", "counter", "late_events", "rows too late to apply (older than the kept buckets)"),
]


class _Collector:
    def __init__(self, status: dict):
        self.status = status

    def collect(self):
        group = self.status["group"]
        yield from _families(_SOURCE, ["group", "source"], {(group, s): r for s, r in self.status["sources"].items()})
        yield from _families(_VIEW, ["view"], {(v,): r for v, r in self.status["views"].items()})


def _families(specs, labels: list[str], rows: dict):
    for name, kind, key, text in specs:
        family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, text, labels=labels)
        for label_values, row in rows.items():
            if row.get(key) is not None:
                family.add_metric(list(label_values), row[key])
        yield family


def exposition(status: dict) -> bytes:
    """The Prometheus text of the stream's status (``job_status``)."""
    return _exposition(_Collector(status).collect)
