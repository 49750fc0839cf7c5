"""Run the ingest app with uvicorn."""

from __future__ import annotations

from ..asgi import refuse_exposed_without_auth

KEEP_ALIVE_S = 75

DEV_MODE_BANNER = """
************************************************************************
*  lakebook ingest: NO TOKENS CONFIGURED - LOCAL DEV MODE              *
*  Any local process can write events. Set LAKEBOOK_INGEST__TOKENS or  *
*  ingest.tokens_file before exposing this server.                     *
************************************************************************"""


def refuse_unsafe_bind(settings, host: str, allow_insecure: bool) -> None:
    """Refuse, before anything binds, to serve a non-loopback address with no tokens configured."""
    refuse_exposed_without_auth("ingest", host, bool(settings.tokens), allow_insecure,
                                "ingest tokens (LAKEBOOK_INGEST__TOKENS or ingest.tokens_file)")


def serve(workspace, host: str | None = None, port: int | None = None, *,
          flush_interval_s: float | None = None, allow_insecure: bool = False, echo=print) -> None:
    """Serve the ingest API until interrupted; flushes the log on the way out."""
    import uvicorn

    from .app import create_app

    settings = workspace.settings.ingest
    host = host or settings.host
    port = port or settings.port
    refuse_unsafe_bind(settings, host, allow_insecure)
    if not settings.tokens:
        echo(DEV_MODE_BANNER)
    app = create_app(workspace, flush_interval_s=flush_interval_s)
    echo(f"lakebook ingest listening on http://{host}:{port}  (workspace {workspace.root})")
    # Keep-alive outlasts a Retry-After (the flush interval): a client that waits as told and
    # sends again reuses its connection instead of racing the server closing it.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=10, timeout_keep_alive=KEEP_ALIVE_S)
