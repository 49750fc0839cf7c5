"""The example dashboard (notebooks/10_delay_dashboard.ipynb): departures from New York by hour
of day, carrier and weather for the airport, carrier and dates its filters select; the freshness
of every table it read; a what-if form calling the model endpoint when it runs; and predicted
against actual once predictions have outcomes.

Invariants: every chart's data is aggregated by the query engine (a chart holds a few hundred
rows at most, whatever the lake holds); the serving token is read from the workspace settings
when a request is sent, and is never shown or kept in the notebook's namespace; an endpoint that
does not run, or outcomes not there yet, are a one-line note, never an error.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from ..catalog import TableInfo
from ..errors import BadRequest, EndpointUnavailable, Forbidden, LakebookError, Unauthorized, UnknownTable
from ..query import humanize_age, session_for
from ..redact import mask
from ..serving.endpoints import all_endpoints, endpoint_token, reachable

LOCAL = ZoneInfo("America/New_York")  # schedules are local times, as the training notebook reads them
AIRPORTS = ("EWR", "JFK", "LGA")
ALL = "all"
VEGALITE_V5 = "application/vnd.vegalite.v5+json"  # what JupyterLab 4 and Voila 0.5 render
PROBE_TIMEOUT_S = 2
PREDICT_TIMEOUT_S = 30

# Upper bounds (exclusive) and labels; the last label takes the rest. Visibility is in miles,
# precipitation in inches per hour (recorded in steps of 0.01: below 0.01 is none).
VISIBILITY = ((1, "< 1 mile"), (5, "1-5 miles"), (None, "5+ miles"))
PRECIPITATION = ((0.01, "dry"), (0.1, "light"), (None, "heavy"))


def flights(join: str = "") -> str:
    """FROM and WHERE of the departures the filters select (``f``), with ``join`` after them."""
    return f"""FROM warehouse.flights_clean AS f {join}
WHERE (:airport = 'all' OR f.origin = :airport) AND (:carrier = 'all' OR f.carrier = :carrier)
  AND CAST(f.sched_dep_at AT TIME ZONE 'America/New_York' AS DATE) BETWEEN CAST(:start AS DATE) AND CAST(:end AS DATE)"""


def bucket_case(column: str, bounds: tuple) -> str:
    """A SQL CASE naming the bucket of ``column``: the first label whose bound it is under."""
    whens = " ".join(f"WHEN {column} < {bound} THEN '{label}'" for bound, label in bounds if bound is not None)
    return f"CASE WHEN {column} IS NULL THEN 'unknown' {whens} ELSE '{bounds[-1][1]}' END"


BY_HOUR = f"""SELECT hour(f.sched_dep_at AT TIME ZONE 'America/New_York') AS local_hour, count(*) AS flights,
       avg(f.dep_delay) AS avg_dep_delay, avg(f.arr_late::INT) AS late_share
{flights()} AND NOT f.cancelled
GROUP BY 1 ORDER BY 1"""

BY_CARRIER = f"""SELECT f.carrier, any_value(f.carrier_name) AS carrier_name, count(*) AS flights,
       avg(f.dep_delay) AS avg_dep_delay, avg(f.arr_late::INT) AS late_share
{flights()} AND NOT f.cancelled
GROUP BY 1 ORDER BY flights DESC"""

BY_WEATHER = f"""SELECT {bucket_case('w.visib', VISIBILITY)} AS visibility,
       {bucket_case('w.precip', PRECIPITATION)} AS precipitation,
       count(*) AS flights, avg(f.dep_delay) AS avg_dep_delay
{flights('JOIN warehouse.weather_hourly AS w ON w.origin = f.origin AND w.time_hour = f.time_hour')}
  AND NOT f.cancelled
GROUP BY 1, 2 ORDER BY 1, 2"""

# Predictions of the endpoint for the filtered flights, by tenth of p_late: mean p_late
# against the share that arrived late.
PREDICTED_VS_ACTUAL = f"""SELECT least(floor(p.p_late * 10), 9) / 10 AS p_late_from, count(*) AS predictions,
       avg(p.p_late) AS predicted, avg(p.arr_late::INT) AS actual
{flights('JOIN warehouse.prediction_outcomes AS p ON p.flight_id = f.flight_id')}
  AND p.endpoint = :endpoint
