"""REST handlers of the Lake and Endpoints panels, under ``/lakebook/api/``.

Every handler is authenticated (the Jupyter server's token or login) and does its reading
on a worker thread, so a slow preview never stalls the server. Errors become HTTP statuses
in one place, ``error_status``: a ``LakebookError`` answers with its own ``http_status``
(unknown table 404, bad query 400), invalid parameters 422, anything else 500. The body is
lakebook's one error shape, ``errors.error_json``: ``{"error": {"status", "message", "hint"}}``.
"""

from __future__ import annotations

import json
import logging

import tornado.httputil
import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from pydantic import ValidationError
from tornado.ioloop import IOLoop

from ..errors import LakebookError, error_json
from .api import LakeAPI, PreviewParams
from .endpoints import EndpointsAPI

log = logging.getLogger("lakebook.server")

TABLE_NAME = r"(?P<name>[^/]+)"
ENDPOINT_NAME = r"(?P<name>[^/]+)"


def error_status(exc: BaseException) -> tuple[int, str, str | None]:
    """(HTTP status, message, hint) for an exception raised while answering."""
    if isinstance(exc, LakebookError):
        return exc.http_status, exc.message, exc.hint
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
        )
        return 422, f"invalid parameters: {problems}", None
    if isinstance(exc, tornado.web.HTTPError):
        return exc.status_code, exc.log_message or exc.reason or tornado.httputil.responses.get(
            exc.status_code, "error"), None
    return 500, f"internal error: {type(exc).__name__}", "the Jupyter server log has the details"


class LakebookHandler(ExtensionHandlerMixin, APIHandler):
    """Base of the Lake panel's handlers: JSON answers, errors mapped by ``error_status``."""

    @property
    def lake(self) -> LakeAPI:
        return self.extensionapp.lake

    @property
    def endpoints(self) -> EndpointsAPI:
        return self.extensionapp.endpoints

    async def run(self, work, *args):
        """``work(*args)`` on the server's thread pool; its result is the JSON answer."""
        answer = await IOLoop.current().run_in_executor(None, work, *args)
        self.finish(json.dumps(answer, allow_nan=False))

    def query_params(self) -> dict[str, str]:
        """The query parameters, without the bare number JupyterLab's request helper appends
        to defeat caches (``?limit=5&1795678300655``); anything else unknown is refused."""
        return {key: self.get_query_argument(key) for key in self.request.query_arguments
                if not (key.isdigit() and not self.get_query_argument(key))}

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        status, message, hint = (status_code, tornado.httputil.responses.get(status_code, "error"), None) \
            if exc is None else error_status(exc)
        self.set_status(status)
        self.finish(json.dumps(error_json(status, message, hint)))

    def log_exception(self, typ, value, tb) -> None:
        status = error_status(value)[0] if value is not None else 500
        if status >= 500:
            super().log_exception(typ, value, tb)  # with the traceback
        else:
            log.info("%s %s: %s", status, self._request_summary(), value)


class CatalogHandler(LakebookHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        """Every table of the catalog, by zone."""
        await self.run(self.lake.catalog_json)


class TableHandler(LakebookHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """One table: docs, columns, stats, freshness, lineage."""
        await self.run(self.lake.table_json, name)


class PreviewHandler(LakebookHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """The first rows of a table (``?limit=N``, 1 to 1000, default 100)."""
        params = PreviewParams.model_validate(self.query_params())
        await self.run(self.lake.preview_json, name, params)


class EndpointsHandler(LakebookHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        """The model endpoints with their status and figures (declared ones when not running)."""
        await self.run(self.endpoints.endpoints_json)


class EndpointSchemaHandler(LakebookHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """The endpoint's request fields, each with an example value."""
        await self.run(self.endpoints.schema_json, name)


class PredictHandler(LakebookHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        """The body relayed to the endpoint with the server's token; its answer, status and all."""
        answer = await IOLoop.current().run_in_executor(None, self.endpoints.predict, name, self.request.body)
        self.set_status(answer.status)
        self.finish(json.dumps(answer.body, allow_nan=False))


def api_handlers() -> list[tuple[str, type]]:
    return [
        (r"/lakebook/api/catalog/?", CatalogHandler),
        (rf"/lakebook/api/tables/{TABLE_NAME}/preview/?", PreviewHandler),
        (rf"/lakebook/api/tables/{TABLE_NAME}/?", TableHandler),
        (r"/lakebook/api/endpoints/?", EndpointsHandler),
        (rf"/lakebook/api/endpoints/{ENDPOINT_NAME}/schema/?", EndpointSchemaHandler),
        (rf"/lakebook/api/endpoints/{ENDPOINT_NAME}/predict/?", PredictHandler),
    ]
