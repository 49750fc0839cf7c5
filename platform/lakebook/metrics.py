"""How every lakebook service exposes its metrics: Prometheus's text format, written by
prometheus_client from a registry of the service's own (never the process-wide default one,
which a library loaded into the process may also fill), at ``GET /metrics``.

A service's collector yields metric families built from figures it already keeps (``counter``,
``gauge``, ``histogram``): nothing is counted on the request path by prometheus_client.
Names start with ``lakebook_``; label values are bounded: declared names (sources, jobs,
endpoints, dashboards), statuses and codes, never request ids or other user input.

Requires prometheus_client (the ``ingest`` extra); Starlette and tornado are imported only by
the helper of the framework a service runs on.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Iterable, Mapping, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

CONTENT_TYPE = CONTENT_TYPE_LATEST
Families = Callable[[], Iterable[Metric]]


class _Collector:
    def __init__(self, families: Families):
        self.families = families

    def collect(self):
        yield from self.families()


def exposition(families: Families) -> bytes:
    """The Prometheus text of the families ``families()`` yields, through a registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(families))
    return generate_latest(registry)


def _rows(rows: Mapping | float | None) -> Mapping[tuple, float]:
    """``{label values (a tuple, or one value): value}``; a bare number is the unlabelled sample."""
    if rows is None:
        return {}
    if not isinstance(rows, Mapping):
        return {(): rows}
    return {key if isinstance(key, tuple) else (key,): value for key, value in rows.items()}


def _family(kind, name: str, documentation: str, labels: Sequence[str], rows) -> Metric:
    family = kind(name, documentation, labels=list(labels))
    for key, value in sorted(_rows(rows).items(), key=lambda item: tuple(map(str, item[0]))):
        if value is not None:
            family.add_metric([str(v) for v in key], value)
    return family


def counter(name: str, documentation: str, rows=None, labels: Sequence[str] = ()) -> CounterMetricFamily:
    """A counter (exposed as ``name_total``) with one sample per row of ``rows``
    (``{label values: value}``, or a number when ``labels`` is empty); a None value is left out."""
    return _family(CounterMetricFamily, name, documentation, labels, rows)


def gauge(name: str, documentation: str, rows=None, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    """A gauge with one sample per row of ``rows``, as ``counter``."""
    return _family(GaugeMetricFamily, name, documentation, labels, rows)


def histogram(name: str, documentation: str, rows: Mapping[tuple, tuple[list[tuple[float, int]], int, float]],
              labels: Sequence[str] = ()) -> HistogramMetricFamily:
    """A histogram from counts already bucketed: per row ``(cumulative [(upper bound, count)],
    count of all observations, their sum)``; the count is the ``+Inf`` bucket."""
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for key, (buckets, count, total) in sorted(_rows(rows).items(), key=lambda item: item[0]):
        family.add_metric([str(v) for v in key], [(_bound(b), c) for b, c in buckets] + [("+Inf", count)],
                          sum_value=total)
    return family


def _bound(value: float) -> str:
    return format(value, "g")


# -- the route, on each framework ----------------------------------------------------------------
def starlette_route(families: Families, path: str = "/metrics"):
    """A Starlette ``GET path`` route answering with ``exposition(families)``, written on a
    worker thread (a collector may read the catalog database)."""
    from starlette.responses import Response
    from starlette.routing import Route

    async def metrics(request) -> Response:
        return Response(await asyncio.to_thread(exposition, families), media_type=CONTENT_TYPE)

    return Route(path, metrics, methods=["GET"])


def tornado_handler(families: Callable[[object], Iterable[Metric]]):
    """A tornado handler class answering GET with the families ``families(handler)`` yields
    (the handler gives access to the application's settings). It asks for no login: register
    it only on a server bound to loopback, or behind the server's own authentication."""
    import tornado.web

    class MetricsHandler(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", CONTENT_TYPE)
            self.finish(exposition(lambda: families(self)))

    return MetricsHandler
