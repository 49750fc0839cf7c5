"""The pipeline-health notebook (notebooks/11_pipeline_health.ipynb): freshness per table, volumes
per day, reject rates per source, drift per feature, job and endpoint health, and the monitor's
check states and open alerts. Each section is a function returning a DataFrame (or an Altair
chart of one), so the notebook is a list of calls and the logic is tested without a kernel.

Invariants: every volume is counted by the query engine (a chart holds a few hundred rows
whatever the lake holds); a part of the pipeline that is not there yet (no job run, no endpoint
service, a monitor that has never run) is a one-line ``Note``, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from ..errors import LakebookError

DRIFT_LEVELS = (0.1, 0.2)  # PSI: below 0.1 stable, 0.1-0.2 a moderate shift, above 0.2 a large one
STATUS_TIMEOUT_S = 5


class Note(str):
    """A line shown in place of a table when there is nothing to show yet (Markdown in a notebook)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


# -- freshness ----------------------------------------------------------------------------------
def freshness(workspace, now: datetime | None = None):
    """One row per catalog table: zone, rows, its newest event, and how long ago data last arrived
    (``age_h`` in hours, None for a table that never got any)."""
    import pandas as pd

    from ..catalog import open_catalog
    from ..query import humanize_age

    now, catalog = _now(now), open_catalog(workspace)
    try:
        tables = catalog.tables()
    finally:
        catalog.close()
    rows = [{"table": t.qualified_name, "zone": t.zone, "rows": t.row_count, "last_event": t.last_event_time,
             "last_arrival": t.last_ingest_time, "arrived": humanize_age(t.last_ingest_time, now),
             "age_h": None if t.last_ingest_time is None else (now - t.last_ingest_time).total_seconds() / 3600}
            for t in tables]
    return pd.DataFrame(rows, columns=["table", "zone", "rows", "last_event", "last_arrival", "arrived", "age_h"])


def freshness_chart(frame):
    import altair as alt

    shown = frame.dropna(subset=["age_h"])
    return alt.Chart(shown, title="Hours since data last arrived, per table").mark_bar().encode(
        y=alt.Y("table:N", sort="-x", title=None), x=alt.X("age_h:Q", title="hours"), color="zone:N",
        tooltip=["table", "rows", "arrived"]).properties(width=480)


# -- volumes and rejects ------------------------------------------------------------------------
def _query(workspace, sql: str, params: dict | None = None):
    from ..query import session_for

    return session_for(workspace, "duckdb").query(sql, params or {}).df()


def _tables(workspace, zone: str) -> list:
    from ..catalog import open_catalog

    catalog = open_catalog(workspace)
    try:
        return catalog.tables(zone)
    finally:
        catalog.close()


