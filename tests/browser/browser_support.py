"""What the browser tests share: Debian's Chromium, the environment `lakebook up` runs in
(a HOME and Jupyter folders of the test's own; the lab extension built from the sources
under test when there is a build), and opening JupyterLab and a sidebar panel."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LAB_BUILD = REPO / "platform" / "lakebook" / "labextension"


def lab_environment(home: Path) -> dict[str, str]:
    """This process's environment without Jupyter or lakebook settings, with ``home`` as HOME
    and Jupyter's folders under it. The extension built in this tree (``jlpm build`` writes
    it to platform/lakebook/labextension) comes first: JupyterLab takes the first extension of
    a name on its path, and JUPYTER_PATH leads that path (the user's data folder follows the
    virtualenv's), so the test sees these sources even if another build is installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "LAKEBOOK_"))}
    data = home / ".local/share/jupyter"
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"), JUPYTER_DATA_DIR=str(data),
               JUPYTER_RUNTIME_DIR=str(data / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(home / "lab-workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"), IPYTHONDIR=str(home / ".ipython"),
               MLFLOW_DISABLE_TELEMETRY="true")
    if (LAB_BUILD / "package.json").exists():
        (home / "jupyter-path" / "labextensions").mkdir(parents=True)
        (home / "jupyter-path" / "labextensions" / "lakebook-lab").symlink_to(LAB_BUILD)
        env["JUPYTER_PATH"] = str(home / "jupyter-path")
    return env


@contextmanager
def lakebook_up(root: Path, env: dict[str, str], timeout_s: float = 300, options: tuple[str, ...] = ()):
    """`lakebook up` (with ``options``) on free loopback ports until the block ends (then Ctrl-C,
    which must end it with 0); yields the lab's base URL and token."""
    from lakebook.services import free_port
    from test_up import LAB_URL, Output

    up = subprocess.Popen(
        [sys.executable, "-m", "lakebook", "-w", str(root), "up", "--port", str(free_port()),
         "--ingest-port", str(free_port()), *options],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    output = Output(up.stdout)
    try:
        found = output.wait_for(LAB_URL, timeout_s=timeout_s)
        yield found["base"], found["token"]
        up.send_signal(signal.SIGINT)
        assert up.wait(120) == 0, output.drain()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def open_lab(page, base: str, token: str, path: str = "") -> None:
    """JupyterLab in a layout workspace of this test's own (nothing restored from another test)."""
    workspace = re.sub(r"\W+", "-", os.environ.get("PYTEST_CURRENT_TEST", "test").split(" ")[0])[-60:]
    page.goto(f"{base}/lab/workspaces/{workspace}{'/tree/' + path if path else ''}?token={token}")
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=180_000)


def open_side_panel(page, panel_id: str):
    """Open a sidebar panel with its tab; a click while the layout is still being set up can be
    undone by it, so click until the panel stays open."""
    tab = page.locator(f'.jp-SideBar [data-id="{panel_id}"]')
    tab.wait_for()
    panel = page.locator(f"#{panel_id}")
    for _ in range(10):
        if not panel.is_visible():
            tab.click()
        page.wait_for_timeout(500)
        if panel.is_visible():
            return panel
    raise AssertionError(f"the panel {panel_id} did not open")
