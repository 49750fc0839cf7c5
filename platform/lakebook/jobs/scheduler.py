"""The scheduler (``lakebook jobs scheduler``, the ``jobs`` service): every ``jobs.tick_s`` it
takes or renews the lease, and only while it holds it (one leader per database; a standby
takes over when the leader's lease expires) it

1. reconciles: a running run whose process is gone (this host: its pid is not alive; any
   host: its heartbeat is older than ``jobs.stale_after_s``) is failed with the reason, and
   retried per its policy;
2. queues cron ticks since the job's cursor (catchup: a tick older than ``jobs.late_after_s``
   when first seen was missed), ``after:`` runs and ``on_update:`` runs (store.py: each with
   its idempotency key, so nothing is queued twice);
3. starts queued runs whose time has come, up to each job's ``max_concurrent``, each in a
   supervisor process of its own session (runner.py) that records the run itself: runs go
   on, and are recorded, while the scheduler is down;
4. alerts about runs due for longer than ``jobs.late_after_s`` and not started.

``after: [a, b]``: the job runs once every upstream has succeeded since its last such run;
the run's scheduled time is the newest of those upstream runs' scheduled times (a chain of
nightly jobs shares the night's tick). ``on_update: [zone.table]``: the job runs when a
table gets a file newer than it has seen; the run's scheduled time is when that file was
added. A job seen for the first time starts from now: no past ticks, upstream runs or files.
A disabled job queues nothing (its cursor and watermarks move on). With both ``schedule`` and
``after``, ``after`` is not a trigger but a gate on the job's cron ticks (``Scheduler.gate``): a
tick's run waits, queued, with the reason, until every upstream has succeeded since the job's
previous tick and none of the upstream's runs is in flight (and alerts ``late`` as any run
that waits too long).

A manual run (``lakebook jobs run``, the REST API) wakes the leader through ``POST /wake`` on
its status app when it runs on this host, so the run starts at once, not at the next round.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from datetime import datetime, timedelta

from .._proc import process_alive
from .alerting import send_alert
from .cron import next_tick, previous_tick, select_ticks, ticks_between
from .definitions import JobSet, definition_files, load_jobs
from .runner import Outcome, check_executor, record_outcome, run_folder
from .store import JobStore, now_utc, this_host
from .supervisor import launcher, start_supervisor

log = logging.getLogger("lakebook.jobs")
WAITING = "waiting for"  # the reason a gated run records while it waits
ROUTES = "GET /health, GET /status, GET /metrics, POST /wake"


class Scheduler:
    """One scheduler process's state; ``tick()`` does one round."""

    def __init__(self, workspace, port: int | None = None):
        check_executor(workspace)
        self.workspace = workspace
        self.settings = workspace.settings.jobs
        self.store = JobStore(workspace)
        # host:pid:token[:port]: the port of its status app, where `lakebook jobs run` wakes it
        self.holder = f"{this_host()}:{os.getpid()}:{secrets.token_hex(4)}" + (f":{port}" if port else "")
        self.wakeup = threading.Event()  # set: do a round now (a manual run was queued), not after the pause
        self.leader = False
        self.jobs = JobSet()
        self._jobs_key: tuple = ()
        self._supervisors: dict = {}  # run id -> its supervisor's multiprocessing.Process
        self._launcher = launcher()
        self.round_at: datetime | None = None  # when the last round looked for due work

    # -- one round --------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> None:
        now = self.round_at = now or now_utc()
        self._reload()
        self._reap()
        self.leader = self.store.acquire_lease(self.holder, self.settings.lease_ttl_s, _dead_local_holder)
        if not self.leader:
            return
        self.reconcile()
        states = self.store.job_states()
        for job in self.jobs.jobs.values():
            enabled = self.enabled(job, states)
            self._queue_cron(job, states.get(job.name, {}).get("cursor"), now, enabled)
            self._queue_upstream(job, enabled)
            self._queue_data(job, enabled)
        self._start_due(now_utc(), states)  # not the round's start: the runs just queued are stamped after it
        self._alert_late(now)

    def pause_s(self, now: datetime | None = None) -> float:
        """How long to wait before the next round: ``tick_s``, or less when a cron tick falls
        due sooner, so that the round that starts it runs at its due time, not up to a whole
        ``tick_s`` after it. The next tick is the first after the last round's time, not after
        now: a round that woke a hair before a tick (the timer's clock is not the wall clock)
        did not see it, and runs again at once."""
        now = now or now_utc()
        after = min(self.round_at or now, now)
        ticks = [next_tick(job.definition.schedule, after) for job in self.jobs.jobs.values() if job.definition.schedule]
        until = min(((t - now).total_seconds() for t in ticks), default=self.settings.tick_s)
        return max(0.0, min(self.settings.tick_s, until))

    def enabled(self, job, states: dict) -> bool:
        override = states.get(job.name, {}).get("enabled")
        return job.definition.enabled if override is None else override

    def _reload(self) -> None:
        """The definitions, read again when a definition file or a notebook changed."""
        files = definition_files(self.workspace.jobs_dir)
        notebooks = [job.notebook_path or self.workspace.imports_dir / f"{job.definition.import_}.yaml"
                     for job in self.jobs.jobs.values()]
        key = tuple((str(p), p.stat().st_mtime_ns) for p in [*files, *notebooks] if p.exists())
        if key != self._jobs_key:
            self.jobs, self._jobs_key = load_jobs(self.workspace), key
            for name, problem in self.jobs.problems.items():
                log.warning("job %s does not load: %s", name, problem)

    def _reap(self) -> None:
        for run_id, process in list(self._supervisors.items()):
            if not process.is_alive():
                del self._supervisors[run_id]

    # -- reconciling --------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Fail (and retry per policy) each running run whose process is gone."""
        stale = now_utc() - timedelta(seconds=self.settings.stale_after_s)
        for run in self.store.runs(statuses=["running"], limit=10_000):
            reason = self._gone(run, stale)
            if reason and run["job"] in self.jobs.jobs:
                log.warning("run %s of %s: %s", run["id"], run["job"], reason)
                record_outcome(self.workspace, self.store, run, self.jobs.jobs[run["job"]], Outcome("failed", reason),
                               None)
            elif reason:
                self.store.finish_attempt(run["id"], "failed", None, reason=reason)

    def _gone(self, run: dict, stale: datetime) -> str | None:
        """Why a running run's process is gone, or None. On this host its pid is the judge (a
        supervisor busy starting has not beaten yet); elsewhere, and before the pid is
        recorded, a heartbeat older than ``stale``."""
        where = f"pid {run['pid']} on {run['host']}"
        if run["host"] == this_host() and run["pid"]:
            return None if process_alive(run["pid"]) else f"the run's process ({where}) is gone"
        if run["heartbeat"] is None or run["heartbeat"] < stale:
            return f"the run's process ({where}) has not been heard of since {run['heartbeat']:%H:%M:%S} UTC"
        return None

    # -- queueing --------------------------------------------------------------------------------------
    def _queue_cron(self, job, cursor: datetime | None, now: datetime, enabled: bool) -> None:
        schedule = job.definition.schedule
        if schedule is None:
            return
        if cursor is None or not enabled:
            self.store.enqueue(job, "cron", [], cursor=now)
            return
        due = ticks_between(schedule, cursor, now)
        if due:
            chosen = select_ticks(due, job.definition.catchup, now, self.settings.late_after_s)
            self.store.enqueue(job, "cron", chosen, cursor=due[-1])

    def _queue_upstream(self, job, enabled: bool) -> None:
        upstreams = job.definition.after
        if not upstreams or job.definition.schedule is not None:  # with a schedule, after: gates its ticks
            return
        marks = self.store.watermarks(job.name)
        news = {u: self.store.succeeded_since(u, marks.get(f"job:{u}", 0)) for u in upstreams}
        missing = {f"job:{u}": (news[u] or {}).get("id", 0) for u in upstreams if f"job:{u}" not in marks}
        if missing:  # first seen: start from the upstreams' newest successes
            self.store.enqueue(job, "upstream", [], watermarks=missing)
        elif all(news.values()):
            times = [max(n["scheduled_time"] for n in news.values())] if enabled else []
            self.store.enqueue(job, "upstream", times, watermarks={f"job:{u}": n["id"] for u, n in news.items()})

    def _queue_data(self, job, enabled: bool) -> None:
        tables = job.definition.on_update
        if not tables:
            return
        marks = self.store.watermarks(job.name)
        versions = self.store.table_versions(tables)
        missing = {f"table:{t}": (versions[t] or (0,))[0] for t in tables if f"table:{t}" not in marks}
        if missing:
            self.store.enqueue(job, "data", [], watermarks=missing)
            return
        changed = {t: v for t, v in versions.items() if v and v[0] > marks[f"table:{t}"]}
        if changed:
            times = [max(v[1] for v in changed.values())] if enabled else []
            self.store.enqueue(job, "data", times, watermarks={f"table:{t}": v[0] for t, v in changed.items()})

    # -- starting ---------------------------------------------------------------------------------------
    def _start_due(self, now: datetime, states: dict) -> None:
        running = self.store.running_counts()
        for run in self.store.queued(now):
            job = self.jobs.jobs.get(run["job"])
            if job is None or not self.enabled(job, states):
                continue  # waits until its definition loads again or it is enabled
            if running.get(job.name, 0) >= job.definition.max_concurrent:
                continue
            if waiting := self.gate(job, run):
                if run["reason"] != waiting:
                    self.store.update_run(run["id"], reason=waiting)
                continue
            if self.store.claim(run["id"]):
                if run["reason"].startswith(WAITING):
                    self.store.update_run(run["id"], reason="")
                running[job.name] = running.get(job.name, 0) + 1
                self._spawn(run)

    def gate(self, job, run: dict) -> str | None:
        """Why a cron run of a job with both ``schedule`` and ``after`` cannot start yet, or None.
        Its tick starts it only once every upstream job has succeeded since the job's previous
        tick and none of the upstream's runs is queued or running (a weekly retrain after the
        nightly batch trains on a batch rebuilt since last week, never on one half done). A
        manual run, a retry, and a job with only one of the two are not gated."""
        definition = job.definition
        if not (definition.after and definition.schedule) or run["trigger"] != "cron" or run["history"]:
            return None
        since = previous_tick(definition.schedule, run["scheduled_time"])
        waits = []
        for upstream in definition.after:
            state = self.store.upstream_state(upstream, since)
            if state["in_flight"]:
                waits.append(f"{upstream} (a run is {state['in_flight']})")
            elif state["succeeded"] is None:
                waits.append(f"{upstream} (no success since the previous tick, {since:%Y-%m-%d %H:%M} UTC)")
        return f"{WAITING} {', '.join(waits)}" if waits else None

    def _spawn(self, run: dict) -> None:
        folder = run_folder(self.workspace, run)
        folder.mkdir(parents=True, exist_ok=True)
        process = start_supervisor(self._launcher, self.workspace, run["id"], folder / "supervisor.log")
        self._supervisors[run["id"]] = process
        self.store.update_run(run["id"], pid=process.pid)
        log.info("run %s of %s (attempt %s) started, pid %s", run["id"], run["job"], run["attempt"], process.pid)

    def _alert_late(self, now: datetime) -> None:
        bound = now - timedelta(seconds=self.settings.late_after_s)
        for run in self.store.queued(now):  # waiting to start now, not for a retry's backoff
            job = self.jobs.jobs.get(run["job"])
            if job is not None and not run["late_alerted"] and run["scheduled_time"] < bound:
                self.store.update_run(run["id"], late_alerted=True)
                send_alert(self.workspace, job, "late", run)

    # -- what it reports -------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Start the supervisors' fork server now: it imports Papermill (seconds) while this
        process starts, not when the first run is due."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def status(self) -> dict:
        return {"leader": self.leader, "holder": self.holder, "lease_holder": self.store.leader(),
                "jobs": job_rows(self.store, self.jobs), "problems": self.jobs.problems,
                "running": sorted(self._supervisors)}

    def release(self) -> None:
        self.store.release_lease(self.holder)
        self.store.close()


