"""The outbox from the ingest log to Redis Streams (``stream.bus: {type: redis}``).

An event is durable in the ingest log when its HTTP 200 is sent; the forwarder, which runs in
the ingest service (its own child process, else a thread), then copies each logged batch of
accepted events to its source's stream: never on the request path. It reads the log as the
consumer group FORWARDER_GROUP, so the log keeps what it has not forwarded yet, past the flush
(retention.py; beyond ``stream.retain_events`` the lake gives it back, groups.py).

Invariants:
- An entry's ID is ``<seq>-0``, the sequence number of its batch in the log (of a flush range
  read back from the lake: its last, the first in the ``first`` field), so offsets on Redis are
  the log's. Entries of a stream are added together with its running event count in one
  MULTI/EXEC: both or neither.
- Nothing is forwarded twice: after a crash between XADD and the commit of the group's offset,
  the same batches are read again, and those at or below the stream's last ID are skipped.
  Nothing is lost: the offset is committed only once the XADD is done.
- One forwarder per workspace at a time (``workspace.forward_lock_path``).
- A stream keeps its entries until every consumer group on it has committed them (the
  forwarder trims the rest; with no group, all of it), and at most ``maxlen`` if set.

Keys, for a source: ``<prefix><source>`` the stream; ``…:total`` the events forwarded so far;
``…:committed`` a hash of each group's committed offset and the running count there (lag).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from .._proc import file_lock
from ..errors import BusUnavailable, MissingDependency
from .groups import LakeRange, LakeRanges, read_group
from .log import open_ingest_log
from .records import ipc_bytes

log = logging.getLogger("lakebook.ingest.forwarder")

FORWARDER_GROUP = "lakebook.forwarder"  # the forwarder's consumer group on the ingest log
FORWARD_EVENTS = 50_000  # events forwarded per source and round at most
POLL_S = 0.01  # pause between rounds that found nothing to forward
TRIM_EVERY_S = 1.0


def forwards_to_redis(workspace) -> bool:
    return workspace.settings.stream.bus.type == "redis"


@dataclass(frozen=True)
class StreamKeys:
    stream: str
    total: str
    committed: str

    @classmethod
    def of(cls, config, source: str) -> "StreamKeys":
        stream = f"{config.stream_prefix}{source}"
        return cls(stream, f"{stream}:total", f"{stream}:committed")


def redis_client(config):
    """A client of the Redis server ``config.url`` names (bytes in, bytes out)."""
    try:
        import redis
    except ImportError:
        raise MissingDependency("redis", "stream") from None
    return redis.Redis.from_url(config.url, socket_timeout=30, socket_connect_timeout=5)


@contextmanager
def redis_errors(config) -> Iterator[None]:
    """Redis's connection and command errors as BusUnavailable (the URL's password masked)."""
    import redis

    try:
        yield
    except redis.RedisError as exc:
        raise BusUnavailable(f"the Redis bus at {config.url} failed: {type(exc).__name__}: {exc}",
                             hint="check that Redis runs and stream.bus.url") from None


def seq_of(entry_id: bytes | str) -> int:
    """The log sequence number an entry ID ``<seq>-0`` stands for."""
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")[0])


def committed_mark(raw: bytes | None) -> tuple[int, int] | None:
    """(offset, running event count there) of a group's ``…:committed`` field."""
    if raw is None:
        return None
    offset, total = raw.split()
    return int(offset), int(total)


def redis_groups(client, config, sources: list[str]) -> list[dict]:
    """{group, source, offset, lag} of every consumer group on the sources' streams."""
    rows = []
    for source in sources:
        keys = StreamKeys.of(config, source)
        if not client.exists(keys.stream):
            continue
        total = int(client.get(keys.total) or 0)
        marks = client.hgetall(keys.committed)
        for info in client.xinfo_groups(keys.stream):
            name = info["name"]
            offset, at = committed_mark(marks.get(name)) or (0, total)
            rows.append({"group": name.decode(), "source": source, "offset": offset, "lag": total - at})
    return sorted(rows, key=lambda r: (r["group"], r["source"]))


def _entries(piece) -> list[tuple[int, dict]]:
    """(ID's sequence number, fields) of the entries that carry a read of the log."""
    if isinstance(piece, LakeRange):
        table = piece.table
        return [(piece.seq_hi, {"kind": "lake", "n": 0 if table is None else table.num_rows, "received_us": 0,
                                "first": piece.seq_lo, "payload": b"" if table is None else ipc_bytes(table)})]
    return [(b.seq, {"kind": b.kind, "n": b.n, "received_us": b.received_us, "first": b.seq, "payload": b.payload})
            for b in piece]


