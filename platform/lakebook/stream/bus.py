"""The event bus: named consumer groups read each source's accepted events in order from the
offset they committed, and commit once they have processed them.

Offsets are the ingest log's sequence numbers (int, increasing per source). A group reads
from its committed offset, so whatever it read and did not commit (a crash in between)
comes again: consumers see each event at least once and de-duplicate by ``_event_id``, as
they must anyway for an event sent twice.

Backends sit behind backends.py's ``buses`` registry, chosen by ``stream.bus``:
- ``sqlite`` (SQLiteBus, the default): consumer groups over the ingest log itself, which keeps
  what a group has not committed after the flush, up to ``stream.retain_events`` per source;
  a group further behind reads the rest from the lake files the flusher wrote
  (ingest/retention.py, ingest/groups.py).
- ``redis`` (redis_bus.RedisBus): Redis Streams, fed by the ingest service's forwarder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Protocol

from ..errors import BadRequest, ConfigError
from ..ingest import open_ingest_log
from ..ingest.groups import LakeRange, LakeRanges, log_groups, not_registered, read_group
from ..ingest.records import concat_events, logged_to_table
from ..ingest.retention import STARTS

if TYPE_CHECKING:
    import pyarrow as pa

POLL_S = 0.01  # how often a read waiting for events looks at the log again


@dataclass
class BusBatch:
    source: str
    table: "pa.Table"  # the events as the flusher builds them: the contract's columns + _event_id + _ingested_at
    first_offset: int  # offsets are the ingest log's sequence numbers of the batches read
    last_offset: int  # commit this once the batch is processed


class Bus(Protocol):
    def register(self, group: str, sources: list[str], start: str = "earliest") -> None: ...
    def read(self, group: str, source: str, max_events: int = 10_000, timeout_s: float = 1.0) -> BusBatch | None: ...
    def commit(self, group: str, source: str, offset: int) -> None: ...
    def lag(self, group: str, source: str) -> int: ...
    def groups(self) -> list[dict]: ...
    def close(self) -> None: ...


def open_bus(workspace) -> Bus:
    """The bus backend ``stream.bus`` selects."""
    from ..backends import buses

    config = workspace.settings.stream.bus
    return buses.load(config.type)(workspace, config)


def check_start(start: str) -> None:
    if start not in STARTS:
        raise BadRequest(f"a consumer group starts at 'earliest' or 'latest', not {start!r}",
                         hint="'earliest': every event the bus still holds; 'latest': only events from now on")


def logged_events(contract, batches: Iterable[tuple[int, str, int, bytes]]) -> "pa.Table":
    """Logged batches, (seq, kind, received_us, payload) each, as the flusher makes them into
    events under the contract in force now (events it refuses now are left out: the flusher
    quarantines them)."""
    tables = [logged_to_table(contract, kind, payload, received_us, seq)[0]
              for seq, kind, received_us, payload in batches]
    events = concat_events(tables)
    return contract.schema.empty_table() if events is None else events


class SQLiteBus:
    """Consumer groups over the ingest log (its database keeps their offsets)."""

    def __init__(self, workspace, config=None):
        self.workspace = workspace
        self._log = open_ingest_log(workspace)
        if not hasattr(self._log, "group_batches"):
            self._log.close()
            raise ConfigError(f"stream.bus sqlite keeps consumer groups in the ingest log, which ingest.log "
                              f"{workspace.settings.ingest.log.type!r} does not do",
                              hint="use ingest.log: sqlite, or another stream.bus")
        self._ranges = LakeRanges(workspace)

    def register(self, group: str, sources: list[str], start: str = "earliest") -> None:
        """Idempotent: a source the group reads already keeps its offset."""
        check_start(start)
        self._log.register_group(group, list(sources), start)

    def read(self, group: str, source: str, max_events: int = 10_000, timeout_s: float = 1.0) -> BusBatch | None:
        """The next events after the group's committed offset, waiting up to ``timeout_s`` for
        some; None if none came."""
        deadline = time.monotonic() + timeout_s
        while (piece := read_group(self._log, self._ranges, group, source, max_events)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(POLL_S, left))
        contract = self.workspace.contract(source)
        if isinstance(piece, LakeRange):
            table = contract.schema.empty_table() if piece.table is None else piece.table
            return BusBatch(source, table, piece.seq_lo, piece.seq_hi)
        table = logged_events(contract, ((b.seq, b.kind, b.received_us, b.payload) for b in piece))
        return BusBatch(source, table, piece[0].seq, piece[-1].seq)

    def commit(self, group: str, source: str, offset: int) -> None:
        if not self._log.commit_group(group, source, offset):
            raise not_registered(group, source)

    def lag(self, group: str, source: str) -> int:
        lag = self._log.group_lag(group, source)
        if lag is None:
            raise not_registered(group, source)
        return lag

    def groups(self) -> list[dict]:
        return log_groups(self._log)

    def close(self) -> None:
        self._ranges.close()
        self._log.close()
