"""lakebook: a Jupyter-centric data platform.

Importing lakebook is fast: every name below is imported on first use.
In a notebook: ``%load_ext lakebook`` then ``%%lake SELECT ...``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Workspace": "lakebook.workspace",
    "Settings": "lakebook.config",
    "LakebookError": "lakebook.errors",
    "Catalog": "lakebook.catalog",
    "Contract": "lakebook.contracts",
    "flush_ingest_log_to_raw": "lakebook.ingest",
    "create_app": "lakebook.ingest",
    "query": "lakebook.query",
    "LakeResult": "lakebook.query",
}

__all__ = sorted(_PUBLIC) + ["load_ipython_extension", "__version__"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'lakebook' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _jupyter_server_extension_points() -> list[dict]:
    """The Jupyter server extension of the Lake panel (``jpserver_extensions: {"lakebook": true}``);
    jupyter_server is imported only here, when a server loads it."""
    from .server import _jupyter_server_extension_points as points

    return points()


def load_ipython_extension(ipython) -> None:
    """``%load_ext lakebook``: registers the ``%lake`` / ``%%lake`` magics."""
    from .magics import load_ipython_extension as load

    load(ipython)
