"""The stream job: a driver thread per source moving micro-batches through the actors.

For each micro-batch of a source: the reader reads it from the bus (from the group's
committed offset), every operator of the source applies and checkpoints it, the sink pushes
their online rows, and the reader commits the offset. Every few seconds the operators write
their ``speed.*`` rows to the lake.

Exactly-once effect: an operator's checkpoint is committed before the offset is, so a batch
read again after any failure is known by offset or by event id and changes nothing twice.
After a failure (an actor's process killed, which Ray restarts from its checkpoint, or an
error), the source first pushes every entity's current row again: a push lost with the
failure is made, and a repeated push writes what the store holds already.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ..config import ray_runtime_options
from ..errors import FeatureStoreError, LakebookError
from ..features.windows import duration_us, feature_definition, feature_definitions
from .actors import Emission, SinkActor, SourceReader, ViewOperator
from .inputs import plan_input

log = logging.getLogger("lakebook.stream")
RATE_WINDOW_S = 10.0
RETRY_S = (0.2, 0.5, 1, 2, 5)


@dataclass
class SourceStatus:
    """What the status shows of one source's driver thread."""

    source: str
    views: list[str]
    events: int = 0
    batches: int = 0
    offset: int | None = None
    failures: int = 0
    problem: str | None = None
    recent: deque = field(default_factory=deque)  # (monotonic time, events) of recent batches

    def counted(self, events: int, offset: int) -> None:
        now = time.monotonic()
        self.events, self.batches, self.offset = self.events + events, self.batches + 1, offset
        self.recent.append((now, events))
        while self.recent and self.recent[0][0] < now - RATE_WINDOW_S:
            self.recent.popleft()

    @property
    def events_per_s(self) -> float:
        if not self.recent:
            return 0.0
        span = max(time.monotonic() - self.recent[0][0], 1.0)
        return sum(n for _, n in self.recent) / span


@dataclass
class ViewStatus:
    view: str
    source: str
    pushes: int = 0
    pushed_rows: int = 0
    last_push_unix: float | None = None
    newest_event_us: int | None = None
    late_events: int = 0

    def emitted(self, emission: Emission, pushed_at: float | None) -> None:
        self.late_events += emission.late
        if emission.newest_event_us is not None:
            self.newest_event_us = max(self.newest_event_us or emission.newest_event_us, emission.newest_event_us)
        if pushed_at is not None:
            self.pushed(emission.online.num_rows, pushed_at)

    def pushed(self, rows: int, pushed_at: float) -> None:
        self.pushes, self.pushed_rows, self.last_push_unix = self.pushes + 1, self.pushed_rows + rows, pushed_at