def volumes(workspace, days: int = 60):
    """Events per event day of each raw table, over the last ``days`` days up to its newest event."""
    import pandas as pd

    frames = []
    for table in _tables(workspace, "raw"):
        if not table.row_count or not table.event_time_column:
            continue
        column = '"' + table.event_time_column.replace('"', '""') + '"'
        frames.append(_query(workspace, (
            f"SELECT '{table.qualified_name}' AS \"table\", CAST({column} AS DATE) AS day, count(*) AS events "
            f"FROM {table.qualified_name} WHERE {column} > (SELECT max({column}) FROM {table.qualified_name}) "
            f"- to_days(:days) GROUP BY 1, 2 ORDER BY 2"), {"days": int(days)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["table", "day", "events"])


def volume_chart(frame):
    import altair as alt

    return alt.Chart(frame, title="Events per day (event date)").mark_bar().encode(
        x=alt.X("day:T", title=None), y=alt.Y("events:Q"), color="table:N",
        tooltip=["table", "day", "events"]).properties(width=520, height=180)


def reject_rates(workspace):
    """Per source: events kept in the raw zone, events refused (its quarantine table) and the
    share refused, over everything the catalog holds."""
    import pandas as pd

    rejected = {t.name: t.row_count for t in _tables(workspace, "quarantine")}
    rows = []
    for table in _tables(workspace, "raw"):
        bad = rejected.get(table.name, 0)
        total = table.row_count + bad
        rows.append({"source": table.name, "accepted": table.row_count, "rejected": bad,
                     "reject_rate": bad / total if total else None})
    return pd.DataFrame(rows, columns=["source", "accepted", "rejected", "reject_rate"])


def reject_chart(frame):
    import altair as alt

    return alt.Chart(frame.fillna({"reject_rate": 0}), title="Share of events rejected, per source").mark_bar().encode(
        y=alt.Y("source:N", title=None), x=alt.X("reject_rate:Q", axis=alt.Axis(format="%"), title=None),
        tooltip=["source", "accepted", "rejected"]).properties(width=480)


# -- drift --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Check:
    args: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


def feature_drift(workspace, features: Iterable[str], now: datetime | None = None, **options):
    """``feature_drift`` of each feature (``view.feature`` or ``zone.table.column``) at ``now``
    with the check's ``options``; a feature that cannot be measured says why in ``detail``."""
    import pandas as pd

    from .drift import feature_drift as measure

    rows = []
    for feature in features:
        try:
            measured = measure(workspace, _Check((feature,), options), _now(now))
            rows.append({"feature": feature, "value": measured.value, "unit": measured.unit,
                         "detail": measured.detail})
        except LakebookError as exc:
            rows.append({"feature": feature, "value": None, "unit": "", "detail": exc.message})
    return pd.DataFrame(rows, columns=["feature", "value", "unit", "detail"])


def drift_chart(frame):
    import altair as alt

    shown = frame.dropna(subset=["value"])
    bars = alt.Chart(shown, title="Drift against the champion's training data").mark_bar().encode(
        y=alt.Y("feature:N", title=None), x=alt.X("value:Q", title="PSI (or KS)"), tooltip=["feature", "detail"])
    levels = alt.Chart(alt.Data(values=[{"level": v} for v in DRIFT_LEVELS])).mark_rule(
        color="#d95f02", strokeDash=[4, 3]).encode(x="level:Q")
    return (bars + levels).properties(width=480)


# -- jobs and endpoints -------------------------------------------------------------------------
def job_health(workspace):
    """Each job's newest run: status, when it was due, started and finished, and its error; a
    Note before any job has run."""
    import pandas as pd

    from ..jobs.store import JobStore

    with JobStore(workspace) as store:
        runs = store.last_runs()
    rows = [{"job": job, "status": run["status"], "trigger": run["trigger"], "scheduled": run["scheduled_time"],
             "started": run["started_at"], "finished": run["finished_at"], "attempt": run["attempt"],
             "error": ": ".join(filter(None, (run.get("error_name"), run.get("error_value")))) or run["reason"]}
            for job, run in sorted(runs.items())]
    if not rows:
        return Note("No job has run yet (lakebook jobs run NAME, or the scheduler under lakebook up).")
    return pd.DataFrame(rows, columns=["job", "status", "trigger", "scheduled", "started", "finished", "attempt",
                                       "error"])


def endpoint_health(workspace):
    """Each model endpoint as the serving service reports it (status, model version, requests,
    errors, latency), or a Note when the service does not run."""
    import pandas as pd

    from ..serving.server import admin_request

    try:
        status = admin_request(workspace, "GET", "/status", timeout_s=STATUS_TIMEOUT_S)
    except LakebookError as exc:
        return Note(f"No endpoint health: {exc.message}.")
    columns = ["name", "status", "model", "version", "requests", "errors", "rejected", "p50_ms", "p99_ms", "problem"]
    if not status.get("endpoints"):
        return Note("No endpoint health: the serving service runs no endpoint.")
    return pd.DataFrame([{c: e.get(c) for c in columns} for e in status.get("endpoints", [])], columns=columns)


# -- the monitor's own state --------------------------------------------------------------------
CHECK_COLUMNS = ["name", "expression", "state", "level", "value", "unit", "detail", "since", "evaluated_at"]
ALERT_COLUMNS = ["title", "severity", "starts_at", "last_seen", "acked_by"]


def check_states(workspace):
    """Each check's state (ok, pending, firing, unknown, error), its last value and detail."""
    import pandas as pd

    from .state import MonitorStore

    with MonitorStore(workspace) as store:
        rows = store.rows()
    if not rows:
        return Note("No check states: the monitor has not run yet (lakebook monitor run).")
    return pd.DataFrame([{c: rows[name][c] for c in CHECK_COLUMNS} for name in sorted(rows)], columns=CHECK_COLUMNS)


def open_alerts(workspace):
    """The alerts firing now, newest first, with who acknowledged them."""
    import pandas as pd

    from .alertstore import AlertStore

    with AlertStore(workspace) as store:
        firing = store.alerts()  # firing only, newest first
    if not firing:
        return Note("No alerts firing: none was raised, or each has resolved.")
    return pd.DataFrame([{c: alert[c] for c in ALERT_COLUMNS} for alert in firing], columns=ALERT_COLUMNS)
