"""Dashboards: notebooks published as Voila dashboards, opened with signed, expiring,
revocable share links, served by the dashboard server (server.py) with pre-heated kernels,
and rendered as static snapshots with history (snapshots.py)."""

from .api import has_dashboards, list_dashboards, publish, revoke, share, unpublish
from .snapshots import history, take_snapshot

__all__ = ["has_dashboards", "history", "list_dashboards", "publish", "revoke", "share", "take_snapshot",
           "unpublish"]
