"""REST handlers of the Jobs panel, under ``/lakebook/api/jobs`` (see jobs.py for what they
answer). Like the Lake panel's: authenticated, the work on a worker thread, errors mapped by
``handlers.error_status`` into lakebook's one error shape.

    GET  /lakebook/api/jobs                                  jobs, problems, the scheduler
    POST /lakebook/api/jobs                                  schedule a notebook (201)
    GET  /lakebook/api/jobs/notebook-parameters?path=P       a notebook's parameters
    GET  /lakebook/api/jobs/{name}                           definition and recent runs
    POST /lakebook/api/jobs/{name}/enable | /disable
    GET  /lakebook/api/jobs/{name}/runs?limit=N              history
    POST /lakebook/api/jobs/{name}/runs                      run now (202), {"parameters": {...}}
    POST /lakebook/api/jobs/{name}/runs/{id}/cancel
    GET  /lakebook/api/jobs/{name}/runs/{id}/output          output notebook path and HTML
    GET  /lakebook/api/jobs/{name}/runs/{id}/logs
"""

from __future__ import annotations

import json

import tornado.web

from ..errors import BadRequest
from .handlers import LakebookHandler
from .jobs import HistoryParams, JobsAPI, NotebookParams, RunRequest, ScheduleRequest

JOB = r"(?P<name>[^/]+)"
RUN = r"(?P<run_id>[0-9]+)"


class JobsBase(LakebookHandler):
    @property
    def jobs(self) -> JobsAPI:
        return self.extensionapp.jobs

    def body_json(self) -> dict:
        """The request's JSON object ({} for an empty body)."""
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise BadRequest("the request body is not JSON", hint="send a JSON object") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body is not a JSON object", hint="send a JSON object")
        return body


class JobsHandler(JobsBase):
    @tornado.web.authenticated
    async def get(self) -> None:
        """Every job with its schedule, next run, last status and whether it is enabled."""
        await self.run(self.jobs.jobs_json)

    @tornado.web.authenticated
    async def post(self) -> None:
        """Schedule a notebook: write ``jobs/<name>.yaml``."""
        request = ScheduleRequest.model_validate(self.body_json())
        self.set_status(201)
        await self.run(self.jobs.schedule_notebook, request)


class NotebookParametersHandler(JobsBase):
    @tornado.web.authenticated
    async def get(self) -> None:
        """The parameters of a notebook's ``parameters`` cell (``?path=`` as the Lab names it)."""
        await self.run(self.jobs.notebook_parameters_json, NotebookParams.model_validate(self.query_params()))


class JobHandler(JobsBase):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        await self.run(self.jobs.job_json, name)


class EnableHandler(JobsBase):
    @tornado.web.authenticated
    async def post(self, name: str, action: str) -> None:
        await self.run(self.jobs.set_enabled, name, action == "enable")


class RunsHandler(JobsBase):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """The job's run history, newest first (``?limit=N``)."""
        await self.run(self.jobs.runs_json, name, HistoryParams.model_validate(self.query_params()))

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        """Run the job now; answers with the queued run at once."""
        request = RunRequest.model_validate(self.body_json())
        self.set_status(202)
        await self.run(self.jobs.run_now, name, request)


class CancelHandler(JobsBase):
    @tornado.web.authenticated
    async def post(self, name: str, run_id: str) -> None:
        await self.run(self.jobs.cancel, name, int(run_id))


class OutputHandler(JobsBase):
    @tornado.web.authenticated
    async def get(self, name: str, run_id: str) -> None:
        await self.run(self.jobs.output_json, name, int(run_id))


class LogsHandler(JobsBase):
    @tornado.web.authenticated
    async def get(self, name: str, run_id: str) -> None:
        await self.run(self.jobs.logs_json, name, int(run_id))


def job_handlers() -> list[tuple[str, type]]:
    root = "/lakebook/api/jobs"
    return [
        (rf"{root}/?", JobsHandler),
        (rf"{root}/notebook-parameters/?", NotebookParametersHandler),
        (rf"{root}/{JOB}/?", JobHandler),
        (rf"{root}/{JOB}/(?P<action>enable|disable)/?", EnableHandler),
        (rf"{root}/{JOB}/runs/?", RunsHandler),
        (rf"{root}/{JOB}/runs/{RUN}/cancel/?", CancelHandler),
        (rf"{root}/{JOB}/runs/{RUN}/output/?", OutputHandler),
        (rf"{root}/{JOB}/runs/{RUN}/logs/?", LogsHandler),
    ]
