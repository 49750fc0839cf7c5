"""A webhook receiver on 127.0.0.1: an HTTP server in a thread that keeps every JSON body it is
sent with its arrival time. What the demo shows its alerts with, and what the monitoring
benchmark and tests receive them with; a user can point a ``type: webhook`` channel at it to
watch alerts arrive without any outside service."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    """``bodies`` holds ``(time.perf_counter() at arrival, body)`` in arrival order; ``wait``
    blocks until a body of a given alert status arrives. A context manager that stops it."""

    def __init__(self, path: str = "/hook"):
        self.path = path
        self.bodies: list[tuple[float, dict]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.arrived:
                    receiver.bodies.append((time.perf_counter(), body))
                    receiver.arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # whoever runs it prints what matters
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="lakebook-webhook-receiver", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{self.path}"

    def wait(self, status: str, timeout_s: float, after: int = 0) -> tuple[float, dict] | None:
        """The first body of alert ``status`` (firing or resolved) from index ``after`` on, with
        its arrival; None when none came within ``timeout_s``."""
        def found():
            return [b for b in self.bodies[after:] if b[1].get("status") == status]

        with self.arrived:
            return found()[0] if self.arrived.wait_for(found, timeout_s) else None

    def of(self, alertname: str) -> list[tuple[str, dict]]:
        """``(status, body)`` of every body about alerts named ``alertname``, in arrival order."""
        return [(b["status"], b) for _, b in list(self.bodies) if b.get("labels", {}).get("alertname") == alertname]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