class StreamJob:
    """The actors of a workspace's stream and the threads driving them (Ray must be connected)."""

    def __init__(self, workspace, views: list[str] | None = None):
        settings = workspace.settings.stream
        self.workspace, self.settings = workspace, settings
        chosen = [feature_definition(workspace, v) for v in views] if views else list(feature_definitions(workspace).values())
        if not chosen:
            raise FeatureStoreError("no windowed features to stream", hint="declare them in feature_repo/windows.yaml")
        self.sources: dict[str, list[str]] = {}
        for definition in chosen:
            self.sources.setdefault(plan_input(workspace, definition).source, []).append(definition.name)
        self.status = {s: SourceStatus(s, v) for s, v in self.sources.items()}
        self.views = {v: ViewStatus(v, s) for s, vs in self.sources.items() for v in vs}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- actors ---------------------------------------------------------------------------------
    def start(self) -> "StreamJob":
        import ray

        root, lateness = str(self.workspace.root), duration_us(self.settings.lateness)
        options = {"max_restarts": -1, "max_task_retries": 0, **ray_runtime_options(self.workspace.profile)}
        self.sink = ray.remote(**options)(SinkActor).remote(root)
        self.readers = {s: ray.remote(**options)(SourceReader).remote(root, self.settings.group, s, self.settings.start)
                        for s in self.sources}
        self.operators = {v: ray.remote(**options)(ViewOperator).remote(root, v, lateness) for v in self.views}
        ray.get([a.pid.remote() for a in self.actors()])  # every actor has started (or raised why not)
        for source in self.sources:
            thread = threading.Thread(target=self._drive, args=(source,), name=f"lakebook-stream-{source}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def actors(self) -> list:
        return [self.sink, *self.readers.values(), *self.operators.values()]

    def stop(self, timeout_s: float = 30) -> None:
        """Stop reading, let the batches in flight finish, write the speed rows, end the actors."""
        import ray

        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        try:
            ray.get([self.operators[v].flush_speed.remote() for v in self.views], timeout=timeout_s)
        except Exception as exc:  # they are written at the next start
            log.warning("speed rows not written on the way out: %s", exc)
        for actor in self.actors():
            ray.kill(actor)

    # -- a source's driver thread -----------------------------------------------------------------
    def _drive(self, source: str) -> None:
        status, failing, flushed = self.status[source], True, time.monotonic()
        while not self._stop.is_set():
            try:
                if failing:
                    self._push_current(source)
                    failing, status.problem = False, None
                self._step(source)
                if time.monotonic() - flushed >= self.settings.speed_flush_interval_s:
                    self._flush_speed(source)
                    flushed = time.monotonic()
            except Exception as exc:  # an actor died (Ray restarts it) or raised: retry from the checkpoints
                failing = True
                self._failed(status, exc)

    def _failed(self, status: SourceStatus, exc: Exception) -> None:
        status.failures += 1
        status.problem = _problem(exc)
        log.warning("stream of %s failed (%s); retrying", status.source, status.problem)
        self._stop.wait(RETRY_S[min(status.failures, len(RETRY_S)) - 1])

    def _step(self, source: str) -> None:
        import ray

        batch = self.readers[source].read.remote(self.settings.max_batch_events, self.settings.poll_timeout_s)
        emissions = ray.get([self.operators[v].process.remote(batch) for v in self.sources[source]])
        if emissions[0] is None:
            return
        online = {e.view: e.online for e in emissions if e.online is not None and e.online.num_rows}
        pushed = ray.get(self.sink.push.remote(online)) if online else {}
        ray.get(self.readers[source].commit.remote(emissions[0].last_offset))
        self.status[source].counted(emissions[0].events, emissions[0].last_offset)
        for emission in emissions:
            self.views[emission.view].emitted(emission, pushed.get(emission.view))

    def _push_current(self, source: str) -> None:
        import ray

        rows = dict(zip(self.sources[source], ray.get([self.operators[v].current.remote() for v in self.sources[source]])))
        for view, pushed_at in ray.get(self.sink.push.remote(rows)).items():
            self.views[view].pushed(rows[view].num_rows, pushed_at)

    def _flush_speed(self, source: str) -> None:
        import ray

        ray.get([self.operators[v].flush_speed.remote() for v in self.sources[source]])

    # -- what it reports ------------------------------------------------------------------------
    def report(self) -> dict:
        return {"group": self.settings.group,
                "sources": {s: {"views": st.views, "events": st.events, "batches": st.batches, "offset": st.offset,
                                "events_per_s": round(st.events_per_s, 1), "failures": st.failures,
                                "problem": st.problem} for s, st in self.status.items()},
                "views": {v: {"source": vs.source, "pushes": vs.pushes, "pushed_rows": vs.pushed_rows,
                              "last_push_unix": vs.last_push_unix, "newest_event_us": vs.newest_event_us,
                              "late_events": vs.late_events} for v, vs in self.views.items()}}


def _problem(exc: BaseException) -> str:
    """One line for the status: a lakebook error raised in an actor as its message and hint,
    anything else (an actor that died) as its kind and first line."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, LakebookError):
        return f"{cause.message} ({cause.hint})" if cause.hint else cause.message
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"
