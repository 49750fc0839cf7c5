"""The check kinds: what each measures, its arguments and options, and the function that
measures it ("module:function", imported when a check of that kind is first evaluated, as
the project's other registries do: a kind of a later stage costs nothing until it is used).

A kind's ``unit`` is the unit of its values, and so of the levels written for it: durations
(``2h``) for seconds, ``%`` for percentages, plain numbers otherwise. ``default_fail`` is the
level of a kind that has an obvious one (a failed job, a schema change); a check of any other
kind says ``warn:`` or ``fail:``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from ..errors import MonitorDefinitionError, did_you_mean

DURATION, NUMBER, TEXT = "duration", "number", "text"


@dataclass(frozen=True)
class Kind:
    target: str  # "module:function" measuring it
    args: tuple[str, ...]  # what its arguments name (table, source, column, job, endpoint, feature_view)
    unit: str
    options: dict[str, tuple[str, object]] = field(default_factory=dict)  # option -> (type, default)
    default_fail: str | None = None
    doc: str = ""


def _data(name: str) -> str:
    return f"lakebook.monitor.data:{name}"


def _pipeline(name: str) -> str:
    return f"lakebook.monitor.pipeline:{name}"


def _drift(name: str) -> str:
    return f"lakebook.monitor.drift:{name}"


WINDOW_1H = {"window": (DURATION, "1h")}
SINCE_LAST = {"window": (DURATION, "0")}  # 0: since the previous evaluation

KINDS: dict[str, Kind] = {
    "freshness": Kind(_data("freshness"), ("table",), "s", {"by": (TEXT, "ingest")},
                      doc="age of the table's newest data: by ingest time (default) or by event time (by: event)"),
    "row_count": Kind(_data("row_count"), ("table",), "rows", doc="rows of the table (catalog stats)"),
    "volume_change": Kind(_data("volume_change"), ("table",), "%",
                          {"window": (DURATION, "1h"), "baseline": (DURATION, "7d")},
                          doc="rows added in the last window vs the mean of a window over the trailing baseline"),
    "reject_rate": Kind(_data("reject_rate"), ("source",), "%", WINDOW_1H,
                        doc="quarantined / (accepted + quarantined) events of the source over the window"),
    "missing_share": Kind(_data("missing_share"), ("table", "column"), "%", {"window": (DURATION, "24h")},
                          doc="share of nulls in a column, over the files added in the window"),
    "schema_change": Kind(_data("schema_change"), ("table",), "changes", {"window": (DURATION, "24h")},
                          default_fail="> 0", doc="columns added, dropped or retyped within the window"),
    "job_failed": Kind(_pipeline("job_failed"), ("job",), "", default_fail="> 0",
                       doc="1 when the job's newest finished run failed or timed out, else 0"),
    "job_late": Kind(_pipeline("job_late"), ("job",), "s", default_fail="> 15m",
                     doc="how long the job's oldest due run has waited to start"),
    "endpoint_latency": Kind(_pipeline("endpoint_latency"), ("endpoint",), "ms",
                             {"quantile": (TEXT, "p95"), **SINCE_LAST},
                             doc="the endpoint's latency quantile (p50, p95, p99) over the requests since the "
                                 "previous evaluation (or over window)"),
    "endpoint_error_rate": Kind(_pipeline("endpoint_error_rate"), ("endpoint",), "%", SINCE_LAST,
                                doc="server errors / requests of the endpoint since the previous evaluation "
                                    "(or over window)"),
    "stream_lag": Kind(_pipeline("stream_lag"), (), "events",
                       doc="events on the bus the stream has not consumed yet (all sources, or one: stream_lag(flights))"),
    "lambda_consistency": Kind(_pipeline("lambda_consistency"), ("feature_view",), "", {"window": (DURATION, "24h")},
                               default_fail="> 0",
                               doc="speed-layer and online rows that differ from the batch definition"),
    "feature_drift": Kind(_drift("feature_drift"), ("feature_view",), "psi", doc="drift vs the champion's training set"),
    "prediction_drift": Kind(_drift("prediction_drift"), ("endpoint",), "psi", doc="drift of the predictions"),
    "live_auc": Kind(_drift("live_auc"), ("endpoint",), "auc", doc="ROC AUC from prediction outcomes"),
}
# Kinds whose arguments may be left out (stream_lag: every source) or given one more (a source).
OPTIONAL_ARGS = {"stream_lag": ("source",)}
# Kinds whose options are free (the drift kinds are built elsewhere; they check their own).
OPEN_OPTIONS = {"feature_drift", "prediction_drift", "live_auc"}


def kind(name: str) -> Kind:
    if name not in KINDS:
        guess = did_you_mean(name, KINDS)
        raise MonitorDefinitionError(f"unknown check kind {name!r}",
                                     hint=f"{guess + ' ' if guess else ''}kinds: {', '.join(KINDS)}")
    return KINDS[name]


_loaded: dict[str, Callable] = {}


def measure_function(name: str) -> Callable:
    """The function measuring checks of kind ``name``; a MonitorDefinitionError when its module
    is missing (a stage not installed or not built yet)."""
    if name not in _loaded:
        module, _, attr = kind(name).target.partition(":")
        try:
            _loaded[name] = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            raise MonitorDefinitionError(
                f"check kind {name} needs {module}, which cannot be imported ({exc.name} is missing)",
                hint="install the extra it needs, or disable the check (enabled: false)") from None
        except AttributeError:
            raise MonitorDefinitionError(f"check kind {name}: {module} has no {attr}",
                                         hint="disable the check (enabled: false) until it is there") from None
    return _loaded[name]