class RedisForwarder:
    """Forwards the ingest log's accepted batches to one Redis stream per source."""

    def __init__(self, workspace, ingest_log=None):
        self.workspace = workspace
        self.config = workspace.settings.stream.bus
        self._own_log = ingest_log is None
        self._log = ingest_log or open_ingest_log(workspace)
        self._redis = redis_client(self.config)
        self._ranges = LakeRanges(workspace)
        self._registered: set[str] = set()
        self._tops: dict[str, tuple[int, int]] = {}  # source -> (last ID's seq, events forwarded), as in Redis
        self._trimmed_at = 0.0

    def forward(self, max_events: int = FORWARD_EVENTS) -> int:
        """One round over every source; the events forwarded."""
        sources = sorted(self.workspace.contracts())
        new = [s for s in sources if s not in self._registered]
        if new:
            self._log.register_group(FORWARDER_GROUP, new, "earliest")
            self._registered.update(new)
        with redis_errors(self.config):
            moved = sum(self._forward_source(source, max_events) for source in sources)
            if time.monotonic() - self._trimmed_at >= TRIM_EVERY_S:
                self._trimmed_at = time.monotonic()
                for source in sources:
                    self._trim(source)
        return moved

    def _forward_source(self, source: str, max_events: int) -> int:
        piece = read_group(self._log, self._ranges, FORWARDER_GROUP, source, max_events)
        if piece is None:
            return 0
        entries = _entries(piece)
        moved = self._add(source, entries)
        self._log.commit_group(FORWARDER_GROUP, source, entries[-1][0])
        return moved

    def _add(self, source: str, entries: list[tuple[int, dict]]) -> int:
        """XADD the entries the stream does not have yet, with the running count; the events added."""
        keys = StreamKeys.of(self.config, source)
        top, total = self._top(source, keys)
        entries = [(seq, fields) for seq, fields in entries if seq > top]
        if not entries:
            return 0
        pipe = self._redis.pipeline(transaction=True)
        running = total
        for seq, fields in entries:
            running += fields["n"]
            pipe.xadd(keys.stream, {**fields, "total": running}, id=f"{seq}-0", maxlen=self.config.maxlen,
                      approximate=True)
        pipe.set(keys.total, running)
        try:
            pipe.execute()
        finally:
            self._tops.pop(source, None)  # read again from Redis, whatever the MULTI did
        self._tops[source] = (entries[-1][0], running)
        return running - total

    def _top(self, source: str, keys: StreamKeys) -> tuple[int, int]:
        if source not in self._tops:
            last = 0
            if self._redis.exists(keys.stream):
                last = seq_of(self._redis.xinfo_stream(keys.stream)["last-generated-id"])
            self._tops[source] = (last, int(self._redis.get(keys.total) or 0))
        return self._tops[source]

    def _trim(self, source: str) -> None:
        """Drop the entries every group on the stream has committed (all of them if it has none)."""
        keys = StreamKeys.of(self.config, source)
        if not self._redis.exists(keys.stream):
            return
        groups = self._redis.xinfo_groups(keys.stream)
        marks = self._redis.hgetall(keys.committed)
        committed = [(committed_mark(marks.get(g["name"])) or (0, 0))[0] for g in groups]
        keep_from = min(committed) + 1 if committed else self._top(source, keys)[0] + 1
        self._redis.xtrim(keys.stream, minid=f"{keep_from}-0", approximate=False)

    def run(self, stop: threading.Event) -> None:
        """Forward until ``stop`` is set; errors (Redis gone, a full disk) are logged once and
        retried every second."""
        with file_lock(self.workspace.forward_lock_path):
            failing: str | None = None
            while not stop.is_set():
                try:
                    moved = self.forward()
                except Exception as exc:  # noqa: BLE001 - the events stay in the log: try again
                    failing = self._failed(exc, failing)
                    self._tops.clear()
                    stop.wait(1.0)
                    continue
                if failing is not None:
                    log.info("forwarding to the Redis bus works again")
                    failing = None
                if not moved:
                    stop.wait(POLL_S)

    @staticmethod
    def _failed(exc: Exception, failing: str | None) -> str:
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        if message != failing:
            log.error("forwarding to the Redis bus failed (the events stay in the ingest log; retried): %s", message)
        return message

    def close(self) -> None:
        self._ranges.close()
        if self._own_log:
            self._log.close()
        self._redis.close()


def run_forwarder(workspace, stop: threading.Event, ingest_log=None) -> None:
    """Forward until ``stop`` is set (the body of the forwarder's process or thread)."""
    try:
        forwarder = RedisForwarder(workspace, ingest_log)
    except Exception:  # noqa: BLE001 - said in the server's log; the events stay in the ingest log
        log.exception("the forwarder to the Redis bus could not start; accepted events stay in the ingest log")
        return
    try:
        forwarder.run(stop)
    finally:
        forwarder.close()


class RedisGroups:
    """The consumer groups on the Redis bus, for the ingest server's /metrics (left out, and
    said once in its log, while Redis cannot be reached)."""

    def __init__(self, workspace):
        self.workspace = workspace
        self.config = workspace.settings.stream.bus
        self._client = None
        self._failing = False

    def __call__(self) -> list[dict]:
        try:
            self._client = self._client or redis_client(self.config)
            with redis_errors(self.config):
                rows = redis_groups(self._client, self.config, sorted(self.workspace.contracts()))
        except Exception as exc:  # noqa: BLE001 - the rest of /metrics is still worth answering
            if not self._failing:
                log.warning("the Redis bus's consumer groups are left out of /metrics: %s",
                            getattr(exc, "message", None) or exc)
            self._failing = True
            return []
        self._failing = False
        return rows
