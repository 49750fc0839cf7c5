"""One prediction, in process: a registered model, the online features of the feature service
it was trained with, and a record of every answer for the lake. No Ray here: serving/app.py
runs a ``Predictor`` in each Ray Serve replica.

A request object holds the entity keys of the service's feature views and the model's other
inputs (its signature's columns that no feature provides, e.g. ``distance``); any further
field is kept for the record (``inputs``), so predictions can be joined with outcomes later.
The frame handed to the model is built as the training set was: the request's fields plus
each feature, by name, as Feast serves it. An entity the store does not know still gets a
prediction (the model sees missing values, as in training), listed in ``missing_features``.

Every answer is queued for the ``predictions`` source (contracts/predictions.yaml) and
appended to the ingest log by a background thread, off the request path; the flusher takes it
to the lake like any other event.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from ..errors import ConfigError, LakebookError, ModelRegistryError, RequestInvalid
from .spill import spill, take_spill

log = logging.getLogger("lakebook.serving")

PREDICTIONS = "predictions"
# How long the recorder gathers answers into one append: an append costs ~1 ms of the replica's
# CPU whatever its size (validation and a fsynced commit), a record in it ~10 µs.
GATHER_S = 0.25
_TYPES = {"double": float, "float": float, "long": int, "integer": int, "string": str, "boolean": bool,
          "datetime": datetime}


@dataclass(frozen=True)
class ModelRef:
    """A registered model version (and the alias it was resolved from, if any)."""

    name: str
    version: str
    run_id: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` or ``models:/name/N`` as (name, alias, version)."""
    body = uri.removeprefix("models:/") if uri.startswith("models:/") else None
    name, at, alias = (body or "").partition("@")
    if body and at and name and alias:
        return name, alias, None
    name, slash, version = (body or "").partition("/")
    if body and slash and name and version.isdigit():
        return name, None, version
    raise ModelRegistryError(f"{uri!r} is not a registered model URI",
                             hint="write models:/<name>@<alias> (e.g. models:/flight_delay@champion) or "
                                  "models:/<name>/<version>")


def resolve_model(workspace, model_uri: str) -> ModelRef:
    """The version ``model_uri`` names now (an alias is looked up in the registry)."""
    from ..ml import setup_mlflow

    name, alias, version = parse_model_uri(model_uri)
    client = setup_mlflow(workspace)
    try:
        found = (client.get_model_version_by_alias(name, alias) if alias
                 else client.get_model_version(name, version))
    except Exception:
        known = ", ".join(m.name for m in client.search_registered_models()) or "none"
        raise ModelRegistryError(f"no model version {model_uri} in the registry",
                                 hint=f"registered models: {known}; see 'lakebook models list'") from None
    return ModelRef(name, str(found.version), found.run_id, alias)


def recorded_feature_service(client, ref: ModelRef) -> str:
    """The feature service the model version's training run records."""
    name = client.get_run(ref.run_id).data.params.get("feature_service")
    if not name:
        raise ModelRegistryError(f"{ref.uri} records no feature service in its run",
                                 hint="train with ml.log_data_lineage(ws, tables, feature_service, ...)")
    return name


@dataclass(frozen=True)
class Field:
    """A request field; every one is required."""

    name: str
    type: type


