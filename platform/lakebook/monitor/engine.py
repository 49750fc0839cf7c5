"""One evaluation of the workspace's checks: measure each (timed; one that raises never stops
the others), compare with its levels, move its state (state.py), record the result, and
hand the alerts to the alert manager: one ``firing`` alert per firing check at every
evaluation, one ``resolved`` alert for each check that has just recovered."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from ..alerts import Alert
from ..errors import LakebookError, UnknownTable
from .definitions import Check, CheckSet, load_checks
from .kinds import measure_function
from .measure import Measurement
from .state import CheckState, MonitorStore, Result, advance

log = logging.getLogger("lakebook.monitor")
SEVERITY = {"fail": "critical", "warn": "warning"}


@dataclass
class Evaluation:
    """What one evaluation found: each check's result and state, the alerts it raised, and
    the definition problems (files or checks that do not load)."""

    at: datetime
    results: list[tuple[Check, Result, CheckState]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    delivery: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether a check is at its fail level or could not be evaluated (``lakebook monitor run`` exits 1)."""
        return any(result.level in ("fail", "error") for _, result, _ in self.results)

    def as_json(self) -> dict:
        return {"at": self.at, "results": [{**r.as_json(), "check": c.expression, "fired_at": s.fired_at,
                                            "resolved": s.resolved} for c, r, s in self.results],
                "alerts": len(self.alerts), "problems": self.problems}


def evaluate(workspace, names: list[str] | None = None, now: datetime | None = None, *,
             checks: CheckSet | None = None, alert_manager=None) -> Evaluation:
    """Evaluate the enabled checks (or those named) once, record them and send their alerts."""
    now = now or datetime.now(timezone.utc)
    checks = checks or load_checks(workspace)
    selected = [checks.check(n) for n in names] if names else checks.enabled
    evaluation = Evaluation(now, problems=dict(checks.problems))
    with MonitorStore(workspace) as store:
        previous = store.states()
        for check in selected:
            result, labels = _evaluate_one(workspace, check, now)
            state = advance(previous.get(check.name), result.level, check.for_s, now)
            result = replace(result, state=state.state)
            store.record(check.expression, state, result, workspace.settings.monitor.history)
            evaluation.results.append((check, result, state))
            evaluation.alerts += _alerts(check, result, state, labels)
    _deliver(workspace, evaluation, alert_manager, now)
    return evaluation


def _evaluate_one(workspace, check: Check, now: datetime) -> tuple[Result, dict[str, str]]:
    """The check's result (its state not decided yet) and its measurement's labels."""
    started = time.perf_counter()
    try:
        measurement = measure_function(check.kind)(workspace, check, now)
        level, detail = check.level(measurement.value), measurement.detail
    except UnknownTable as exc:  # not built yet (or misspelt: the detail says which tables exist)
        measurement, level = Measurement(None, check.unit, ""), "unknown"
        detail = exc.message + (f" ({exc.hint})" if exc.hint else "")
    except LakebookError as exc:  # a missing stage, a bad option: said, not a traceback
        measurement, level = Measurement(None, check.unit, ""), "error"
        detail = exc.message + (f" ({exc.hint})" if exc.hint else "")
    except Exception as exc:  # noqa: BLE001 - one broken check never stops the others
        log.exception("check %s raised", check.name)
        measurement, level, detail = Measurement(None, check.unit, ""), "error", f"{type(exc).__name__}: {exc}"
    duration_ms = (time.perf_counter() - started) * 1000
    result = Result(check.name, now, measurement.value, measurement.unit or check.unit, level, level, detail,
                    round(duration_ms, 3))
    return result, measurement.labels


def _alerts(check: Check, result: Result, state: CheckState, labels: dict[str, str]) -> list[Alert]:
    if state.state != "firing" and not state.resolved:
        return []
    severity = SEVERITY[state.severity]
    labels = {**labels, **check.labels, "alertname": check.name, "check": check.expression, "kind": check.kind,
              "severity": severity}
    if state.resolved:
        return [Alert(f"{check.name} resolved", f"{check.expression}: {result.detail}", severity, labels, "resolved")]
    ended = []
    if state.replaced_severity:  # the alert of the other level ends; this level's starts
        old = {**labels, "severity": SEVERITY[state.replaced_severity]}
        ended = [Alert(f"{check.name} {state.replaced_severity} level ended", f"{check.expression}: {result.detail}",
                       old["severity"], old, "resolved")]
    level = check.fail if state.severity == "fail" else check.warn
    text = "\n".join(line for line in (
        f"{check.expression}: {result.detail}",
        f"value {format_value(result.value, result.unit)}; {state.severity} when {level.text if level else '?'}; "
        f"failing since {state.failing_since:%Y-%m-%d %H:%M:%S} UTC" if state.failing_since else "",
        check.description) if line)
    return ended + [Alert(f"{check.name} {'failing' if state.severity == 'fail' else 'warning'}", text, severity,
                          labels, "firing")]


def _deliver(workspace, evaluation: Evaluation, alert_manager, now: datetime) -> None:
    """Hand the evaluation's alerts to the alert manager; a delivery problem is logged, never raised."""
    if alert_manager is None:
        from .alertmanager import AlertManager

        alert_manager = AlertManager(workspace)
    try:
        alert_manager.receive(evaluation.alerts, now)
        evaluation.delivery = alert_manager.dispatch(now) or {}
    except LakebookError as exc:
        log.warning("alerts not delivered: %s", exc)
        evaluation.delivery = {"error": str(exc)}


def format_value(value: float | None, unit: str) -> str:
    """A value for people: ``2h 13m``, ``5.2%``, ``340 ms``, ``1,234 rows``."""
    if value is None:
        return "-"
    if unit == "s":
        return format_seconds(value)
    if unit == "%":
        return f"{value:.2f}%"
    number = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}" if abs(value) < 1 else f"{value:,.2f}"
    return f"{number} {unit}".strip()


def format_seconds(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds:.2g}s"
    parts, rest = [], int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return " ".join(parts[:2])
