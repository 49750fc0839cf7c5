"""A small JSON API of airport statuses for the import tests: a real threaded HTTP server on
127.0.0.1 that pages its records four ways, checks a bearer token, and misbehaves on demand
(429 with Retry-After, a 500 once, a slow page), logging every request it answers. The token
goes in ``Authorization: Bearer`` or, for APIs that take it so, the ``api_key`` parameter."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = "tok-3f9a1c77e2b84d05"
T0 = datetime(2013, 1, 1, 5, 0, tzinfo=timezone.utc)
AIRPORTS = {"EWR": "Newark Liberty Intl", "JFK": "John F Kennedy Intl", "LGA": "La Guardia"}


def statuses(n: int, start: int = 0, bad_every: int = 0) -> list[dict]:
    """``n`` statuses as the API names their fields (``code`` for the contract's ``faa``), one
    airport after another, 10 minutes apart from T0 + ``start`` steps; with ``bad_every``, every
    such record breaks the airport_status contract (a status it does not know)."""
    records = []
    for i in range(start, start + n):
        code = list(AIRPORTS)[i % 3]
        delay = float((i * 7) % 50)
        records.append({"code": code, "name": AIRPORTS[code], "reported_at": _iso(T0 + timedelta(minutes=10 * i)),
                        "delay_minutes": delay, "status": "delayed" if delay >= 15 else "normal"})
        if bad_every and i % bad_every == bad_every - 1:
            records[-1]["status"] = "on fire"
    return records


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusAPI:
    """``GET /<kind>/status`` where kind is ``linked`` (the next page's URL in ``links.next``),
    ``header`` (in the Link header), ``cursor`` (``meta.next_cursor``, sent back as ``cursor``)
    or ``paged`` (``page`` numbers, an empty page at the end). ``since`` keeps the records
    reported after it; ``limit`` is the page size. ``throttle``: request numbers (1-based) that
    get 429 with ``Retry-After``; ``fail_once``: offsets whose first request gets a 500;
    ``delay_s``: how long each page takes."""

    def __init__(self, records: list[dict], *, page_size: int = 10, throttle: set[int] = frozenset(),
                 retry_after: str = "1", fail_once: set[int] = frozenset(), delay_s: float = 0.0):
        self.records = list(records)
        self.page_size, self.throttle, self.retry_after = page_size, set(throttle), retry_after
        self.fail_once, self.delay_s = set(fail_once), delay_s
        self.requests: list[dict] = []  # each answered request: path, query, status, time
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "StatusAPI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def add(self, records: list[dict]) -> None:
        with self._lock:
            self.records += records

    def statuses_answered(self) -> list[int]:
        return [r["status"] for r in self.requests]

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                status, body, headers = api._answer(parts.path, query, self.headers.get("Authorization"))
                with api._lock:
                    api.requests.append({"path": parts.path, "query": query, "status": status, "at": time.monotonic()})
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                                    **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        return Handler

    def _answer(self, path: str, query: dict, authorization: str | None) -> tuple[int, dict, dict]:
        with self._lock:
            number = len(self.requests) + 1
            records = [r for r in self.records if "since" not in query or r["reported_at"] > query["since"]]
        if authorization != f"Bearer {TOKEN}" and query.get("api_key") != TOKEN:
            return 401, {"error": "invalid or missing token"}, {"WWW-Authenticate": "Bearer"}
        if number in self.throttle:
            return 429, {"error": "slow down"}, {"Retry-After": self.retry_after}
        kind = path.strip("/").split("/")[0]
        size = int(query.get("limit", self.page_size))
        offset = self._offset(kind, query, size)
        if offset in self.fail_once:
            self.fail_once.discard(offset)
            return 500, {"error": "the database went away"}, {}
        time.sleep(self.delay_s)
        page = records[offset:offset + size]
        more = offset + size < len(records)
        return self._page(kind, path, query, page, offset + size if more else None)

    @staticmethod
    def _offset(kind: str, query: dict, size: int) -> int:
        if kind == "paged":
            return (int(query.get("page", 1)) - 1) * size
        return int(query.get("offset" if kind != "cursor" else "cursor", 0))

    def _page(self, kind: str, path: str, query: dict, page: list, next_offset: int | None) -> tuple[int, dict, dict]:
        if kind == "paged":
            return 200, {"results": page}, {}
        if kind == "cursor":
            return 200, {"data": page, "meta": {"next_cursor": next_offset}}, {}
        after = None
        if next_offset is not None:
            rest = "&".join(f"{k}={v}" for k, v in {**query, "offset": next_offset}.items())
            after = f"{path}?{rest}"
        if kind == "header":
            return 200, {"data": page}, ({"Link": f'<{self.url}{after}>; rel="next"'} if after else {})
        return 200, {"data": page, "links": {"next": after}}, {}