GROUP BY 1 ORDER BY 1"""

# Per route and carrier: what the what-if form offers and fills in (a few hundred rows).
ROUTES = """SELECT origin, carrier, any_value(carrier_name) AS carrier_name, dest, round(avg(distance)) AS distance,
       mode(tailnum) AS tailnum, count(*) AS flights
FROM warehouse.flights_clean WHERE tailnum IS NOT NULL
GROUP BY origin, carrier, dest ORDER BY origin, carrier, flights DESC"""


@dataclass(frozen=True)
class Filters:
    """What the dashboard shows: departures from ``airport`` by ``carrier`` (or all) on local
    dates ``start`` to ``end``, both included."""

    airport: str = ALL
    carrier: str = ALL
    start: date = date(2013, 1, 1)
    end: date = date(2013, 12, 31)

    def params(self) -> dict[str, Any]:
        """The query parameters; a BadRequest for dates the wrong way round or an unknown airport."""
        if self.start is None or self.end is None:
            raise BadRequest("the date range needs a start and an end", hint="pick both dates")
        if self.start > self.end:
            raise BadRequest(f"the date range ends ({self.end}) before it starts ({self.start})",
                             hint="pick an end date on or after the start date")
        if self.airport not in (ALL, *AIRPORTS):
            raise BadRequest(f"unknown airport {self.airport!r}", hint=f"one of {', '.join(AIRPORTS)} or {ALL!r}")
        return {"airport": self.airport, "carrier": self.carrier or ALL, "start": self.start, "end": self.end}


# -- charts -------------------------------------------------------------------------------------
def enable_vegalite_v5() -> None:
    """Make Altair charts display as Vega-Lite 5 under its MIME type, which JupyterLab 4 and
    Voila 0.5 render offline (Altair's default renderer sends HTML that loads Vega from a CDN;
    lakebook pins Altair 5.5: Altair 6 emits Vega-Lite 6, which neither renders)."""
    import altair as alt

    alt.renderers.enable("mimetype")


def hour_chart(frame):
    import altair as alt

    return alt.Chart(frame, title="Mean departure delay by hour of day (local)").mark_bar().encode(
        x=alt.X("local_hour:O", title="scheduled hour"), y=alt.Y("avg_dep_delay:Q", title="minutes"),
        tooltip=["local_hour", "flights", alt.Tooltip("late_share:Q", format=".1%")]).properties(width=520, height=200)


def carrier_chart(frame):
    import altair as alt

    return alt.Chart(frame, title="Share of arrivals more than 15 minutes late, by carrier").mark_bar().encode(
        y=alt.Y("carrier_name:N", sort="-x", title=None), x=alt.X("late_share:Q", axis=alt.Axis(format="%"), title=None),
        tooltip=["carrier", "flights", alt.Tooltip("avg_dep_delay:Q", format=".1f")]).properties(width=520)


def weather_chart(frame):
    import altair as alt

    order = [label for _, label in PRECIPITATION]
    return alt.Chart(frame, title="Mean departure delay by visibility and precipitation").mark_bar().encode(
        x=alt.X("visibility:N", sort=[label for _, label in VISIBILITY], title="visibility"),
        xOffset=alt.XOffset("precipitation:N", sort=order),
        y=alt.Y("avg_dep_delay:Q", title="minutes"), color=alt.Color("precipitation:N", sort=order),
        tooltip=["visibility", "precipitation", "flights"]).properties(width=520, height=200)


def predicted_vs_actual_chart(frame):
    import altair as alt

    base = alt.Chart(frame, title="Predicted against actual share of late arrivals")
    points = base.mark_circle().encode(
        x=alt.X("predicted:Q", scale=alt.Scale(domain=[0, 1]), title="mean p_late"),
        y=alt.Y("actual:Q", scale=alt.Scale(domain=[0, 1]), title="share late"),
        size=alt.Size("predictions:Q"), tooltip=["p_late_from", "predictions", "predicted", "actual"])
    diagonal = alt.Chart(alt.Data(values=[{"p": 0}, {"p": 1}])).mark_line(color="#999").encode(x="p:Q", y="p:Q")
    return (diagonal + points).properties(width=320, height=320)


# -- freshness ----------------------------------------------------------------------------------
def freshness_frame(sources: Iterable[TableInfo], now: datetime | None = None):
    """One row per table, as ``lakebook catalog list`` shows it: rows, last event and when data
    last arrived."""
    import pandas as pd

    now = now or datetime.now(timezone.utc)
    rows = [{"table": t.qualified_name, "rows": f"{t.row_count:,}",
             "last event (UTC)": t.last_event_time.strftime("%Y-%m-%d %H:%M") if t.last_event_time else "-",
             "updated": humanize_age(t.last_ingest_time, now)}
            for t in sorted(sources, key=lambda t: t.qualified_name)]
    return pd.DataFrame(rows, columns=["table", "rows", "last event (UTC)", "updated"])


# -- the model endpoint -------------------------------------------------------------------------
def what_if_request(origin: str, carrier: str, dest: str, tailnum: str, departure: datetime,
                    distance: float) -> dict:
    """A prediction request for a flight scheduled at ``departure`` (New York time when naive),
    with the schedule features the model was trained on (local hour; weekday, Sunday 0, as
    DuckDB's dayofweek)."""
    problems = [name for name, value in (("origin", origin), ("carrier", carrier), ("dest", dest),
                                         ("tailnum", tailnum)) if not (value or "").strip()]
    if problems:
        raise BadRequest(f"the what-if form needs {', '.join(problems)}", hint="fill in every field of the form")
    if not distance or distance <= 0:
        raise BadRequest(f"distance must be a positive number of miles, not {distance!r}",
                         hint="pick a destination: the form fills in the route's distance")
    local = departure.replace(tzinfo=LOCAL) if departure.tzinfo is None else departure.astimezone(LOCAL)
    return {"origin": origin, "carrier": carrier, "dest": dest, "tailnum": tailnum.strip().upper(),
            "distance": float(distance), "sched_hour_local": local.hour, "sched_weekday": local.isoweekday() % 7,
            "sched_dep_at": local.isoformat()}


def endpoint_url(workspace, name: str) -> str:
    settings = workspace.settings.serving
    return reachable(f"http://{settings.host}:{settings.port}/{name}")


def not_running_note(workspace, name: str) -> str:
    """The one line shown instead of the what-if form when endpoint ``name`` does not answer."""
    if name not in all_endpoints(workspace):
        return (f"No what-if: this workspace has no model endpoint {name!r} "
                f"(declare serving.endpoints.{name} in lakebook.yaml, then lakebook up).")
    return f"No what-if: the model endpoint {name!r} is not running (lakebook serve start, or lakebook up)."


def probe(url: str, name: str, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """The model URI endpoint ``name`` at ``url`` answers with; EndpointUnavailable when nothing
    answers there, or the endpoint is not deployed or still loading its model."""
    import httpx

    try:
        answer = httpx.get(f"{url}/health", timeout=timeout_s)
    except httpx.TransportError:
        raise EndpointUnavailable(f"the model endpoint {name!r} does not answer at {url}",
                                  hint="lakebook serve start, or lakebook up") from None
    health = answer.json() if answer.status_code == 200 else {}
    if health.get("status") != "ok":
        raise EndpointUnavailable(f"the model endpoint {name!r} is not ready at {url} (HTTP {answer.status_code}, "
                                  f"{health.get('status', 'not deployed')})", hint="lakebook serve status")
    return health["model"]


_ERRORS = {401: Unauthorized, 403: Forbidden}


def predict(url: str, token: str | None, request: Mapping[str, Any], timeout_s: float = PREDICT_TIMEOUT_S) -> dict:
    """The endpoint's answer to one request (``p_late``, ``model``, ``version`` …); its error
    as a LakebookError with the endpoint's message and hint."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.post(f"{url}/predict", json=dict(request), headers=headers, timeout=timeout_s)
    except httpx.TransportError as exc:
        raise EndpointUnavailable(f"the model endpoint at {url} does not answer: {exc}",
                                  hint="lakebook serve status") from None
    if answer.status_code == 200:
        return answer.json()
    try:
        error = answer.json().get("error", {})
    except ValueError:
        error = {"message": answer.text[:500]}
    kind = _ERRORS.get(answer.status_code, BadRequest if answer.status_code < 500 else EndpointUnavailable)
    raise kind(mask(f"the endpoint refused the request (HTTP {answer.status_code}): {error.get('message')}"),
               hint=error.get("hint"))


def describe_answer(answer: Mapping[str, Any]) -> str:
    return (f"p_late {answer['p_late']:.1%} (chance of arriving more than 15 minutes late), "
            f"model {answer['model']} version {answer['version']}")


def describe_error(exc: LakebookError) -> str:
    """The error's message and hint as HTML."""
    return html.escape(exc.message + (f" (hint: {exc.hint})" if exc.hint else ""))


# -- the dashboard ------------------------------------------------------------------------------
class DelayDashboard:
    """The widgets and charts of the example dashboard over ``workspace``; every filter change
    runs its queries again and redraws each chart in its own output."""

    CHARTS = {"hour": (BY_HOUR, hour_chart), "carrier": (BY_CARRIER, carrier_chart),
              "weather": (BY_WEATHER, weather_chart)}

    def __init__(self, workspace, filters: Filters, endpoint: str):
        import ipywidgets as w

        enable_vegalite_v5()
        self.workspace, self.endpoint = workspace, endpoint
        self.session = session_for(workspace)
        self.sources: dict[str, TableInfo] = {}
        self.routes = self.query(ROUTES, {}).df()
        self.outputs = {name: w.Output() for name in [*self.CHARTS, "outcomes", "freshness"]}
        carriers = sorted(set(zip(self.routes.carrier_name, self.routes.carrier)))
        self.airport = w.Dropdown(options=[("all airports", ALL), *[(a, a) for a in AIRPORTS]],
                                  value=filters.airport, description="airport")
        self.carrier = w.Dropdown(options=[("all carriers", ALL), *carriers], value=filters.carrier,
                                  description="carrier")
        self.start = w.DatePicker(value=filters.start, description="from")
        self.end = w.DatePicker(value=filters.end, description="to")
        self.message = w.HTML()
        for control in (self.airport, self.carrier, self.start, self.end):
            control.observe(lambda _: self.redraw(), names="value")
        self.redraw()

    def query(self, sql: str, params: Mapping[str, Any]):
        result = self.session.query(sql, params)
        self.sources.update((t.qualified_name, t) for t in result.sources)
        return result

    @property
    def filters(self) -> Filters:
        return Filters(self.airport.value, self.carrier.value, self.start.value, self.end.value)

    def controls(self):
        import ipywidgets as w

        return w.VBox([w.HBox([self.airport, self.carrier]), w.HBox([self.start, self.end]), self.message])

    def redraw(self) -> None:
        """Every chart and the freshness table again, for the filters as they are now."""
        try:
            params = self.filters.params()
        except BadRequest as exc:
            self.message.value = f"<b>{describe_error(exc)}</b>"
            return
        self.message.value = ""
        for name, (sql, chart) in self.CHARTS.items():
            self._show(name, lambda: chart(self.query(sql, params).df()))
        self._show("outcomes", lambda: self.predicted_vs_actual(params))
        self._show("freshness", lambda: freshness_frame(self.sources.values()))

    def _show(self, name: str, make) -> None:
        from IPython.display import display

        output = self.outputs[name]
        output.clear_output(wait=True)
        with output:
            display(make())

    def predicted_vs_actual(self, params: dict):
        """The chart once the endpoint's predictions for these flights have outcomes, else a note."""
        from IPython.display import Markdown

        try:
            frame = self.query(PREDICTED_VS_ACTUAL, {**params, "endpoint": self.endpoint}).df()
        except UnknownTable:
            return Markdown("No predictions with outcomes yet: `warehouse.prediction_outcomes` is built by "
                            "`lakebook transform run` once the endpoint has answered.")
        if frame.empty:
            return Markdown(f"No predictions of endpoint `{self.endpoint}` with outcomes for these flights yet.")
        return predicted_vs_actual_chart(frame)

    def chart(self, name: str):
        return self.outputs[name]

    def what_if(self, url: str | None = None):
        """The what-if form when the endpoint answers at ``url`` (default: where the workspace
        serves it), else the one-line note."""
        from IPython.display import Markdown

        url = url or endpoint_url(self.workspace, self.endpoint)
        try:
            model = probe(url, self.endpoint)
        except EndpointUnavailable:
            return Markdown(not_running_note(self.workspace, self.endpoint))
        return WhatIfForm(self, url, model).widget()


def offer(dropdown, options: list) -> None:
    """New options for ``dropdown``, the first one chosen (ipywidgets leaves none chosen)."""
    dropdown.options = options
    dropdown.index = 0 if options else None


class WhatIfForm:
    """Origin, carrier, destination, departure and distance → the endpoint's p_late. The token
    is looked up for each request and kept in no attribute."""

    def __init__(self, dashboard: DelayDashboard, url: str, model: str):
        import ipywidgets as w

        self.dashboard, self.url, self.model = dashboard, url, model
        self.origin = w.Dropdown(options=AIRPORTS, value=AIRPORTS[1], description="origin")
        self.carrier = w.Dropdown(description="carrier")
        self.dest = w.Dropdown(description="dest")
        self.tailnum = w.Text(description="tail number")
        self.day = w.DatePicker(value=dashboard.end.value, description="date")
        self.hour = w.IntSlider(value=9, min=0, max=23, description="dep. hour")
        self.distance = w.FloatText(description="miles")
        self.button = w.Button(description="Predict", button_style="primary")
        self.answer = w.HTML()
        self.offer_carriers()
        self.origin.observe(lambda _: self.offer_carriers(), names="value")
        self.carrier.observe(lambda _: self.offer_destinations(), names="value")
        self.dest.observe(lambda _: self.fill_route(), names="value")
        self.button.on_click(lambda _: self.submit())

    def offer_carriers(self) -> None:
        """The carriers flying from the origin, busiest first; then their destinations."""
        routes = self.dashboard.routes
        here = routes[routes.origin == self.origin.value]
        busiest = here.groupby(["carrier", "carrier_name"]).flights.sum().sort_values(ascending=False)
        offer(self.carrier, [(name, code) for code, name in busiest.index])
        self.offer_destinations()

    def route_rows(self):
        routes = self.dashboard.routes
        return routes[(routes.origin == self.origin.value) & (routes.carrier == self.carrier.value)]

    def offer_destinations(self) -> None:
        offer(self.dest, list(self.route_rows().dest))
        self.fill_route()

    def fill_route(self) -> None:
        rows = self.route_rows()
        row = rows[rows.dest == self.dest.value]
        if not row.empty:
            self.distance.value, self.tailnum.value = float(row.distance.iloc[0]), str(row.tailnum.iloc[0])

    def request(self) -> dict:
        departure = datetime.combine(self.day.value, datetime.min.time()).replace(hour=self.hour.value)
        return what_if_request(self.origin.value, self.carrier.value, self.dest.value or "", self.tailnum.value,
                               departure, self.distance.value)

    def submit(self) -> None:
        workspace, name = self.dashboard.workspace, self.dashboard.endpoint
        try:
            answer = predict(self.url, endpoint_token(workspace.settings.serving.tokens, name), self.request())
            self.answer.value = f"<b>{html.escape(describe_answer(answer))}</b>"
        except LakebookError as exc:
            self.answer.value = f"<span style='color:#b00'>{describe_error(exc)}</span>"

    def widget(self):
        import ipywidgets as w

        return w.VBox([w.HTML(f"Model endpoint <code>{html.escape(self.dashboard.endpoint)}</code> answers with "
                              f"<code>{html.escape(self.model)}</code>"),
                       w.HBox([self.origin, self.carrier, self.dest]), w.HBox([self.day, self.hour]),
                       w.HBox([self.distance, self.tailnum]), self.button, self.answer])
