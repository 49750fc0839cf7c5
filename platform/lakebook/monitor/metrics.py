"""The monitor service's figures for Prometheus (``GET /metrics`` on its status app): the
evaluations it ran, and per check its state, level and last value, from the last evaluation
it keeps (nothing is read again for a scrape)."""

from __future__ import annotations

from ..metrics import counter, gauge

STATES = ("ok", "pending", "firing", "unknown", "error")


def monitor_families(loop):
    """The families of the monitor loop ``loop`` (service.MonitorLoop)."""
    last = loop.last
    results = [(check, result) for check, result, _ in last.results] if last else []
    yield counter("lakebook_monitor_evaluations", "evaluations of the check set this service ran", loop.evaluations)
    yield gauge("lakebook_monitor_evaluation_failed", "1 when the last evaluation failed as a whole",
                1 if loop.last_error else 0)
    yield gauge("lakebook_monitor_check_state", "1 for the state each check is in (ok, pending, firing, unknown, error)",
                {(check.name, state): int(result.state == state) for check, result in results for state in STATES},
                ["check", "state"])
    yield gauge("lakebook_monitor_check_firing", "1 while a check fires, with the level it fires at",
                {(check.name, result.level): int(result.state == "firing") for check, result in results},
                ["check", "level"])
    yield gauge("lakebook_monitor_check_value", "each check's last measured value, in its unit",
                {(check.name, result.unit): result.value for check, result in results}, ["check", "unit"])
    yield gauge("lakebook_monitor_check_duration_seconds", "how long each check's last measurement took",
                {check.name: result.duration_ms / 1000 for check, result in results}, ["check"])
