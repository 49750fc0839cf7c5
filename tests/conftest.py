"""Shared fixtures: every test gets its own workspace copy and its own HOME / Jupyter /
IPython / Ray / MLflow locations, and no LAKEBOOK_* variable leaks in from outside."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

# The session's workspace templates (a Spark-built lake, a year sample, the trained champion):
# defined here, at the root, so the integration and browser tiers share one build of each.
from workspace_templates import model_template, spark_template, year_template  # noqa: E402,F401


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith("LAKEBOOK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(home / ".jupyter"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(home / ".local/share/jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(home / ".local/share/jupyter/runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(home / ".ipython"))
    monkeypatch.setenv("RAY_TMPDIR", str(home / "ray"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return home


def make_workspace(root: Path, config: str = "name: test\n") -> Path:
    """A workspace folder with the example contracts (flights, weather) copied in."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lakebook.yaml").write_text(config)
    # the example import's source (airport_status) is left to the import tests, which add it
    shutil.copytree(REPO / "contracts", root / "contracts", ignore=shutil.ignore_patterns("airport_status.yaml"))
    return root


@pytest.fixture
def workspace_dir(tmp_path) -> Path:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def workspace(workspace_dir):
    from lakebook.workspace import Workspace

    return Workspace.load(workspace_dir)
