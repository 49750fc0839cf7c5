"""Share tokens: ``lbs1.<id>.<expires>.<signature>``, an HMAC-SHA256 over the id, the
dashboard and the expiry, keyed by the workspace's share secret.

Invariants: the secret file is made once, readable by its owner only (0600), and never
leaves the state dir; a token is valid only while its row exists, is not revoked, names
the dashboard asked for and has not expired, and its signature matches that row (the
dashboard is not in the token, so a token cannot be re-pointed at another dashboard);
errors and logs name a token by its id, never by its text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from datetime import datetime, timezone
from pathlib import Path

from ..errors import DashboardError, Forbidden

PREFIX = "lbs1"


def share_secret(path: Path) -> bytes:
    """The workspace's share secret, made (0600, exclusively) if it does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise DashboardError(f"the share secret {path} is readable by others",
                             hint=f"chmod 600 {path} (and revoke the links shared so far)")
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise DashboardError(f"the share secret {path} is empty or too short",
                             hint="delete it: a new one is made (links shared so far stop working)")
    return secret.encode()


def new_token_id() -> str:
    return secrets.token_hex(6)


def _signature(secret: bytes, token_id: str, dashboard: str, expires: int) -> str:
    mac = hmac.new(secret, f"{token_id}.{dashboard}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def mint(secret: bytes, token_id: str, dashboard: str, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    return f"{PREFIX}.{token_id}.{expires}.{_signature(secret, token_id, dashboard, expires)}"


def token_id_of(token: str) -> str:
    """The id a token carries (no check of anything else); a Forbidden if it has none."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[2].isdigit():
        raise Forbidden("not a share token", hint="open the link exactly as it was shared")
    return parts[1]


def check(secret: bytes, token: str, row, dashboard: str, now: datetime | None = None) -> None:
    """Raise Forbidden unless ``token`` (whose share row is ``row``, None if unknown) lets its
    holder see ``dashboard`` now."""
    token_id, expires = token_id_of(token), int(token.split(".")[2])
    if row is None or row.dashboard != dashboard:
        raise Forbidden(f"share token {token_id} does not open dashboard {dashboard!r}",
                        hint="ask for a link to this dashboard: lakebook dashboards share NAME")
    if not hmac.compare_digest(token.split(".")[3], _signature(secret, token_id, dashboard, expires)) \
            or expires != int(row.expires_at.timestamp()):
        raise Forbidden(f"share token {token_id} is not valid", hint="open the link exactly as it was shared")
    if row.revoked:
        raise Forbidden(f"share token {token_id} was revoked", hint="ask for a new link")
    if (now or datetime.now(timezone.utc)) >= row.expires_at:
        raise Forbidden(f"share token {token_id} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC",
                        hint="ask for a new link")
