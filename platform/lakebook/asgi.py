"""What every lakebook HTTP service shares (Starlette): JSON answers, one error mapping
(errors.to_json), bearer tokens, the refusal of cross-site requests, and the rule that a
service without auth binds to loopback.

Requires the ``ingest`` extra (Starlette); imported only by the services themselves.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from typing import Callable, Iterable
from urllib.parse import urlsplit

import orjson
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from .errors import Backpressure, ConfigError, Forbidden, LakebookError, Unauthorized, error_json, to_json

log = logging.getLogger("lakebook.asgi")


class Json(JSONResponse):
    """A JSON answer rendered by orjson."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def _error_response(request: Request, exc: Exception) -> Response:
    """The answer to an error: a LakebookError with its status and hint; anything else a 500
    whose traceback goes to the log, never to the client."""
    if isinstance(exc, LakebookError):
        status, body = exc.http_status, to_json(exc)
    else:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        status, body = 500, error_json(500, "internal error", "the server log has the details")
    headers = {}
    if isinstance(exc, Backpressure):
        headers["Retry-After"] = str(exc.retry_after_s)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Json(body, status_code=status, headers=headers)


def routing_error_handler(routes_hint: str):
    """A Starlette handler for unknown paths and wrong methods, answering in the same shape."""

    async def handle(request: Request, exc: HTTPException) -> Response:
        return Json(error_json(exc.status_code, exc.detail, routes_hint), status_code=exc.status_code,
                    headers=exc.headers)

    return handle


class ErrorsAndStatuses:
    """ASGI middleware: maps errors raised by handlers to answers (_error_response), and tells
    ``count_status`` the status of every answer."""

    def __init__(self, app, count_status: Callable[[int], None]):
        self.app = app
        self.count_status = count_status

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def counting_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.count_status(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except ClientDisconnect:  # the client hung up mid-request: no one to answer, no server error
            return
        except Exception as exc:
            if started:
                raise
            await _error_response(Request(scope), exc)(scope, receive, counting_send)


class OriginGuard:
    """ASGI middleware against cross-site requests. A browser names the page a request comes
    from in ``Origin``: a request whose Origin is neither the server's own (a loopback name
    or the address it was reached at, on its port) nor in ``allowed`` is refused (403).
    With ``loopback_host`` (a server without tokens) a request whose ``Host`` is not such a
    name is refused too: a page on a name that resolves to 127.0.0.1 (DNS rebinding) is
    same-origin with the server, but sends that name as Host."""

    def __init__(self, app, allowed: Iterable[str] = (), loopback_host: bool = False, setting: str = ""):
        self.app = app
        self.allowed = {origin.rstrip("/").lower() for origin in allowed}
        self.loopback_host = loopback_host
        self.setting = setting

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.check(Headers(scope=scope), scope.get("server"))
        await self.app(scope, receive, send)

    def check(self, headers: Headers, server: tuple | None) -> None:
        host = headers.get("host", "")
        if self.loopback_host and host and not _own_name(_hostname(f"//{host}"), server):  # browsers send one
            raise Forbidden(f"host {host[:100]!r} is not a name of this server",
                            hint="a server without tokens answers requests to 127.0.0.1 or localhost only")
        origin = headers.get("origin")
        if origin is None or origin.rstrip("/").lower() in self.allowed or _same_origin(origin, server):
            return
        raise Forbidden(f"requests from the web page origin {origin[:100]!r} are not accepted",
                        hint=f"list the origin in {self.setting} to accept them" if self.setting else None)


def _hostname(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _own_name(hostname: str | None, server: tuple | None) -> bool:
    """A loopback name or address, or the address the connection came in on."""
    if not hostname:
        return False
    if hostname == "localhost" or hostname.endswith(".localhost") or (server and hostname == str(server[0]).lower()):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _same_origin(origin: str, server: tuple | None) -> bool:
    try:
        url = urlsplit(origin)
        port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    except ValueError:
        return False
    return server is not None and port == server[1] and _own_name(url.hostname, server)


def bearer_token(request: Request) -> bytes:
    """The request's ``Authorization: Bearer`` token (Unauthorized if there is none)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token", hint="send 'Authorization: Bearer <token>'")
    return token.encode()


def token_matches(given: bytes, allowed: Iterable[bytes]) -> bool:
    """Compared in constant time, so a token cannot be guessed from timings."""
    return any(hmac.compare_digest(given, t) for t in allowed)


def _is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback one (IPv4 or IPv6)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
        return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
    except (OSError, ValueError):
        return False


def refuse_exposed_without_auth(service: str, host: str, has_auth: bool, allow_insecure: bool, setting: str) -> None:
    """A service with no credentials configured serves loopback only (unless told otherwise)."""
    if not has_auth and not _is_loopback(host) and not allow_insecure:
        raise ConfigError(f"refusing to serve {service} on {host} without tokens",
                          hint=f"configure {setting}, bind to 127.0.0.1, or pass --insecure-dev")


def serve_until_stopped(app, stopping: str, *, port: int | None = None, sockets: list | None = None) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` (or on ``sockets`` already bound) until SIGINT or
    SIGTERM. uvicorn stops on them and hands them back once it has: to a handler that logs
    ``stopping`` (with the signal), not to Ray's (which exits 15) or the default one, so the
    caller's clean-up, in the ``finally`` around this call, runs and the process exits 0."""
    import signal

    import uvicorn

    def stopped(signum, frame) -> None:
        logging.getLogger("lakebook").info("%s (signal %d)", stopping, signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stopped)
    config = uvicorn.Config(app, host="127.0.0.1", port=port or 0, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=sockets)
