"""Training/serving skew of a model endpoint (``lakebook serve check``): the feature values its
predictions used, as the online store served them and ``raw.predictions`` records them, against
the point-in-time offline values of the same features for the same entities at the moment of
each prediction (``features.training_set`` with ``event_timestamp = predicted_at``, the feature
service the model version was trained with), which is what a training set built for those
moments would hold.

Which predictions: those of the endpoint in the lake whose ``predicted_at`` is within ``since``
of its newest one, and of those a sample of ``sample`` picked by a hash of the request id (the
same sample every time the lake holds the same predictions). Numbers agree within
``tolerance`` (relative, and absolute near zero); a null agrees only with a null.

What a difference means: the offline join keeps each view's TTL and the newest row at or
before the prediction; the online store serves whatever it holds. So a difference is a value
the online store served that training would not have seen at that moment: a value older than
the view's TTL (offline: null), one newer than the prediction, a stream value the batch layer
computes otherwise, or a value written to the online store by other means. The offline side
reads the features tables the batch layer published: run the transforms first when the stream
served newer values than the last batch run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ..errors import BadRequest, NotFound
from ..features.windows import duration_us
from ..stream.check import same

EXAMPLES_PER_FEATURE = 5


@dataclass
class FeatureSkew:
    feature: str  # view:feature
    compared: int = 0
    differing: int = 0
    examples: list[dict] = field(default_factory=list)


@dataclass
class SkewReport:
    endpoint: str
    start: datetime | None
    end: datetime | None
    in_window: int
    sampled: int
    unreadable: int  # sampled predictions whose entity or features are not JSON objects
    models: list[str]
    features: list[FeatureSkew]

    @property
    def ok(self) -> bool:
        return not any(f.differing for f in self.features)

    def as_json(self) -> dict:
        return {"ok": self.ok, **asdict(self)}


def check_serving_skew(workspace, endpoint: str, *, sample: int = 200, since: str = "24h",
                       tolerance: float = 1e-9) -> SkewReport:
    """Compare a sample of the endpoint's recent predictions with the offline values (module docstring)."""
    if sample < 1:
        raise BadRequest(f"--sample must be at least 1, not {sample}")
    try:
        window_us = duration_us(since)
    except ValueError as exc:
        raise BadRequest(f"--since: {exc}", hint="e.g. --since 24h") from None
    rows = recent_predictions(workspace, endpoint, sample, window_us)
    readable = [r for r in rows if r["entity"] is not None and r["features"] is not None]
    by_model: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in readable:
        by_model[row["model"], row["version"]].append(row)
    skews: dict[str, FeatureSkew] = {}
    for (model, version), group in sorted(by_model.items()):
        offline = offline_values(workspace, model, version, group)
        for row, values in zip(group, offline):
            compare_prediction(row, values, tolerance, skews)
    times = [r["predicted_at"] for r in rows]
    return SkewReport(endpoint, min(times), max(times), rows[0]["in_window"], len(rows), len(rows) - len(readable),
                      [f"{m}/{v}" for m, v in sorted(by_model)], sorted(skews.values(), key=lambda s: s.feature))


def recent_predictions(workspace, endpoint: str, sample: int, window_us: int) -> list[dict]:
    """The sample, each with its entity and features decoded (None when not a JSON object)."""
    from ..query import LakeSession

    if "predictions" not in workspace.contracts():
        raise NotFound(f"no predictions of endpoint {endpoint!r}: the workspace keeps none",
                       hint="endpoints keep their answers in raw.predictions when the workspace has "
                            "contracts/predictions.yaml (the example workspace ships one)")
    session = LakeSession(workspace)
    found = session.query(
        "WITH p AS (SELECT * FROM raw.predictions WHERE endpoint = :endpoint "
        "           QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY _ingested_at) = 1), "
        "w AS (SELECT * FROM p WHERE predicted_at >= (SELECT max(predicted_at) FROM p) - to_microseconds(:window_us)) "
        "SELECT request_id, predicted_at, model, version, entity, features, count(*) OVER () AS in_window "
        "FROM w ORDER BY hash(request_id), request_id LIMIT :sample",
        {"endpoint": endpoint, "window_us": window_us, "sample": sample}).table.to_pylist()
    if not found:
        known = session.query("SELECT DISTINCT endpoint FROM raw.predictions ORDER BY 1").table.column(0).to_pylist()
        raise NotFound(f"no predictions of endpoint {endpoint!r} in the lake",
                       hint=f"endpoints with predictions: {', '.join(known)}" if known else
                       "predictions reach the lake when the ingest log is flushed (lakebook ingest flush)")
    for row in found:
        row["entity"], row["features"] = _object(row["entity"]), _object(row["features"])
    return found


def offline_values(workspace, model: str, version: str, rows: list[dict]) -> list[dict]:
    """Per prediction, ``{"view:feature": value}`` joined point in time at its ``predicted_at``."""
    import pandas as pd

    from ..features import training_set
    from ..ml import setup_mlflow
    from .predictor import recorded_feature_service, resolve_model

    ref = resolve_model(workspace, f"models:/{model}/{version}")
    service = recorded_feature_service(setup_mlflow(workspace), ref)
    keys = sorted({k for row in rows for k in row["entity"]})
    entity_df = pd.DataFrame([{**{k: row["entity"].get(k) for k in keys}, "event_timestamp": row["predicted_at"]}
                              for row in rows])
    joined = training_set(entity_df, service, workspace, full_feature_names=True)
    columns = [c for c in joined.columns if "__" in c]
    return [{c.replace("__", ":", 1): _value(record[c]) for c in columns}
            for record in joined[columns].to_dict(orient="records")]


def compare_prediction(row: dict, offline: dict, tolerance: float, skews: dict[str, FeatureSkew]) -> None:
    """Add each feature the prediction used to ``skews``, with an example when it differs."""
    for name, served in row["features"].items():
        skew = skews.setdefault(name, FeatureSkew(name))
        skew.compared += 1
        value = offline.get(name)
        if same(served, value, tolerance):
            continue
        skew.differing += 1
        if len(skew.examples) < EXAMPLES_PER_FEATURE:
            skew.examples.append({"request_id": row["request_id"], "predicted_at": row["predicted_at"],
                                  "entity": row["entity"], "served": served, "offline": value,
                                  "problem": _problem(served, value)})


def _problem(served, offline) -> str:
    if offline is None:
        return "no offline value at that time (older than the view's TTL, or not computed yet)"
    if served is None:
        return "the online store had no value"
    return "values differ"


def _object(text: str | None) -> dict | None:
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _value(value: Any):
    """A frame's missing value (NaN, NaT, pd.NA) as None."""
    import pandas as pd

    return None if pd.isna(value) else value
