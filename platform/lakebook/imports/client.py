"""The HTTP side of an import: requests paced to ``rate_limit``, retried as ``retries`` says.

A 429 waits for its ``Retry-After`` (seconds or an HTTP date; the backoff when it has none);
a 5xx, a timeout or a connection error waits the backoff (doubled after each failed attempt,
at most ``max_backoff``); any other 4xx fails at once with the response's reason. URLs in
messages have their credentials masked (redact.url_without_secrets)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Callable

import httpx

from ..config import environment_value
from ..errors import ImportDefinitionError, ImportFailed
from ..redact import remember, url_without_secrets
from .definitions import Auth, ImportDefinition
from .pages import PageRequest

REFUSED_HINTS = {
    401: "the API did not accept the credential: check the value of {where}",
    403: "the credential from {where} does not reach this resource",
    404: "check url in imports/{name}.yaml",
}


def read_credential(workspace, name: str, auth: Auth | None, environ=None) -> str | None:
    """The credential ``auth`` names (an environment variable's value, or a file's content),
    remembered as a secret of this process (never shown in an error or a log line)."""
    if auth is None:
        return None
    if auth.env:
        value = environment_value(auth.env, environ)
        if not value:
            raise ImportDefinitionError(f"imports/{name}.yaml: auth.env: {auth.env} is not set",
                                        hint=f"export {auth.env}=... (the API's credential) before running the import")
    else:
        path = auth.file if auth.file.is_absolute() else workspace.root / auth.file
        value = _read_file(path, name)
    remember([value])
    return value


def _read_file(path: Path, name: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ImportDefinitionError(f"imports/{name}.yaml: auth.file: cannot read {path}: {exc.strerror}",
                                    hint="write the credential alone in that file (outside git), readable by "
                                         "this user") from None
    if not value:
        raise ImportDefinitionError(f"imports/{name}.yaml: auth.file: {path} is empty",
                                    hint="write the credential alone in that file")
    return value


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (a number, or an HTTP date); None if it
    says nothing usable."""
    if not value:
        return None
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return max(0.0, (at - (now or datetime.now(timezone.utc))).total_seconds())


class Fetcher:
    """GETs of one import's pages over one connection pool."""

    def __init__(self, definition: ImportDefinition, credential: str | None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.definition, self.sleep, self.clock = definition, sleep, clock
        self.headers, self.auth_params = _credential_in(definition.auth, credential)
        self.origin = _origin(httpx.URL(str(definition.url)))
        self.client = httpx.Client(timeout=definition.timeout, follow_redirects=True,
                                   event_hooks={"request": [self._stay_on_origin]})
        self._next_at = 0.0
        self.retried = 0  # attempts that failed and were tried again, this run

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def shown(self, request: PageRequest) -> str:
        """The request's URL as sent, fit for a message (credentials masked)."""
        return url_without_secrets(str(self._url(request)), self.definition.secret_params)

    def get(self, request: PageRequest) -> httpx.Response:
        """The page's response (2xx or 3xx); ImportFailed on a refusal or once retries are used up."""
        retries = self.definition.retries
        for attempt in range(1, retries.max + 2):
            self._pace()
            try:
                response = self.client.get(self._url(request), headers=self.headers)
            except httpx.TransportError as exc:
                problem, wait = f"{type(exc).__name__}: {exc}", retries.delay_s(attempt)
            else:
                if response.status_code < 400:
                    return response
                problem, wait = self._problem(request, response, attempt)
            if attempt > retries.max:
                raise ImportFailed(
                    f"import {self.definition.name}: {self.shown(request)} still failing after {attempt} attempts: "
                    f"{problem}", hint="the API may be down or overloaded; the next run starts again at this page")
            self.retried += 1
            self.sleep(wait)
        raise AssertionError("unreachable")

    def _stay_on_origin(self, request: httpx.Request) -> None:
        """Every request (a next link, a redirect) goes to the import's own origin when it
        carries a credential: the credential is never sent to another host."""
        if (self.headers or self.auth_params) and _origin(request.url) != self.origin:
            scheme, host, port = _origin(request.url)
            raise ImportFailed(
                f"import {self.definition.name}: the API sent the next request to {scheme}://{host}:{port}, "
                f"not to {self.origin[0]}://{self.origin[1]}:{self.origin[2]}: the credential is sent only there",
                hint=f"check the API's next links and redirects (imports/{self.definition.name}.yaml)")

    def _url(self, request: PageRequest) -> httpx.URL:
        """The request's URL with its parameters and any credential parameter added to the query
        it has (a next link's own query is kept: httpx would replace it by an empty ``params``)."""
        return httpx.URL(request.url).copy_merge_params({**request.params, **self.auth_params})

    def _problem(self, request: PageRequest, response: httpx.Response, attempt: int) -> tuple[str, float]:
        """What went wrong and how long to wait before retrying; ImportFailed if it is no use."""
        status = response.status_code
        problem = f"{status} {response.reason_phrase}"
        if status == 429:
            wait = retry_after_s(response.headers.get("retry-after"))
            return problem, self.definition.retries.delay_s(attempt) if wait is None else wait
        if status >= 500:
            return problem, self.definition.retries.delay_s(attempt)
        detail = " ".join(response.text.split())[:200]
        where = self._credential_source()
        hint = REFUSED_HINTS.get(status, "check url, params and auth in imports/{name}.yaml")
        raise ImportFailed(f"import {self.definition.name}: {self.shown(request)} answered {problem}"
                           + (f": {detail}" if detail else ""),
                           hint=hint.format(where=where, name=self.definition.name))

    def _credential_source(self) -> str:
        auth = self.definition.auth
        if auth is None:
            return "auth (none is sent: add auth to the import)"
        return f"${auth.env} (auth.env)" if auth.env else f"{auth.file} (auth.file)"

    def _pace(self) -> None:
        """Wait so that requests go at most ``rate_limit`` a second."""
        if self.definition.rate_limit is None:
            return
        wait = self._next_at - self.clock()
        if wait > 0:
            self.sleep(wait)
        self._next_at = max(self._next_at, self.clock()) + 1 / self.definition.rate_limit


def _credential_in(auth: Auth | None, credential: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query parameters) that carry the credential."""
    if auth is None or credential is None:
        return {}, {}
    if auth.header:
        value = f"{auth.scheme} {credential}" if auth.scheme else credential
        return {auth.header: value}, {}
    return {}, {auth.param: credential}


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port filled in for http and https."""
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)
