"""Sending an alert to channels by name.

Invariants: ``notify`` raises only for a channel name ``alerts.channels`` does not declare,
before anything is sent; a channel that fails is reported in the answer and logged, and the
others are still tried. Each channel gets at most two attempts (the second only after a
transient failure), each bounded by the channel's ``timeout_s``. Error texts are masked
(redact.py): a header value or password never appears in them or in the log.
"""

from __future__ import annotations

import logging
import time

from ..backends import alert_channels
from ..errors import AlertError, did_you_mean
from ..redact import mask
from .channels import DeliveryFailed
from .model import Alert

log = logging.getLogger("lakebook.alerts")
RETRY_PAUSE_S = 0.5


def notify(workspace, to: list[str], alert: Alert) -> dict[str, str | None]:
    """Send ``alert`` to each channel named in ``to``: channel -> None when delivered, else why not."""
    channels = open_channels(workspace, to)
    return {name: _deliver(name, channel, alert) for name, channel in channels.items()}


def open_channels(workspace, names: list[str]) -> dict:
    """The channels named, by name; AlertError naming an unknown one."""
    declared = workspace.settings.alerts.channels
    for name in names:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise AlertError(f"unknown alert channel {name!r} (declared: {known})",
                             hint=did_you_mean(name, declared) or "declare it under alerts.channels in lakebook.yaml")
    return {name: alert_channels.load(declared[name].type)(name, declared[name], workspace) for name in dict.fromkeys(names)}


def _deliver(name: str, channel, alert: Alert) -> str | None:
    for attempt in (1, 2):
        try:
            channel.send(alert)
            return None
        except DeliveryFailed as exc:
            error, again = str(exc), exc.transient and attempt == 1
        except Exception as exc:  # noqa: BLE001 - a channel's failure never stops the others
            error, again = f"{type(exc).__name__}: {exc}", False
        if not again:
            break
        time.sleep(RETRY_PAUSE_S)
    error = mask(error)
    log.warning("alert %r not delivered to channel %s (after %d attempts): %s", alert.title, name, attempt, error)
    return error