def _dead_local_holder(holder: str) -> bool:
    """Whether a lease holder (``host:pid:token[:port]``) is a scheduler of this host that is
    gone: its lease need not be waited out."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return host == this_host() and pid.isdigit() and not process_alive(int(pid))


def job_rows(store: JobStore, jobs: JobSet, now: datetime | None = None) -> list[dict]:
    """Each job with its triggers, whether it is enabled, its next cron tick and its last run."""
    now = now or now_utc()
    states, last = store.job_states(), store.last_runs()
    rows = []
    for name, job in sorted(jobs.jobs.items()):
        d = job.definition
        override = states.get(name, {}).get("enabled")
        rows.append({"name": name, "notebook": str(d.notebook) if d.notebook else None, "import": d.import_, "schedule": d.schedule.cron if d.schedule else None,
                     "timezone": d.schedule.timezone if d.schedule else None, "after": d.after,
                     "on_update": d.on_update, "enabled": d.enabled if override is None else override,
                     "next_run": next_tick(d.schedule, now) if d.schedule else None,
                     "last_status": last.get(name, {}).get("status"), "last_run": last.get(name, {}).get("id")})
    return rows


# -- the service ---------------------------------------------------------------------------------------
def wake_port(holder: str | None) -> int | None:
    """The status port of a lease holder that runs on this host (where a queued manual run can
    wake it); None for a holder elsewhere or one that did not say."""
    parts = (holder or "").split(":")
    if len(parts) == 4 and parts[0] == this_host() and parts[3].isdigit():
        return int(parts[3])
    return None


def _loop(scheduler: Scheduler, stop: threading.Event) -> None:
    while not stop.is_set():
        scheduler.wakeup.clear()  # a wake from now on brings the next round forward
        try:
            scheduler.tick()
        except Exception:  # one bad round (the database busy, a file half-written) is not the end
            log.exception("a scheduler round failed; trying again")
        scheduler.wakeup.wait(scheduler.pause_s())


def create_status_app(scheduler: Scheduler):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from ..asgi import ErrorsAndStatuses, Json, OriginGuard, routing_error_handler
    from ..metrics import starlette_route
    from .metrics import scheduler_families

    def health(request):
        return Json({"status": "ok", "leader": scheduler.leader})

    def status(request):
        return Json(scheduler.status())

    def wake(request):
        scheduler.wakeup.set()
        return Json({"woken": True})

    return Starlette(routes=[Route("/health", health), Route("/status", status), Route("/wake", wake, methods=["POST"]),
                             starlette_route(lambda: scheduler_families(scheduler))],
                     exception_handlers={HTTPException: routing_error_handler(ROUTES)},
                     middleware=[Middleware(ErrorsAndStatuses, count_status=lambda status: None),
                                 Middleware(OriginGuard, loopback_host=True)])


def run_scheduler(workspace, port: int | None = None, echo=print) -> None:
    """Schedule the workspace's jobs until SIGINT or SIGTERM. Runs in flight go on (they record
    themselves); the lease is given up so a standby takes over at once."""
    from ..asgi import serve_until_stopped

    port = port or workspace.settings.jobs.port
    scheduler = Scheduler(workspace, port)
    scheduler.warm_up()
    stop = threading.Event()
    loop = threading.Thread(target=_loop, args=(scheduler, stop), name="lakebook-scheduler", daemon=True)
    loop.start()
    echo(f"lakebook jobs scheduler: status on http://127.0.0.1:{port}/status")
    try:
        serve_until_stopped(create_status_app(scheduler), "stopping the scheduler; runs in flight go on", port=port)
    finally:
        stop.set()
        scheduler.wakeup.set()
        loop.join()
        scheduler.release()


