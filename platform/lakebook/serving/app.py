"""One Ray Serve application per endpoint, named after it under ``/<name>``: a FastAPI ingress
deployment whose replicas each hold a ``Predictor``.

``POST /predict`` takes one request object or a list and answers in kind (422 with a reason
per field for a bad one); ``GET /health``; OpenAPI docs at ``/docs`` with the model's request
schema. Bearer tokens are checked here (endpoints.authorize). Requests are batched
(``@serve.batch``) into one model call. The model version comes in ``user_config`` only:
``reconfigure`` loads the new ``Predictor`` beside the old and swaps them between batches, so a
promotion costs no request (see ``application`` for why Serve reconfigures in place). Each
replica reports its figures to the serving service's ``Figures`` actor every second.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path

import ray
from ray import serve
from starlette.requests import Request  # at module level: FastAPI resolves the routes' annotations here

from ..errors import BadRequest, LakebookError, ServiceError, to_json
from .endpoints import (
    Current, ReplicaFigures, aggregate, authorize, deployment_options, merged_latency, predict_grouped, token_bytes,
    user_config,
)

log = logging.getLogger("lakebook.serving")
FIGURES_ACTOR, NAMESPACE = "lakebook-serving-figures", "lakebook"
VERSION_HEADER = "x-lakebook-model-version"
ROUTES = "POST /predict, GET /health, GET /docs"
REPORT_EVERY_S = 1.0
PREDICT_PATH = "/predict"


@serve.deployment(name="endpoint")
@serve.ingress()
class Endpoint:
    """One replica of an endpoint. Its settings (and so its tokens) are read from the workspace
    in the replica's own environment: nothing secret passes through Serve."""

    async def __init__(self, workspace_root: str, name: str, max_batch_size: int, batch_wait_timeout_s: float):
        from ..workspace import Workspace

        self.workspace = Workspace.load(workspace_root)
        self.name = name
        self.tokens = token_bytes(self.workspace.settings.serving.tokens)
        self.current = Current()
        self.figures = ReplicaFigures()
        self.predict_batch.set_max_batch_size(max_batch_size)
        self.predict_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self._replica = serve.get_replica_context().replica_id.unique_id
        self._reporter = asyncio.get_running_loop().create_task(self._report_forever())

    async def reconfigure(self, config: dict) -> None:
        """Answer with the model version ``config["model_uri"]`` names from the next batch on."""
        uri = config["model_uri"]
        if self.current.value is None or self.current.value.ref.uri != uri:
            predictor = await asyncio.to_thread(self._load, uri)
            self.current.swap(predictor)
            log.info("endpoint %s answers with %s", self.name, uri)

    def _load(self, uri: str):
        from .predictor import Predictor, resolve_model

        return Predictor(self.workspace, resolve_model(self.workspace, uri), self.name)

    def __serve_build_asgi_app__(self):
        return build_api(self)

    async def answer(self, request: Request) -> tuple[dict | list, str]:
        """The answer to one ``POST /predict``, and the version that gave it."""
        authorize(request, self.tokens, self.name)
        body = await json_body(request)
        with self.current.use() as predictor:
            answers = await self.predict_batch(predictor, predictor.parse(body))
        return (answers if isinstance(body, list) else answers[0]), predictor.ref.version

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def predict_batch(self, predictors: list, requests: list[list[dict]]) -> list[list[dict]]:
        return await asyncio.to_thread(predict_grouped, predictors, requests)

    async def _report_forever(self) -> None:
        sent = None
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            snapshot = self.figures.snapshot()
            if snapshot != sent and _report(self.name, self._replica, snapshot):
                sent = snapshot

    def __del__(self):  # Serve calls it when it stops the replica: the queued predictions are flushed
        if hasattr(self, "_reporter"):
            self._reporter.cancel()
        if getattr(self, "current", None) is not None and self.current.value is not None:
            self.current.value.close()


def _report(endpoint: str, replica: str, snapshot: dict) -> bool:
    try:
        figures = ray.get_actor(FIGURES_ACTOR, namespace=NAMESPACE)
    except ValueError:  # no serving service collects them (an app run by hand)
        return False
    figures.report.remote(endpoint, replica, snapshot)
    return True


async def json_body(request):
    import orjson

    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}", hint="send one JSON object or a JSON array of them") from None