class Predictor:
    """A model version with its features, ready to answer requests (thread-safe ``predict``)."""

    def __init__(self, workspace, ref: ModelRef, endpoint: str):
        import mlflow

        from ..features import feature_store
        from ..ml import setup_mlflow

        self.workspace, self.ref, self.endpoint = workspace, ref, endpoint
        client = setup_mlflow(workspace)
        self.model = mlflow.pyfunc.load_model(ref.uri)
        self._python_model = _python_model(self.model)
        self.service_name = recorded_feature_service(client, ref)
        self.store = feature_store(workspace)
        self.service = self.store.get_feature_service(self.service_name)
        self.views = {p.name: [f.name for f in p.features] for p in self.service.feature_view_projections}
        self.keys = self._join_keys()
        self.fields = self._request_fields()
        self.recorder = PredictionRecorder(workspace)

    # -- what a request holds --------------------------------------------------------------
    def _join_keys(self) -> list[str]:
        keys = []
        for view in self.views:
            for column in self.store.get_feature_view(view).entity_columns:
                if column.name not in keys:
                    keys.append(column.name)
        return keys

    def _request_fields(self) -> list[Field]:
        """The entity keys, then the model's inputs no feature provides."""
        features = {f for names in self.views.values() for f in names}
        inputs = self.model.metadata.get_input_schema().inputs
        fields = [Field(k, str) for k in self.keys]
        for spec in inputs:
            if spec.name not in features and spec.name not in self.keys:
                kind = getattr(spec.type, "name", str(spec.type))
                fields.append(Field(spec.name, _TYPES.get(kind, str)))
        return fields

    def request_schema(self) -> dict:
        """JSON schema of one request object."""
        names = {float: "number", int: "integer", str: "string", bool: "boolean", datetime: "string"}
        properties = {f.name: {"type": names[f.type], **({"format": "date-time"} if f.type is datetime else {})}
                      for f in self.fields}
        return {"title": f"{self.endpoint} request", "type": "object", "properties": properties,
                "required": [f.name for f in self.fields], "additionalProperties": True}

    def parse(self, body: Any) -> list[dict]:
        """One object or a list of them, each checked against the request fields."""
        rows = body if isinstance(body, list) else [body]
        if not rows:
            raise RequestInvalid([{"loc": [], "msg": "send one object or a non-empty list of objects"}])
        details, parsed = [], []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                details.append({"loc": [i], "msg": "must be an object"})
                continue
            checked, problems = _checked(row, self.fields)
            details += [{"loc": [i, name], "msg": msg} for name, msg in problems]
            parsed.append(checked)
        if details:
            raise RequestInvalid(details)
        return parsed

    # -- answers -------------------------------------------------------------------------------
    def predict(self, rows: list[dict]) -> list[dict]:
        """One answer per parsed row, in order; each is also queued for the lake."""
        import pandas as pd

        started = time.perf_counter()
        entity_rows = [{k: row[k] for k in self.keys} for row in rows]
        served = self.store.get_online_features(features=self.service, entity_rows=entity_rows)
        served = served.to_dict(include_event_timestamps=True)
        frame = pd.DataFrame([{f.name: row[f.name] for f in self.fields} for row in rows])
        for names in self.views.values():
            for name in names:
                frame[name] = pd.to_numeric(pd.Series(served[name], dtype="object"), errors="coerce")
        p = self._python_model(frame) if self._python_model else self.model.predict(frame)
        latency_ms = (time.perf_counter() - started) * 1000 / len(rows)
        answers = [self._answer(i, rows[i], float(p[i]), served) for i in range(len(rows))]
        self.recorder.add([self._record(a, r, served, i, latency_ms) for i, (a, r) in enumerate(zip(answers, rows))])
        return answers

    def _answer(self, i: int, row: dict, p: float, served: dict) -> dict:
        now, ages, missing = time.time(), {}, []
        for view, names in self.views.items():  # Feast stamps a value it does not have too: skip those
            present = [n for n in names if served[n][i] is not None]
            missing += [f"{view}:{n}" for n in names if n not in present]
            known = [_seconds(s) for n in present if (s := served[f"{n}__ts"][i]) is not None]
            ages[view] = round(now - max(known), 3) if known else None
        return {"p_late": p, "model": self.ref.name, "version": self.ref.version,
                "request_id": uuid.uuid4().hex, "feature_age_s": ages, "missing_features": missing}

    def _record(self, answer: dict, row: dict, served: dict, i: int, latency_ms: float) -> dict:
        features = {f"{v}:{n}": served[n][i] for v, names in self.views.items() for n in names}
        return {"request_id": answer["request_id"], "predicted_at": _iso_now(), "endpoint": self.endpoint,
                "model": self.ref.name, "version": self.ref.version, "output": answer["p_late"],
                "latency_ms": latency_ms, "entity": _json({k: row[k] for k in self.keys}),
                "inputs": _json({k: v for k, v in row.items() if k not in self.keys}), "features": _json(features),
                "feature_age_s": _json(answer["feature_age_s"]), "missing_features": _json(answer["missing_features"])}

    def close(self) -> None:
        self.recorder.close()


def _python_model(model):
    """The model's own ``predict`` on a frame, when it is a lakebook python model: it skips
    MLflow's per-call schema enforcement (``parse`` checked the request fields already)."""
    try:
        inner = model.unwrap_python_model()
    except Exception:
        return None
    return (lambda frame: inner.predict(None, frame)) if hasattr(inner, "predict") else None


