"""A job's alerts (failure, retry, success, late) to the channels its definition names,
through the channel registry shared with monitoring (``lakebook.alerts``). An alert that
cannot be delivered is logged: it never fails the run it is about."""

from __future__ import annotations

import logging

log = logging.getLogger("lakebook.jobs")

_SEVERITY = {"failure": "critical", "retry": "warning", "late": "warning", "success": "info"}


def _text(event: str, run: dict) -> str:
    where = f"output notebook: {run.get('output_notebook')}" if run.get("output_notebook") else ""
    reason = run.get("reason") or ""
    if event == "retry":
        return f"attempt {run['attempt'] - 1} of {run['max_attempts']} failed: {reason}; retrying. {where}".strip()
    if event == "late":
        return f"due at {run['scheduled_time']:%Y-%m-%d %H:%M:%S} UTC and not started yet"
    return f"{reason} {where}".strip() or run["status"]


def job_alert(event: str, job_name: str, run: dict):
    """The Alert about ``event`` of ``run``."""
    from ..alerts import Alert

    return Alert(title=f"job {job_name}: run {run['id']} {event}", text=_text(event, run),
                 severity=_SEVERITY[event], status="resolved" if event == "success" else "firing",
                 labels={"job": job_name, "run": str(run["id"]), "event": event, "trigger": run["trigger"]})


def send_alert(workspace, job, event: str, run: dict) -> None:
    """Tell the job's channels for ``event`` about ``run``, if it has any."""
    channels = job.definition.alerts_on(event)
    if not channels:
        return
    from ..alerts import notify

    try:
        notify(workspace, channels, job_alert(event, job.name, run))
    except Exception:  # a channel that is down does not change how the run ended
        log.exception("job %s: the %s alert of run %s could not be delivered", job.name, event, run["id"])
