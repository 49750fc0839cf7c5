"""What a check measures: one number about one thing, with a line for people.

Every check kind is a function ``measure(workspace, check, now) -> Measurement``: ``check``
carries the kind's arguments (``check.args``, e.g. ``("raw.flights",)`` for
``freshness(raw.flights)``) and options (``check.options``); ``now`` is the evaluation's time
(aware UTC). It measures and never decides: the check's ``warn``/``fail`` levels and its
``for:`` duration turn measurements into a state (engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Measurement:
    """``value`` in ``unit`` ("s", "%", "rows", "ms", "psi", "ks", "auc", "events", or "" for a
    count); None when there is nothing to measure yet (no rows, no run, no endpoint): the check is
    then ``unknown``, not ok. ``detail`` is one line for people ("newest event 2h 13m ago").
    ``labels`` say what it is about (table, source, column, job, endpoint, feature_view): they
    route the alert and name its impact. They identify the alert, so they stay the same while the
    check fails: a run id or a model version goes in ``detail``, not in a label."""

    value: float | None
    unit: str
    detail: str
    labels: dict[str, str] = field(default_factory=dict)