def _checked(row: dict, fields: list[Field]) -> tuple[dict, list[tuple[str, str]]]:
    """The row with each request field converted to its type, and what was wrong."""
    out, problems = dict(row), []
    for f in fields:
        value = row.get(f.name)
        if value is None:
            problems.append((f.name, "required"))
            continue
        try:
            out[f.name] = _convert(value, f.type)
        except (TypeError, ValueError):
            problems.append((f.name, f"must be {'a date-time' if f.type is datetime else f.type.__name__}"))
    return out, problems


def _convert(value: Any, kind: type):
    if kind is str:
        if not isinstance(value, str) or not value:
            raise ValueError
        return value
    if isinstance(value, bool) and kind is not bool:
        raise TypeError
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError
        return value
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value) if isinstance(value, (int, float)) else _int_text(value)
    if kind is float:
        if isinstance(value, str):
            raise TypeError
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _int_text(value) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise TypeError


def _seconds(stamp) -> float:
    return stamp.timestamp() if isinstance(stamp, datetime) else float(stamp)


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _json(value) -> str:
    """Compact JSON (a value that is not a number is null, as JSON has no NaN)."""
    return orjson.dumps(value, default=str).decode()


class PredictionRecorder:
    """Appends prediction records to the ingest log from a thread of its own; ``add`` never
    waits for the log. Records that cannot be written are kept in the log's quarantine by the
    contract check, or, if the log itself fails, retried with the next batch; those the log
    still refuses at ``close`` go to the workspace's spill file (spill.py), which the next
    recorder of the workspace appends to the log before any record of its own."""

    def __init__(self, workspace, max_group: int = 512, gather_s: float = GATHER_S):
        from ..ingest import open_ingest_log

        try:
            self.contract = workspace.contract(PREDICTIONS)
        except LakebookError:
            raise ConfigError(f"the workspace has no {PREDICTIONS!r} contract, so answers could not be kept",
                              hint="add contracts/predictions.yaml (the example workspace ships one)") from None
        self._log, self._max_group, self._gather_s = open_ingest_log(workspace), max_group, gather_s
        self.spill_path = workspace.predictions_spill_path
        self.unspilled: int | None = None  # records taken from the spill file, once done
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.written = 0
        self.failure: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="lakebook-predictions", daemon=True)
        self._thread.start()

    def add(self, records: list[dict]) -> None:
        self._queue.put(records)

    def close(self, timeout_s: float = 30) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self._take_spill()
        except Exception as exc:  # the log is unavailable: the next write tries again
            self.failure = exc
            log.warning("cannot append the spilled predictions to the ingest log yet: %s", exc)
        pending, stop = [], False
        while not stop:
            item = self._queue.get()
            stop = item is None
            pending += item or []
            until = time.monotonic() + self._gather_s
            while not stop and len(pending) < self._max_group:
                try:
                    more = self._queue.get(timeout=max(until - time.monotonic(), 0))
                except queue.Empty:
                    break
                stop = more is None
                pending += more or []
            pending = self._write(pending, last=stop)

    def _write(self, events: list[dict], last: bool) -> list[dict]:
        """Append the events; those left to write (all of them when the log failed, none
        after the last write: what the log refused then is spilled)."""
        if not events:
            return []
        try:
            self._take_spill()
            self._append(events)
        except Exception as exc:  # the log is unavailable: keep them for the next batch
            self.failure = exc
            log.warning("cannot append %d predictions to the ingest log yet: %s", len(events), exc)
            if last:
                self._spill(events)
                return []
            time.sleep(0.5)
            return events
        self.written += len(events)
        self.failure = None
        return []

    def _append(self, events: list[dict]) -> None:
        from ..ingest.records import validate_to_records

        outcome = validate_to_records(self.contract, PREDICTIONS, events, "serving", time.time_ns() // 1000)
        self._log.append(outcome.records)

    def _take_spill(self) -> None:
        """Append what an earlier recorder of the workspace spilled, once."""
        if self.unspilled is None:
            self.unspilled = take_spill(self.spill_path, self._append)
            if self.unspilled:
                log.info("appended %d predictions spilled by an earlier replica", self.unspilled)

    def _spill(self, events: list[dict]) -> None:
        try:
            spill(self.spill_path, events)
        except OSError as exc:
            log.error("lost %d predictions: neither the ingest log nor %s took them (%s)",
                      len(events), self.spill_path, exc)
            return
        log.warning("kept %d predictions in %s: the next replica appends them", len(events), self.spill_path)
