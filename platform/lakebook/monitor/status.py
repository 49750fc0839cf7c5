"""What ``lakebook monitor status`` shows: each check's stored state and recent results."""

from __future__ import annotations

from .definitions import load_checks
from .state import MonitorStore


def check_status(workspace, name: str | None = None, limit: int = 5) -> tuple[list[dict], dict[str, str]]:
    """Per check (declared, or evaluated before and declared no more): its state, since when,
    last value and detail, and its ``limit`` newest results; and the definition problems."""
    checks = load_checks(workspace)
    if name is not None:
        checks.check(name)  # an unknown name fails with a suggestion
    with MonitorStore(workspace) as store:
        stored = store.rows()
        names = [name] if name else list(dict.fromkeys([*checks.checks, *stored]))
        rows = [_row(n, checks.checks.get(n), stored.get(n), store.history(n, limit)) for n in names]
    return rows, checks.problems


def _row(name: str, check, stored: dict | None, history: list[dict]) -> dict:
    stored = stored or {}
    state = stored.get("state", "not evaluated")
    if check is not None and not check.enabled:
        state = "disabled"
    elif check is None:
        state = f"{state} (no longer declared)"
    return {"name": name, "check": check.expression if check else stored.get("expression"), "state": state,
            "since": stored.get("since"), "fired_at": stored.get("fired_at"), "value": stored.get("value"),
            "unit": stored.get("unit", ""), "detail": stored.get("detail", ""),
            "evaluated_at": stored.get("evaluated_at"), "history": history}
