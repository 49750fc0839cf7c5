"""Notebook jobs: definitions (``jobs/*.yaml``), cron, run history in the catalog database, the
Papermill runner and the scheduler. See scheduler.py for how runs are triggered and
store.py for the invariants that keep every run once."""

from .api import cancel_run, jobs_overview, parse_parameters, run_job, run_logs, set_enabled
from .definitions import Job, JobDefinition, JobSet, PublishStep, check_parameters, load_jobs, register_publish_step
from .store import JobStore

__all__ = ["Job", "JobDefinition", "JobSet", "JobStore", "PublishStep", "cancel_run", "check_parameters",
           "jobs_overview", "load_jobs", "parse_parameters", "register_publish_step", "run_job",
           "run_logs", "set_enabled"]
