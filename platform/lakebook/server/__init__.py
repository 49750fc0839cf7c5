"""Jupyter server extension: the REST API of the JupyterLab Lake, Endpoints and Jobs panels.

``GET /lakebook/api/catalog``, ``/lakebook/api/tables/{name}`` and
``/lakebook/api/tables/{name}/preview?limit=N``; the Endpoints panel's ``GET
/lakebook/api/endpoints``, ``GET /lakebook/api/endpoints/{name}/schema`` and ``POST
/lakebook/api/endpoints/{name}/predict``; the Jobs panel's routes under ``/lakebook/api/jobs``
(jobs_handlers.py); the Lab's alert inbox under ``/lakebook/api/alerts`` (alerts.py); the
Dashboards panel's under ``/lakebook/api/dashboards`` (dashboards_handlers.py). Enabled with
``jpserver_extensions: {"lakebook": true}`` (installed into ``jupyter_server_config.d``);
jupyter_server is imported only when the server loads the extension.
"""

from __future__ import annotations

__all__: list[str] = []  # Jupyter finds the extension through the hook below


def _jupyter_server_extension_points() -> list[dict]:
    from .app import LakebookApp

    return [{"module": "lakebook.server.app", "app": LakebookApp}]
