"""The ingest baseline: a no-op Starlette endpoint run by uvicorn with the same settings as
``lakebook ingest serve`` (lakebook/ingest/server.py). It reads the body, parses it with
orjson one line at a time (as lakebook's decode_events does for NDJSON) and answers
``{"accepted": n}``. No validation, no log, no fsync.

    python bench/noop_server.py --port 8799
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def post_events(request: Request) -> Response:
    body = await request.body()
    loads = orjson.loads
    n = 0
    for line in body.split(b"\n"):
        if line.strip():
            loads(line)
            n += 1
    return Response(orjson.dumps({"accepted": n, "rejected": []}), media_type="application/json")


async def health(request: Request) -> Response:
    return Response(b'{"status":"ok","backlog_events":0}', media_type="application/json")


app = Starlette(routes=[
    Route("/v1/events/{source}", post_events, methods=["POST"]),
    Route("/health", health, methods=["GET"]),
])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    # Same call as lakebook.ingest.server.serve (loop/http "auto": uvloop + httptools when installed).
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=10, timeout_keep_alive=75)


if __name__ == "__main__":
    main()
