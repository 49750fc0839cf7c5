"""The scheduler's metrics, read from the run history in the catalog database (so every
scheduler of a database, leader or standby, reports the same runs) and from the process:
runs by job and status, runs running, queued and late, whether this process leads, when its
last round ran, and the definitions that do not load. Labels: job names (declared) and the
run statuses of store.STATUSES."""

from __future__ import annotations

from typing import Iterable

from ..metrics import counter, gauge
from .store import FINISHED, now_utc


def scheduler_families(scheduler) -> Iterable:
    """The families of a ``Scheduler`` now."""
    now = now_utc()
    counts = scheduler.store.run_counts()
    late = scheduler.store.late_counts(now, scheduler.settings.late_after_s)
    jobs = sorted(set(scheduler.jobs.jobs) | {job for job, _ in counts})

    def per_job(status: str) -> dict:
        return {job: counts.get((job, status), 0) for job in jobs}

    yield counter("lakebook_jobs_runs_finished", "Runs that ended, by job and how (retried attempts not counted).",
                  {(job, status): n for (job, status), n in counts.items() if status in FINISHED}, ["job", "status"])
    yield gauge("lakebook_jobs_runs_running", "Runs running now.", per_job("running"), ["job"])
    yield gauge("lakebook_jobs_runs_queued", "Runs queued (due, waiting for a slot or gate, or a retry's backoff).",
                per_job("queued"), ["job"])
    yield gauge("lakebook_jobs_runs_late", "Queued runs due for longer than jobs.late_after_s and not started.",
                {job: late.get(job, 0) for job in jobs}, ["job"])
    yield gauge("lakebook_jobs_scheduler_leader", "1 while this scheduler holds the lease (it starts the runs).",
                int(scheduler.leader))
    yield gauge("lakebook_jobs_scheduler_last_round_timestamp_seconds", "When this scheduler's last round ran "
                "(Unix time).", scheduler.round_at.timestamp() if scheduler.round_at else None)
    yield gauge("lakebook_jobs_defined", "Jobs whose definitions load.", len(scheduler.jobs.jobs))
    yield gauge("lakebook_jobs_definition_problems", "Job definitions that do not load.", len(scheduler.jobs.problems))