# -- the HTTP side ------------------------------------------------------------------------------
def build_api(endpoint: Endpoint):
    """The endpoint's FastAPI app. The body of ``/predict`` is read and checked by the
    predictor, not by a typed parameter: its schema is the model's, known only at run time, and
    ``openapi()`` puts it into the docs."""
    from fastapi import FastAPI
    from starlette.exceptions import HTTPException

    from ..asgi import Json, routing_error_handler

    api = FastAPI(title=f"lakebook endpoint {endpoint.name}", docs_url="/docs", openapi_url="/openapi.json")
    api.add_exception_handler(HTTPException, routing_error_handler(ROUTES))
    api.add_middleware(FiguresMiddleware, figures=endpoint.figures)

    @api.post(PREDICT_PATH, summary="p_late for one flight or a list of flights")
    async def predict(request: Request):
        try:
            answer, version = await endpoint.answer(request)
        except Exception as exc:
            return error_answer(exc, endpoint.name)
        return Json(answer, headers={VERSION_HEADER: version})

    @api.get("/health")
    async def health():
        predictor = endpoint.current.value
        return Json({"status": "ok" if predictor else "loading", "endpoint": endpoint.name,
                     "model": predictor.ref.uri if predictor else None})

    api.openapi = lambda: openapi_with_request_schema(api, endpoint)
    return api


def error_answer(exc: Exception, endpoint: str):
    """A LakebookError as its status and JSON (with ``details`` per field for a 422); anything
    else a 500 whose traceback goes to the replica's log only."""
    from ..asgi import Json

    if not isinstance(exc, LakebookError):
        log.exception("endpoint %s failed to answer", endpoint)
        exc = ServiceError("the model failed to answer", hint=f"see 'lakebook serve logs {endpoint}'")
    body = to_json(exc)
    if getattr(exc, "details", None) is not None:
        body["error"]["details"] = exc.details
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else {}
    return Json(body, status_code=exc.http_status, headers=headers)


def openapi_with_request_schema(api, endpoint: Endpoint) -> dict:
    """FastAPI's OpenAPI document with the predictor's request schema as the body of
    ``/predict`` (one object or a list of them). Built on each call: the model may change."""
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=api.title, version=api.version, routes=api.routes)
    predictor = endpoint.current.value
    if predictor is None:
        return schema
    one = {"$ref": "#/components/schemas/PredictionRequest"}
    schema.setdefault("components", {}).setdefault("schemas", {})["PredictionRequest"] = predictor.request_schema()
    schema["paths"][PREDICT_PATH]["post"]["requestBody"] = {"required": True, "content": {"application/json": {
        "schema": {"oneOf": [one, {"type": "array", "items": one}]}}}}
    schema["info"]["description"] = f"answers with {predictor.ref.uri}"
    return schema


class FiguresMiddleware:
    """Counts each ``POST /predict`` by its status and latency."""

    def __init__(self, app, figures: ReplicaFigures):
        self.app, self.figures = app, figures

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith(PREDICT_PATH):
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def send_counting(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            self.figures.record(status[0], (time.perf_counter() - started) * 1000)


# -- the service's side -------------------------------------------------------------------------
@ray.remote(num_cpus=0)
class Figures:
    """The replicas' last reports, by endpoint and replica (a replica that died keeps its last)."""

    def __init__(self):
        self.reports: dict[str, dict[str, dict]] = {}

    def report(self, endpoint: str, replica: str, snapshot: dict) -> None:
        self.reports.setdefault(endpoint, {})[replica] = snapshot

    def forget(self, endpoint: str) -> None:
        self.reports.pop(endpoint, None)

    def summary(self) -> dict[str, dict]:
        """Each endpoint's figures (``aggregate``) and its latency histogram's counts (``latency``)."""
        return {endpoint: {**aggregate(replicas.values()), "latency": merged_latency(replicas.values()).counts}
                for endpoint, replicas in self.reports.items()}


def figures_actor():
    """The serving service's Figures actor (made by the first caller; it lives as long as the
    process that made it stays connected)."""
    return Figures.options(name=FIGURES_ACTOR, namespace=NAMESPACE, get_if_exists=True).remote()


CODE_VERSION = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py")))).hexdigest()


def application(workspace, name: str, settings, model_uri: str):
    """The Serve application of endpoint ``name`` answering with ``model_uri``.

    Serve restarts a deployment's replicas when its code version changes, and ``serve.run``
    gives a deployment a random one each time unless it has its own (ray/serve/api.py
    ``_run``: ``deployment._version or get_random_string()``). Pinned to this package's source
    and the replicas' arguments, a run that changes only ``user_config`` is a lightweight
    update: Serve calls ``reconfigure`` on the live replicas (serve/_private/version.py
    ``requires_actor_restart``)."""
    args = (str(workspace.root), name, settings.max_batch_size, settings.batch_wait_timeout_s)
    version = hashlib.sha256(f"{CODE_VERSION}{args}{workspace.profile}".encode()).hexdigest()[:16]
    return Endpoint.options(version=version, _internal=True, user_config=user_config(model_uri),
                            **deployment_options(settings, workspace.settings.serving.access_log,
                                                 workspace.profile)).bind(*args)
