"""What the Endpoints panel's REST API answers: the model endpoints of the workspace as the
serving service reports them, their request schema, and predictions relayed to them.

Invariants: the serving token is read from the workspace settings of the Jupyter server and
added to the relayed request here; it never goes to the browser, and an answer relayed back is
masked like every lakebook error. When the serving service is not running the endpoints the
workspace would serve are listed with status ``not running`` (never an error: the panel shows
them with the hint). Example values are the model version's own input example, read once per
version.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import EndpointUnavailable, ServiceError
from ..redact import mask
from ..serving.endpoints import endpoint_token, reachable

log = logging.getLogger("lakebook.server")

NOT_RUNNING = "not running"
STATUS_TIMEOUT_S = 5
PREDICT_TIMEOUT_S = 60
FIGURES = ("requests", "errors", "rejected", "p50_ms", "p99_ms")


@dataclass(frozen=True)
class Relayed:
    """An endpoint's answer as it came: its HTTP status and JSON body."""

    status: int
    body: Any


class EndpointsAPI:
    """The model endpoints of the workspace ``workspace()`` returns (the Lake panel's)."""

    def __init__(self, workspace: Callable[[], Any]):
        self.workspace = workspace
        self._examples: dict[str, dict] = {}
        self._examples_lock = threading.Lock()

    # -- the list -------------------------------------------------------------------------------
    def endpoints_json(self) -> dict:
        """The serving service's status, or the endpoints it would serve, marked not running."""
        from ..serving.server import NOT_RUNNING_HINT, admin_request

        workspace = self.workspace()
        try:
            return admin_request(workspace, "GET", "/status", timeout_s=STATUS_TIMEOUT_S)
        except ServiceError as exc:
            if exc.hint != NOT_RUNNING_HINT:
                raise
            return {"running": False, "endpoints": not_running_rows(workspace), "message": exc.message,
                    "hint": NOT_RUNNING_HINT}

    def running_endpoint(self, name: str) -> dict:
        """The status row of endpoint ``name`` of the running service."""
        from ..serving.endpoints import require_known
        from ..serving.server import NOT_RUNNING_HINT

        status = self.endpoints_json()
        rows = {row["name"]: row for row in status["endpoints"]}
        require_known(name, rows)
        if not status["running"]:
            raise EndpointUnavailable(f"endpoint {name!r} is not running: the model endpoints' service is not",
                                      hint=NOT_RUNNING_HINT)
        return rows[name]

    # -- one endpoint ---------------------------------------------------------------------------
    def predict(self, name: str, body: bytes) -> Relayed:
        """``body`` posted to the endpoint's ``/predict`` with the Lab's token for it."""
        row = self.running_endpoint(name)
        answer = self._call(row, "POST", "/predict", content=body,
                            headers={"Content-Type": "application/json"})
        if answer.status == 401:
            answer.body.setdefault("error", {})["hint"] = missing_token_hint(name)
        return answer

    def schema_json(self, name: str) -> dict:
        """The endpoint's request fields (from its OpenAPI document), each with an example."""
        row = self.running_endpoint(name)
        answer = self._call(row, "GET", "/openapi.json")
        schema = (answer.body.get("components", {}).get("schemas", {}).get("PredictionRequest")
                  if answer.status == 200 and isinstance(answer.body, dict) else None)
        if schema is None:
            raise EndpointUnavailable(f"endpoint {name!r} has no request schema yet (status {row['status']})",
                                      hint="it is loading its model; try again in a few seconds")
        examples = self.examples(row["uri"]) if row.get("uri") else {}
        return {"name": name, "model": row["model"], "uri": row.get("uri"), "version": row.get("version"),
                "fields": request_fields(schema, examples)}

    def examples(self, model_uri: str) -> dict:
        """The first row of the model version's input example ({} without one), cached."""
        with self._examples_lock:
            if model_uri not in self._examples:
                self._examples[model_uri] = input_example(self.workspace(), model_uri)
            return self._examples[model_uri]

    def _call(self, row: dict, method: str, path: str, **kwargs) -> Relayed:
        import httpx

        token = endpoint_token(self.workspace().settings.serving.tokens, row["name"])
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        try:
            answer = httpx.request(method, reachable(row["url"]) + path, headers=headers,
                                   timeout=PREDICT_TIMEOUT_S, **kwargs)
        except httpx.TransportError as exc:
            raise EndpointUnavailable(f"endpoint {row['name']!r} does not answer: {exc}",
                                      hint=f"see 'lakebook serve logs {row['name']}'") from None
        return Relayed(answer.status_code, relayed_body(answer))


# -- pure helpers ---------------------------------------------------------------------------------
def not_running_rows(workspace) -> list[dict]:
    """A status row per endpoint the serving service would deploy, with status ``not running``."""
    from ..serving.endpoints import all_endpoints

    settings = workspace.settings.serving
    return [{"name": name, "model": endpoint.model, "uri": None, "version": None, "status": NOT_RUNNING,
             "url": f"http://{settings.host}:{settings.port}/{name}", "problem": None,
             "declared": name in settings.endpoints, **dict.fromkeys(FIGURES)}
            for name, endpoint in sorted(all_endpoints(workspace).items())]


def missing_token_hint(name: str) -> str:
    return (f"the Jupyter server has no serving token for {name!r}: put one for {name!r} or '*' in "
            "serving.tokens_file (JupyterLab gets no secrets from the environment)")


def relayed_body(answer) -> Any:
    """The endpoint's JSON (an error's text masked), or its text as a lakebook error."""
    try:
        body = answer.json()
    except ValueError:
        body = {"error": {"status": answer.status_code, "message": answer.text[:2000], "hint": None}}
    return json.loads(mask(json.dumps(body))) if answer.status_code >= 400 else body


def request_fields(schema: dict, examples: dict) -> list[dict]:
    """The properties of a request's JSON schema as form fields, in the schema's order."""
    required = set(schema.get("required", []))
    return [{"name": name, "type": spec.get("type", "string"), "format": spec.get("format"),
             "required": name in required, "example": field_example(spec, examples.get(name))}
            for name, spec in schema.get("properties", {}).items()]


def field_example(spec: dict, fallback: Any) -> Any:
    """The schema's own example of a field, else ``fallback``."""
    if spec.get("examples"):
        return spec["examples"][0]
    return spec.get("example", fallback)


def input_example(workspace, model_uri: str) -> dict:
    """The first row of the input example logged with ``model_uri``, JSON-ready; {} when the
    model has none or it cannot be read (the form then has empty fields)."""
    from ..ml import setup_mlflow

    setup_mlflow(workspace)
    from mlflow.models import Model

    try:
        example = Model.load(model_uri).load_input_example(model_uri)
    except Exception as exc:  # an example is a convenience: the form works without one
        log.warning("no input example of %s: %s", model_uri, exc)
        return {}
    if example is None or not hasattr(example, "head"):
        return {}
    return json.loads(example.head(1).to_json(orient="records", date_format="iso"))[0]
