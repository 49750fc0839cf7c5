"""Drift and model-quality checks: is the data the model sees still the data it learnt from, and
does it still predict well?

- ``feature_drift(<feature_view>.<feature>)`` or ``feature_drift(<zone>.<table>.<column>)``: the
  population stability index (``method: psi``, default) or the two-sample Kolmogorov-Smirnov
  statistic (``method: ks``) of the feature's values of the last ``window`` against its values
  in the training data of the current champion (``models:/<model>@champion``).
- ``prediction_drift(<endpoint>)``: PSI of the endpoint's answers (``raw.predictions``) of the
  last ``window`` against those of the ``baseline`` period before it.
- ``live_auc(<endpoint>)``: ROC AUC of the endpoint's current model version over the last
  ``window`` of predictions whose flights have arrived (``warehouse.prediction_outcomes``).

The training data of a champion: the training notebook logs a sample of its training set's
feature columns on the model's run (``ml.log_training_sample``); a feature view's feature found
there is compared with it. Otherwise (a table's column, or a run without the sample) the
baseline is the table's values in the training window the run recorded
(``training.start_date`` / ``training.end_date`` in ``lakebook/data_lineage.json``,
``ml.log_data_lineage``), the point-in-time offline values the training set was joined from.
Values are read through the DuckDB query engine, sampled to ``sample`` rows each side (default
100,000), so a check costs the same on a year of lake as on a day.

Each function measures and never decides (``measure.py``): None, with a line saying why, when
there is no champion, no recent values or too few outcomes yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, UnknownTable, did_you_mean
from .measure import Measurement

# The share an empty bin is given on either side: PSI stays finite, and a bin that empties (or
# fills from nothing) still weighs heavily, as it should.
EPSILON = 1e-4
METHODS = ("psi", "ks")
ENGINE = "duckdb"  # checks read small samples; the embedded engine answers in milliseconds

FEATURE_OPTIONS = {"method": "psi", "bins": 10, "window": "1d", "sample": 100_000, "model": None,
                   "against": "training_set"}
BASELINES = ("training_set", "training_window")
PREDICTION_OPTIONS = {"bins": 10, "window": "1d", "baseline": "7d", "min_predictions": 30, "sample": 100_000}
AUC_OPTIONS = {"window": "7d", "min_outcomes": 50}


# -- the statistics -----------------------------------------------------------------------------
def _finite(values) -> np.ndarray:
    array = np.asarray(values, dtype="float64").ravel()
    return array[np.isfinite(array)]


def quantile_edges(baseline, bins: int = 10) -> np.ndarray:
    """The inner edges of ``bins`` bins holding equal shares of ``baseline`` (ties merge bins: a
    feature with few distinct values gets fewer, never empty-by-construction, bins)."""
    return np.unique(np.quantile(_finite(baseline), np.linspace(0, 1, bins + 1)[1:-1]))


def bin_shares(values, edges: np.ndarray) -> np.ndarray:
    """The share of ``values`` in each bin; a value equal to an edge belongs to the bin above it,
    and the outer bins are open (values beyond the baseline's range still count)."""
    values = _finite(values)
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(baseline, recent, bins: int = 10) -> float | None:
    """Population stability index of ``recent`` against ``baseline``, over bins cut at the
    baseline's quantiles: sum over bins of (recent share - baseline share) * ln(recent / baseline).
    Below 0.1 is stable, 0.1-0.2 a moderate shift, above 0.2 a large one. None when either side
    has no finite value."""
    baseline, recent = _finite(baseline), _finite(recent)
    if not len(baseline) or not len(recent):
        return None
    edges = quantile_edges(baseline, bins)
    expected = np.clip(bin_shares(baseline, edges), EPSILON, None)
    actual = np.clip(bin_shares(recent, edges), EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks(baseline, recent) -> float | None:
    """The two-sample Kolmogorov-Smirnov statistic (largest gap between the two empirical CDFs,
    0 to 1); None when either side has no finite value."""
    from scipy.stats import ks_2samp

    baseline, recent = _finite(baseline), _finite(recent)
    if not len(baseline) or not len(recent):
        return None
    return float(ks_2samp(baseline, recent).statistic)


def roc_auc(scores, labels) -> float | None:
    """ROC AUC as the rank statistic (Mann-Whitney U over n1 n0, ties sharing their mean rank, as
    ``warehouse.prediction_quality`` computes it); None without both classes."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, dtype="float64"), np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


# -- options ------------------------------------------------------------------------------------
def _options(kind: str, check, defaults: dict[str, Any]) -> dict[str, Any]:
    """The check's options over the kind's defaults, each checked; a ConfigError names the bad one."""
    given = dict(getattr(check, "options", None) or {})
    for key in given:
        if key not in defaults:
            raise ConfigError(f"{kind} has no option {key!r}",
                              hint=did_you_mean(key, list(defaults)) or f"its options: {', '.join(defaults)}")
    options = {**defaults, **given}
    for key, value in options.items():
        options[key] = _checked(kind, key, value)
    return options


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(value) -> float:
    """Seconds, from a number of seconds or ``90s``, ``30m``, ``2h``, ``1d``, ``1w``."""
    match = _DURATION.match(str(value)) if not isinstance(value, bool) else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a positive duration (90s, 30m, 2h, 1d, 1w)")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def _checked(kind: str, key: str, value):
    try:
        if key in ("window", "baseline"):
            return timedelta(seconds=_parse_duration(value))
        if key == "method" and value not in METHODS:
            raise ValueError(f"{value!r} is not one of {', '.join(METHODS)}")
        if key == "against" and value not in BASELINES:
            raise ValueError(f"{value!r} is not one of {', '.join(BASELINES)}")
        if key in ("bins", "sample", "min_predictions", "min_outcomes"):
            number = int(value) if not isinstance(value, bool) and float(value) == int(value) else None
            if number is None or number < (2 if key == "bins" else 1):
                raise ValueError(f"{value!r} is not a whole number of at least {2 if key == 'bins' else 1}")
            return number
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{kind} option {key}: {exc}", hint="e.g. window: 1d, bins: 10, method: psi") from None
    return value


def _span(options: dict[str, Any]) -> str:
    return _duration_text(options["window"])


def _duration_text(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- reading values -----------------------------------------------------------------------------
def _query(workspace, sql: str, params: dict[str, Any]):
    from ..query import session_for

    return session_for(workspace, ENGINE).query(sql, params).df()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def values_between(workspace, table: str, column: str, time_column: str, start: datetime | None,
                   end: datetime, sample: int) -> np.ndarray:
    """The finite values of ``column`` in ``table`` whose ``time_column`` is in [start, end), a
    reservoir sample of ``sample`` of them at most (the same sample for the same data)."""
    since = "TRUE" if start is None else f"{_ident(time_column)} >= :start"
    sql = (f"SELECT v FROM (SELECT CAST({_ident(column)} AS DOUBLE) AS v FROM {table} "
           f"WHERE {since} AND {_ident(time_column)} < :end AND {_ident(column)} IS NOT NULL) AS picked "
           f"USING SAMPLE reservoir({int(sample)} ROWS) REPEATABLE (7)")
    params = {"end": end} if start is None else {"start": start, "end": end}
    return _finite(_query(workspace, sql, params)["v"])


# -- what a feature is --------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureSource:
    """Where a feature's values are: a catalog table's column with the table's event time."""

    table: str
    column: str
    time_column: str
    labels: dict[str, str]


def feature_source(workspace, args: tuple[str, ...]) -> FeatureSource:
    """``<view>.<feature>`` (a Feast feature view reading a lake table) or ``<zone>.<table>.<column>``."""
    parts = args[0].split(".") if len(args) == 1 else []
    if len(parts) == 3:
        return _table_column(workspace, f"{parts[0]}.{parts[1]}", parts[2])
    if len(parts) == 2:
        return _view_feature(workspace, *parts)
    raise ConfigError(f"feature_drift takes one feature, not {', '.join(args) or 'none'}",
                      hint="feature_drift(origin_weather.temp_c) or feature_drift(raw.weather.temp)")


def _table_column(workspace, table: str, column: str) -> FeatureSource:
    from ..catalog import open_catalog

    catalog = open_catalog(workspace)
    try:
        info = catalog.table(table)
    finally:
        catalog.close()
    names = [c.name for c in info.columns]
    if names and column not in names:
        raise ConfigError(f"feature_drift: {table} has no column {column!r}",
                          hint=did_you_mean(column, names) or f"its columns: {', '.join(names)}")
    if not info.event_time_column:
        raise ConfigError(f"feature_drift: {table} has no event time column, so it has no recent values",
                          hint="pick a table whose contract or transform declares event_time")
    return FeatureSource(table, column, info.event_time_column, {"table": table, "column": column})


def _view_feature(workspace, view_name: str, feature: str) -> FeatureSource:
    from ..features.store import feature_store

    store = feature_store(workspace)
    try:
        view = store.get_feature_view(view_name)
    except Exception:
        names = [v.name for v in store.list_feature_views()]
        raise ConfigError(f"feature_drift: no feature view {view_name!r}",
                          hint=did_you_mean(view_name, names) or f"known: {', '.join(names) or 'none'}") from None
    names = [f.name for f in view.features]
    if feature not in names:
        raise ConfigError(f"feature_drift: feature view {view_name} has no feature {feature!r}",
                          hint=did_you_mean(feature, names) or f"its features: {', '.join(names)}")
    read = _view_table(workspace, view)
    if read is None:
        raise ConfigError(f"feature_drift: feature view {view_name} does not read a lake table",
                          hint="name the table's column instead: feature_drift(<zone>.<table>.<column>)")
    table, timestamp = read
    return FeatureSource(table, feature, timestamp, {"feature_view": view_name, "feature": feature, "table": table})


def _view_table(workspace, view) -> tuple[str, str] | None:
    """The catalog table a feature view reads, and its timestamp field. A view's batch source
    reads a table's published folder, ``<lake>/<zone>/<table>/current`` (``lake_source``); the
    registry keeps the path of the lake it was applied in, so the table is also found by the
    path's zone and name when the workspace has moved since."""
    from ..features.lake_views import lake_view
    from ..lake.layout import CURRENT, ZONES

    plain = lake_view(workspace, view)
    if plain is not None:
        return plain.table, plain.timestamp
    source = getattr(view, "batch_source", None)
    parts = Path(getattr(source, "path", "") or "").parts
    if len(parts) >= 3 and parts[-1] == CURRENT and parts[-3] in ZONES:
        return f"{parts[-3]}.{parts[-2]}", source.timestamp_field
    return None


# -- the champion -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Champion:
    """The champion version of a registered model and the window of data it was trained on."""

    model: str
    version: str
    run_id: str
    start: datetime | None
    end: datetime
    training_sample: Any = None  # the sample of its training set the run logged (a DataFrame), if any

    def describe_window(self) -> str:
        start = f"{self.start:%Y-%m-%d}" if self.start else "the start"
        return f"{start} to {self.end:%Y-%m-%d}"


def current_champion(workspace, model: str | None = None) -> Champion | str:
    """The champion of ``model`` (default: the one registered model with a champion), or a line
    saying why there is none."""
    from ..ml.tracking import current_champion as champion_version
    from ..ml.tracking import setup_mlflow

    if workspace.settings.ml.tracking_uri is None and not (workspace.mlflow_dir / "mlflow.db").exists():
        return "no model is registered yet (the workspace has no MLflow store)"  # and a check creates none
    client = setup_mlflow(workspace)
    if model is None:
        named = [m.name for m in client.search_registered_models() if "champion" in (m.aliases or {})]
        if len(named) != 1:
            return ("no registered model has a champion" if not named else
                    f"models {', '.join(sorted(named))} have a champion: set the check's option model")
        model = named[0]
    version = champion_version(client, model)
    if version is None:
        return f"model {model} has no champion (models:/{model}@champion)"
    from ..ml.tracking import training_sample_of

    start, end = _training_window(client, version.run_id)
    return Champion(model, str(version.version), version.run_id, start, end,
                    training_sample_of(client, version.run_id))


def _training_window(client, run_id: str) -> tuple[datetime | None, datetime]:
    """[start, end) of the run's training data, from its recorded training spec; without one,
    everything before the run started."""
    from ..ml.tracking import data_lineage_of

    try:
        spec = data_lineage_of(client, run_id).get("training_spec") or {}
    except Exception:  # an older run without the lineage artifact
        spec = {}
    started = datetime.fromtimestamp(client.get_run(run_id).info.start_time / 1000, timezone.utc)
    return _utc(spec.get("start_date")), _utc(spec.get("end_date")) or started


def _utc(text) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# -- the checks ---------------------------------------------------------------------------------
def feature_drift(workspace, check, now: datetime) -> Measurement:
    """PSI (or KS) of a feature's values of the last ``window`` against the champion's training data."""
    options = _options("feature_drift", check, FEATURE_OPTIONS)
    source = feature_source(workspace, tuple(check.args))
    champion = current_champion(workspace, options["model"])
    if isinstance(champion, str):
        return Measurement(None, options["method"], champion, dict(source.labels))
    return drift_from_training(workspace, source, champion, check, now)


def drift_from_training(workspace, source: FeatureSource, champion: Champion, check, now: datetime) -> Measurement:
    """The measurement of ``feature_drift`` once the feature's table and the champion are known."""
    options = _options("feature_drift", check, FEATURE_OPTIONS)
    method, where = options["method"], f"{source.table}.{source.column}"
    # the version goes in the detail, not the labels: labels identify the alert across promotions
    labels = {**source.labels, "model": champion.model}
    try:
        baseline, against = _baseline(workspace, source, champion, options)
        recent = values_between(workspace, source.table, source.column, source.time_column,
                                now - options["window"], now, options["sample"])
    except UnknownTable:
        return Measurement(None, method, f"{source.table} has no data yet", labels)
    if not len(baseline):
        return Measurement(None, method, f"no values of {where} in {against}", labels)
    if not len(recent):
        return Measurement(None, method, f"no values of {where} in the last {_span(options)}", labels)
    value = psi(baseline, recent, options["bins"]) if method == "psi" else ks(baseline, recent)
    return Measurement(value, method, f"{method.upper()} {value:.3f}: {len(recent):,} values of {where} in the last "
                                      f"{_span(options)} against {len(baseline):,} of {against}", labels)


def _baseline(workspace, source: FeatureSource, champion: Champion, options: dict[str, Any]) -> tuple[np.ndarray, str]:
    """The champion's training values of the feature and what they are: the sample of its
    training set its run logged when the feature is in it (unless ``against: training_window``),
    else the feature's table in its training window. The training set has a row per training
    example (a flight); the table a row per its own key and time (a carrier and day): a view whose
    rows are not the examples' is compared like with like against its training window."""
    feature = source.labels.get("feature")
    logged = champion.training_sample
    if options["against"] == "training_set" and feature and logged is not None and feature in logged.columns:
        return _finite(logged[feature]), f"the training set of {champion.model} v{champion.version}"
    values = values_between(workspace, source.table, source.column, source.time_column,
                            champion.start, champion.end, options["sample"])
    return values, (f"the training window of {champion.model} v{champion.version} "
                    f"({champion.describe_window()})")


def prediction_drift(workspace, check, now: datetime) -> Measurement:
    """PSI of an endpoint's answers of the last ``window`` against those of the ``baseline``
    period just before it."""
    options = _options("prediction_drift", check, PREDICTION_OPTIONS)
    endpoint = _endpoint("prediction_drift", check)
    window, before = options["window"], options["baseline"]
    labels = {"endpoint": endpoint}
    try:
        recent = _predictions(workspace, endpoint, now - window, now, options["sample"])
        baseline = _predictions(workspace, endpoint, now - window - before, now - window, options["sample"])
    except UnknownTable:
        return Measurement(None, "psi", "no predictions yet (raw.predictions)", labels)
    if len(recent):
        labels.update(model=str(recent.model.iloc[-1]))
    for name, frame in (("last " + _span(options), recent), (f"{_duration_text(before)} before", baseline)):
        if len(frame) < options["min_predictions"]:
            return Measurement(None, "psi", f"{len(frame)} predictions of endpoint {endpoint} in the {name}: "
                                            f"fewer than {options['min_predictions']}", labels)
    value = psi(baseline.output, recent.output, options["bins"])
    return Measurement(value, "psi", f"PSI {value:.3f}: {len(recent):,} answers of endpoint {endpoint} in the last "
                                     f"{_span(options)} against {len(baseline):,} in the "
                                     f"{_duration_text(before)} before", labels)


def _endpoint(kind: str, check) -> str:
    if len(check.args) != 1 or not check.args[0]:
        raise ConfigError(f"{kind} takes one endpoint name, not {', '.join(check.args) or 'none'}",
                          hint=f"{kind}(delay)")
    return check.args[0]


def _predictions(workspace, endpoint: str, start: datetime, end: datetime, sample: int):
    sql = ("SELECT predicted_at, model, version, output FROM (SELECT predicted_at, model, version, output "
           "FROM raw.predictions WHERE endpoint = :endpoint AND predicted_at >= :start AND predicted_at < :end "
           "AND output IS NOT NULL) AS picked USING SAMPLE reservoir(" + str(int(sample)) + " ROWS) REPEATABLE (7) "
           "ORDER BY predicted_at")
    return _query(workspace, sql, {"endpoint": endpoint, "start": start, "end": end})


def live_auc(workspace, check, now: datetime) -> Measurement:
    """ROC AUC of the endpoint's current model version (the version of its newest prediction)
    over its predictions of the last ``window`` whose flights have arrived."""
    options = _options("live_auc", check, AUC_OPTIONS)
    endpoint = _endpoint("live_auc", check)
    labels = {"endpoint": endpoint}
    try:
        current = _query(workspace, "SELECT model, version FROM raw.predictions WHERE endpoint = :endpoint "
                                    "AND predicted_at < :now ORDER BY predicted_at DESC LIMIT 1",
                         {"endpoint": endpoint, "now": now})
        if current.empty:
            return Measurement(None, "auc", f"endpoint {endpoint} has made no prediction yet", labels)
        model, version = str(current.model.iloc[0]), str(current.version.iloc[0])
        labels.update(model=model)
        outcomes = _query(workspace, "SELECT p_late, arr_late FROM warehouse.prediction_outcomes "
                                     "WHERE endpoint = :endpoint AND model = :model AND version = :version "
                                     "AND predicted_at >= :start AND predicted_at < :now AND p_late IS NOT NULL",
                          {"endpoint": endpoint, "model": model, "version": version,
                           "start": now - options["window"], "now": now})
    except UnknownTable as exc:
        return Measurement(None, "auc", f"no outcomes yet: {exc.message}", labels)
    return _auc_measurement(outcomes, options, endpoint, labels, version)


def _auc_measurement(outcomes, options: dict[str, Any], endpoint: str, labels: dict[str, str],
                     version: str) -> Measurement:
    which = f"{labels['model']} v{version} at endpoint {endpoint}"
    if len(outcomes) < options["min_outcomes"]:
        return Measurement(None, "auc", f"{len(outcomes)} outcomes of {which} in the last {_span(options)}: "
                                        f"fewer than {options['min_outcomes']}", labels)
    value = roc_auc(outcomes.p_late, outcomes.arr_late.astype(bool))
    if value is None:
        return Measurement(None, "auc", f"the {len(outcomes)} outcomes of {which} in the last {_span(options)} "
                                        "are all late or all on time", labels)
    return Measurement(value, "auc", f"ROC AUC {value:.3f} over {len(outcomes):,} outcomes of {which} in the last "
                                     f"{_span(options)}", labels)


__all__ = ["feature_drift", "prediction_drift", "live_auc", "psi", "ks", "roc_auc", "current_champion"]
