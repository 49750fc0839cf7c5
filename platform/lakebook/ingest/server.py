"""Run the ingest app with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import socket

from ..errors import ConfigError

log = logging.getLogger("lakebook.ingest.server")

DEV_MODE_BANNER = """
************************************************************************
*  lakebook ingest: NO TOKENS CONFIGURED - LOCAL DEV MODE              *
*  Any local process can write events. Set LAKEBOOK_INGEST__TOKENS or  *
*  ingest.tokens_file before exposing this server.                     *
************************************************************************"""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def serve(workspace, host: str | None = None, port: int | None = None, *,
          flush_interval_s: float | None = None, allow_insecure: bool = False, echo=print) -> None:
    """Serve the ingest API until interrupted; flushes the log on the way out."""
    import uvicorn

    from .app import create_app

    settings = workspace.settings.ingest
    host = host or settings.host
    port = port or settings.port
    if not settings.tokens:
        if not is_loopback(host) and not allow_insecure:
            raise ConfigError(
                f"refusing to serve on {host} without tokens",
                hint="configure ingest tokens, bind to 127.0.0.1, or pass --insecure-dev",
            )
        echo(DEV_MODE_BANNER)
    app = create_app(workspace, flush_interval_s=flush_interval_s)
    echo(f"lakebook ingest listening on http://{host}:{port}  (workspace {workspace.root})")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=10)
