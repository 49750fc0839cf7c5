"""Monitoring: declarative checks over the lake, the pipeline, the features and the models
(``monitors/*.yaml`` plus defaults derived from the contracts), their state and history in the
catalog database, and the alerts they raise, routed to the alert channels (``lakebook.alerts``)
with what depends on the failing table or source downstream."""

from .alertmanager import AlertManager
from .definitions import Check, load_checks
from .engine import evaluate
from .measure import Measurement

__all__ = ["AlertManager", "Check", "Measurement", "evaluate", "load_checks"]
