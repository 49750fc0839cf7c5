"""lakebook's figures on the Jupyter server's own ``GET /metrics`` (jupyter_server's Prometheus
endpoint: its request latencies per handler, the lakebook API's included, kernels and
terminals; authenticated like the server unless ``ServerApp.authenticate_prometheus`` is off).

That endpoint writes prometheus_client's process-wide registry, so the extension registers
one collector there per process (``register``), pointed at the newest extension app: a second
registration of the same names would be refused, and a test process starts many servers.
"""

from __future__ import annotations

import logging
import threading

from ..metrics import gauge

log = logging.getLogger("lakebook.server")
_lock = threading.Lock()


class LabCollector:
    """Collects for the alerts API of the extension app it was last pointed at."""

    def __init__(self):
        self.alerts = None  # an AlertsAPI
        self.registered = False

    def collect(self):
        unread, ok = None, 0
        try:
            if self.alerts is not None:
                unread, ok = self.alerts.unread_count(), 1
        except Exception as exc:  # noqa: BLE001 - no workspace or catalog: the rest of /metrics still answers
            log.debug("lakebook_lab_alerts_unread is left out of /metrics: %s", exc)  # workspace_ok tells
        yield gauge("lakebook_lab_workspace_ok", "1 when the Lab's workspace and its catalog database open.", ok)
        yield gauge("lakebook_lab_alerts_unread", "Alerts in the Lab's inbox not marked read.", unread)


_COLLECTOR = LabCollector()


def register(alerts) -> LabCollector:
    """Point the process's collector at ``alerts`` (an AlertsAPI), registering it in
    prometheus_client's registry the first time."""
    from prometheus_client import REGISTRY

    with _lock:
        if not _COLLECTOR.registered:
            REGISTRY.register(_COLLECTOR)
            _COLLECTOR.registered = True
        _COLLECTOR.alerts = alerts
    return _COLLECTOR
