"""The Jobs panel API's pieces that need no server: job rows as JSON, paths the Lab can open,
runs queued for the scheduler or handed to a process of their own, run ids checked against
their job, and job definitions written from the "Schedule this notebook" form (refused with
the field named, nothing half-written, no job replaced unless asked)."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from jobs_support import add_job, add_report_job
from lakebook.errors import BadRequest, Conflict, JobDefinitionError, NotFound, UnknownJob
from lakebook.jobs import JobStore, load_jobs, set_enabled
from lakebook.server.handlers import error_status
from lakebook.server.jobs import HistoryParams, JobsAPI, NotebookParams, RunRequest, ScheduleRequest, lab_path


@pytest.fixture
def jobs_ws(workspace):
    add_report_job(workspace.root)
    return workspace


class Started(list):
    """The runs handed to a process of their own (unit tests start none)."""

    def __call__(self, workspace, run_id: int) -> None:
        self.append(run_id)


@pytest.fixture
def started() -> Started:
    return Started()


@pytest.fixture
def api(jobs_ws, started) -> JobsAPI:
    return JobsAPI(lambda: jobs_ws, jobs_ws.root, start_run=started)


def schedule(api, **fields) -> dict:
    return api.schedule_notebook(ScheduleRequest(**{"name": "nightly", "notebook": "notebooks/ok.ipynb",
                                                    "cron": "30 2 * * *", **fields}))


def test_the_jobs_list_has_schedule_next_run_last_status_and_problems(api, jobs_ws):
    add_job(jobs_ws.root, "broken", "notebook: notebooks/missing.ipynb")
    answer = api.jobs_json()
    [row] = answer["jobs"]
    assert (row["name"], row["schedule"], row["timezone"], row["enabled"], row["last_status"]) == (
        "report", "0 6 * * *", "Europe/Paris", True, None)
    assert row["next_run"].endswith("Z") and row["next_run"][11:16] in ("04:00", "05:00")  # 06:00 in Paris
    assert "notebooks/missing.ipynb does not exist" in answer["problems"]["broken"]
    assert answer["scheduler"] is None


def test_run_now_without_a_scheduler_hands_the_queued_run_to_a_process(api, jobs_ws, started):
    answer = api.run_now("report", RunRequest(parameters={"n": 7}))
    run = answer["run"]
    assert (answer["runner"], run["status"], run["trigger"], run["parameters"]) == ("lab", "queued", "manual", {"n": 7})
    assert started == [run["id"]]
    assert api.jobs_json()["jobs"][0]["last_status"] == "queued"


def test_run_now_with_a_scheduler_queues_the_run_for_it(api, jobs_ws, started):
    store = JobStore(jobs_ws)
    assert store.acquire_lease("host:1:abc", 60)
    store.close()
    answer = api.run_now("report", RunRequest())
    assert (answer["runner"], answer["scheduler"], answer["run"]["status"]) == ("scheduler", "host:1:abc", "queued")
    assert started == []


def test_run_now_refuses_a_disabled_job_a_wrong_parameter_and_an_unknown_job(api, jobs_ws, started):
    with pytest.raises(JobDefinitionError, match=r"parameters\.n: 'five' is not of type int"):
        api.run_now("report", RunRequest(parameters={"n": "five"}))
    with pytest.raises(UnknownJob, match="did you mean 'report'"):
        api.run_now("reprot", RunRequest())
    api.set_enabled("report", False)
    with pytest.raises(JobDefinitionError, match="disabled"):
        api.run_now("report", RunRequest())
    assert started == [] and api.runs_json("report", HistoryParams())["runs"] == []


def test_enable_and_disable_answer_the_row(api):
    assert api.set_enabled("report", False)["enabled"] is False
    assert api.set_enabled("report", True)["enabled"] is True


def test_runs_are_looked_up_within_their_job_and_cancelled(api, jobs_ws):
    add_job(jobs_ws.root, "other", "notebook: notebooks/ok.ipynb")
    run_id = api.run_now("report", RunRequest())["run"]["id"]
    with pytest.raises(UnknownJob, match=f"job other has no run {run_id}"):
        api.run("other", run_id)
    with pytest.raises(UnknownJob):
        api.cancel("other", run_id)
    with pytest.raises(NotFound, match="no output notebook"):
        api.output_json("report", run_id)
    cancelled = api.cancel("report", run_id)["run"]
    assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "cancelled before it started")
    assert api.job_json("report")["runs"][0]["status"] == "cancelled"


def test_one_job_has_its_definition_and_paths_the_lab_opens(api, jobs_ws):
    answer = api.job_json("report")
    assert answer["definition"]["parameters"] == {"n": 2} and answer["definition"]["schedule"]["cron"] == "0 6 * * *"
    assert (answer["file"], answer["notebook"], answer["runs"]) == ("jobs/report.yaml", "notebooks/ok.ipynb", [])


def test_lab_paths_are_relative_to_the_lab_root_and_never_hidden_ones(tmp_path):
    (tmp_path / "lab" / ".state").mkdir(parents=True)
    for name in ("a.ipynb", ".state/out.ipynb"):
        (tmp_path / "lab" / name).write_text("{}")
    (tmp_path / "elsewhere.ipynb").write_text("{}")
    root = tmp_path / "lab"
    assert lab_path(root / "a.ipynb", root, allow_hidden=False) == "a.ipynb"
    assert lab_path(root / ".state/out.ipynb", root, allow_hidden=False) is None
    assert lab_path(root / ".state/out.ipynb", root, allow_hidden=True) == ".state/out.ipynb"
    assert lab_path(tmp_path / "elsewhere.ipynb", root, allow_hidden=True) is None
    assert lab_path(root / "gone.ipynb", root, allow_hidden=True) is None and lab_path(None, root, True) is None


def test_a_notebooks_parameters_come_with_their_types(api):
    answer = api.notebook_parameters_json(NotebookParams(path="notebooks/ok.ipynb"))
    assert [(p["name"], p["type"], p["default"]) for p in answer["parameters"]] == [
        ("n", "int", "1"), ("label", "str", "'x'")]
    with pytest.raises(NotFound, match="path: no .ipynb file notebooks/nope.ipynb"):
        api.notebook_parameters_json(NotebookParams(path="notebooks/nope.ipynb"))


def test_scheduling_a_notebook_writes_a_definition_that_loads(api, jobs_ws):
    row = schedule(api, parameters={"n": 4, "label": "nightly"}, timezone="America/New_York")
    assert (row["name"], row["schedule"], row["timezone"], row["notebook"]) == (
        "nightly", "30 2 * * *", "America/New_York", "notebooks/ok.ipynb")
    written = yaml.safe_load((jobs_ws.jobs_dir / "nightly.yaml").read_text())
    assert written == {"notebook": "notebooks/ok.ipynb", "schedule": {"cron": "30 2 * * *",
                       "timezone": "America/New_York"}, "parameters": {"n": 4, "label": "nightly"}}
    job = load_jobs(jobs_ws, strict=True).job("nightly")
    assert job.definition.parameters == {"n": 4, "label": "nightly"}


def test_an_existing_job_is_replaced_only_when_asked(api, jobs_ws):
    with pytest.raises(Conflict, match="name: job report exists") as caught:
        schedule(api, name="report")
    assert caught.value.http_status == 409 and "overwrite" in caught.value.hint
    assert "0 6 * * *" in (jobs_ws.jobs_dir / "report.yaml").read_text()
    assert schedule(api, name="report", overwrite=True)["schedule"] == "30 2 * * *"
    add_job(jobs_ws.root, "named", "name: daily\nnotebook: notebooks/ok.ipynb")
    with pytest.raises(Conflict, match="name: job daily is defined in named.yaml"):
        schedule(api, name="daily", overwrite=True)


@pytest.mark.parametrize("fields, message", [
    ({"cron": "61 * * * *"}, "jobs/nightly.yaml: schedule.cron: '61 * * * *' is not a cron expression"),
    ({"timezone": "Mars/Olympus"}, "jobs/nightly.yaml: schedule.timezone: unknown time zone"),
    ({"parameters": {"m": 1}}, "jobs/nightly.yaml: parameters.m: ok.ipynb has no parameter 'm'"),
    ({"parameters": {"n": "many"}}, "jobs/nightly.yaml: parameters.n: 'many' is not of type int"),
    ({"name": "Nightly Report"}, "name: 'Nightly Report' is not a job name"),
    ({"name": "../escape"}, "name: '../escape' is not a job name"),
])
def test_a_bad_form_names_its_field_and_writes_nothing(api, jobs_ws, fields, message):
    with pytest.raises(JobDefinitionError) as caught:
        schedule(api, **fields)
    assert caught.value.message.startswith(message), caught.value.message
    assert caught.value.http_status == 400 and caught.value.hint
    assert sorted(p.name for p in jobs_ws.jobs_dir.iterdir()) == ["report.yaml"]  # no staging folder left


def test_the_notebook_must_be_a_notebook_inside_the_lab(api):
    with pytest.raises(BadRequest, match=r"notebook: \.\./x\.ipynb is outside"):
        schedule(api, notebook="../x.ipynb")
    with pytest.raises(NotFound, match="notebook: no .ipynb file notebooks/none.ipynb"):
        schedule(api, notebook="notebooks/none.ipynb")


def test_a_request_missing_a_field_is_a_422_naming_it():
    with pytest.raises(ValidationError) as caught:
        ScheduleRequest.model_validate({"name": "x", "notebook": "a.ipynb", "crontab": "* * * * *"})
    status, message, _ = error_status(caught.value)
    assert status == 422 and "cron: Field required" in message and "crontab: Extra inputs" in message
