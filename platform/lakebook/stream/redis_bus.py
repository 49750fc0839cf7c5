"""The event bus on Redis Streams (``stream.bus: {type: redis, url: …}``), the scale twin of the
SQLite bus: one stream per source, fed from the ingest log by the ingest service's forwarder
(ingest/forwarder.py, which also names the keys), read with consumer groups (XREADGROUP, XACK).

A group reads through one consumer named after it (one reader per group and source, as the
stream's readers are). A read first returns the entries the group read and has not
acknowledged (a crash between read and commit re-delivers them), then new ones; a commit
acknowledges the entries up to its offset and records the group's running event count there,
from which the lag is told in events. Each entry is a logged batch as the log holds it, made
into events here as the SQLite bus does (under the contract in force now).
"""

from __future__ import annotations

from ..ingest.forwarder import (
    StreamKeys, committed_mark, redis_client, redis_errors, redis_groups, seq_of,
)
from ..ingest.groups import not_registered
from ..ingest.records import concat_events
from .bus import BusBatch, check_start, logged_events

MAX_ENTRIES = 1000  # entries one read asks Redis for at most


class RedisBus:
    """Consumer groups on the Redis streams the forwarder fills."""

    def __init__(self, workspace, config):
        self.workspace = workspace
        self.config = config
        self._redis = redis_client(config)
        self._at: dict[tuple[str, str, int], int] = {}  # (group, source, last offset read) -> running count there
        self._entries: dict[tuple[str, str], int] = {}  # entries to ask for, from the last read's events per entry

    def register(self, group: str, sources: list[str], start: str = "earliest") -> None:
        """Idempotent: a source the group reads already keeps its offset."""
        check_start(start)
        with redis_errors(self.config):
            for source in sources:
                self._register(group, StreamKeys.of(self.config, source), start)

    def _register(self, group: str, keys: StreamKeys, start: str) -> None:
        # in one MULTI: the group starts where the running count is read
        pipe = self._redis.pipeline(transaction=True)
        pipe.xgroup_create(keys.stream, group, id="0" if start == "earliest" else "$", mkstream=True)
        pipe.get(keys.total)
        pipe.xinfo_stream(keys.stream)
        created, total, info = pipe.execute(raise_on_error=False)
        if isinstance(created, Exception):
            if "BUSYGROUP" in str(created):
                return
            raise created
        total = int(total or 0)
        first = info.get("first-entry")
        if start == "latest" or not first:
            mark = (seq_of(info["last-generated-id"]), total)
        else:
            fields = first[1]
            mark = (int(fields[b"first"]) - 1, int(fields[b"total"]) - int(fields[b"n"]))
        self._redis.hsetnx(keys.committed, group, f"{mark[0]} {mark[1]}")

    def read(self, group: str, source: str, max_events: int = 10_000, timeout_s: float = 1.0) -> BusBatch | None:
        """The next events after the group's committed offset, waiting up to ``timeout_s`` for
        some; None if none came."""
        keys = StreamKeys.of(self.config, source)
        count = self._entries.get((group, source), 16)
        with redis_errors(self.config):
            entries = self._read(keys, group, "0", count, None) or self._read(keys, group, ">", count, timeout_s)
        entries = _fitting(entries, max_events)
        if not entries:
            return None
        events = sum(int(f[b"n"]) for _, f in entries)
        self._entries[(group, source)] = max(1, min(MAX_ENTRIES, len(entries) * max_events // max(1, events)))
        last = seq_of(entries[-1][0])
        self._at[(group, source, last)] = int(entries[-1][1][b"total"])
        return BusBatch(source, self._table(source, entries), int(entries[0][1][b"first"]), last)

    def _read(self, keys: StreamKeys, group: str, after: str, count: int, timeout_s: float | None) -> list:
        import redis

        block = None if timeout_s is None else max(1, int(timeout_s * 1000))
        try:
            answer = self._redis.xreadgroup(group, group, {keys.stream: after}, count=count, block=block)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                raise not_registered(group, keys.stream.removeprefix(self.config.stream_prefix)) from None
            raise
        return [(i, fields) for i, fields in answer[0][1] if fields] if answer else []  # a trimmed entry has none

    def _table(self, source: str, entries: list):
        import pyarrow as pa

        contract = self.workspace.contract(source)
        tables, logged = [], []
        for entry_id, fields in entries:
            if fields[b"kind"] == b"lake":
                tables.append(logged_events(contract, logged))
                logged = []
                if fields[b"payload"]:
                    tables.append(pa.ipc.open_stream(fields[b"payload"]).read_all())
            else:
                logged.append((seq_of(entry_id), fields[b"kind"].decode(), int(fields[b"received_us"]),
                               fields[b"payload"]))
        tables = [t for t in [*tables, logged_events(contract, logged)] if t.num_rows]
        return concat_events(tables) if tables else contract.schema.empty_table()

    def commit(self, group: str, source: str, offset: int) -> None:
        """Acknowledge the group's entries up to ``offset`` and note its running count there."""
        keys = StreamKeys.of(self.config, source)
        with redis_errors(self.config):
            pending = self._redis.xpending_range(keys.stream, group, min="-", max=f"{offset}-0", count=1_000_000)
            if pending:
                self._redis.xack(keys.stream, group, *[p["message_id"] for p in pending])
            self._note(keys, group, source, offset)

    def _note(self, keys: StreamKeys, group: str, source: str, offset: int) -> None:
        mark = committed_mark(self._redis.hget(keys.committed, group))
        if mark is None:
            raise not_registered(group, source)
        if offset <= mark[0]:
            return
        total = self._at.pop((group, source, offset), None)
        if total is None:  # committed by another process than the one that read it
            entry = self._redis.xrange(keys.stream, min=f"{offset}-0", max=f"{offset}-0")
            total = int(entry[0][1][b"total"]) if entry else mark[1]
        self._redis.hset(keys.committed, group, f"{offset} {total}")

    def lag(self, group: str, source: str) -> int:
        keys = StreamKeys.of(self.config, source)
        with redis_errors(self.config):
            total, raw = self._redis.get(keys.total), self._redis.hget(keys.committed, group)
        mark = committed_mark(raw)
        if mark is None:
            raise not_registered(group, source)
        return int(total or 0) - mark[1]

    def groups(self) -> list[dict]:
        with redis_errors(self.config):
            return redis_groups(self._redis, self.config, sorted(self.workspace.contracts()))

    def close(self) -> None:
        self._redis.close()


def _fitting(entries: list, max_events: int) -> list:
    """The first entries that hold at most ``max_events`` events together (the first whatever its size)."""
    total = 0
    for i, (_, fields) in enumerate(entries):
        total += int(fields[b"n"])
        if i and total > max_events:
            return entries[:i]
    return entries
