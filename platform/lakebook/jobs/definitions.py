"""Job definitions: ``<jobs dir>/*.yaml``, one job a file, read into pydantic models.

A job's name is its file's stem unless the file says ``name:``. Every error names the file,
the key and what to write instead. ``parameters`` are checked against the notebook's
``parameters`` cell (``papermill.inspect_notebook``): a parameter's type is its annotation
when it has one, else the type of its default value (a default of None, or one that is not
a literal, takes any value).
"""

from __future__ import annotations

import ast
import graphlib
import hashlib
import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import JobDefinitionError, UnknownJob, did_you_mean
from ..names import IDENTIFIER_RULE, is_identifier

TABLE_NAME = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
ALERT_EVENTS = ("failure", "retry", "success", "late")
HINTS = {
    "notebook": "write notebook: notebooks/report.ipynb (relative to the workspace)",
    "schedule": "write schedule: {cron: '0 6 * * *', timezone: Europe/Paris} (5 fields, or 6 with seconds first)",
    "cron": "write 5 fields (minute hour day month weekday), or 6 with seconds first: '*/10 * * * * *'",
    "timezone": "write an IANA zone such as UTC or Europe/Paris",
    "timeout": "write seconds (600) or a duration: 90s, 30m, 2h",
    "retries": "write retries: {max: 3, backoff: 60} (backoff in seconds, doubled after each failed attempt)",
    "catchup": "write catchup: skip, latest or all",
    "alerts": f"write alerts: {{on: [failure], to: [channel]}} (on: {', '.join(ALERT_EVENTS)})",
    "on_update": "write catalog tables as zone.name: on_update: [warehouse.flights_clean]",
    "after": "write after: [other_job] (names of jobs in the jobs folder)",
    "max_concurrent": "write a whole number, 1 or more",
    "publish": "write publish: [{dashboard_snapshot: NAME}] (a dashboard of lakebook dashboards list)",
    "parameters": "write parameters: {name: value} for names of the notebook's parameters cell",
    "import": "write import: NAME, an import of the imports folder (lakebook import list)",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Schedule(_Model):
    cron: str
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        fields = value.split()
        if len(fields) not in (5, 6) or not croniter.is_valid(value, second_at_beginning=True):
            raise ValueError(f"{value!r} is not a cron expression of 5 or 6 fields")
        return " ".join(fields)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class Retries(_Model):
    max: int = Field(0, ge=0, le=100, description="attempts after the first")
    backoff: float = Field(60.0, ge=0, description="seconds before the first retry; doubled for each next one")

    def delay_s(self, failed_attempt: int) -> float:
        """Seconds between failed attempt ``failed_attempt`` (1-based) and the next one."""
        return self.backoff * 2 ** (failed_attempt - 1)


class Alerts(_Model):
    on: list[Literal["failure", "retry", "success", "late"]] = Field(default_factory=lambda: ["failure"])
    to: list[str] = Field(..., min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, value: Any) -> Any:
        """YAML 1.1 reads an unquoted key ``on`` as true."""
        if isinstance(value, dict) and True in value:
            value = {("on" if k is True else k): v for k, v in value.items()}
        return value


class PublishStep(_Model):
    """What a job does with a succeeded run (render a dashboard snapshot, deploy an endpoint):
    a typed step, registered by ``register_publish_step``, selected by ``type:``; a step with a
    ``shorthand`` field may be written ``{<type>: value}``."""

    step_type: ClassVar[str]
    shorthand: ClassVar[str | None] = None
    type: str

    def publish(self, workspace, run) -> None:
        raise NotImplementedError


PUBLISH_STEPS: dict[str, type[PublishStep]] = {}
# Steps of later stages, imported when a definition names them (jobs must not import them).
BUILTIN_PUBLISH_STEPS = {"dashboard_snapshot": "lakebook.dashboards.snapshots"}


def register_publish_step(step: type[PublishStep]) -> type[PublishStep]:
    PUBLISH_STEPS[step.step_type] = step
    return step


def _step_class(kind: Any) -> type[PublishStep]:
    if kind in BUILTIN_PUBLISH_STEPS and kind not in PUBLISH_STEPS:
        importlib.import_module(BUILTIN_PUBLISH_STEPS[kind])
    if kind not in PUBLISH_STEPS:
        known = ", ".join(sorted(set(PUBLISH_STEPS) | set(BUILTIN_PUBLISH_STEPS)))
        raise ValueError(f"publish step type {kind!r} is not available (available: {known})")
    return PUBLISH_STEPS[kind]


def _publish_step(value: Any) -> PublishStep:
    if isinstance(value, dict) and "type" not in value and len(value) == 1:
        kind, argument = next(iter(value.items()))
        step = _step_class(kind)
        return step.model_validate({"type": kind, step.shorthand: argument} if step.shorthand else value)
    return _step_class(value.get("type") if isinstance(value, dict) else None).model_validate(value)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds, from a number of seconds or ``90s``, ``30m``, ``2h``, ``1d``."""
    match = _DURATION.match(str(value)) if not isinstance(value, bool) else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class JobDefinition(_Model):
    name: str
    notebook: Path | None = None
    import_: str | None = Field(None, alias="import", description="an import (imports/NAME.yaml) run instead of a notebook")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedule: Schedule | None = None
    after: list[str] = Field(default_factory=list)
    on_update: list[str] = Field(default_factory=list)
    retries: Retries = Field(default_factory=Retries)
    timeout: float | None = None
    max_concurrent: int = Field(1, ge=1)
    catchup: Literal["skip", "latest", "all"] = "latest"
    alerts: Alerts | None = None
    enabled: bool = True
    publish: list[PublishStep] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_identifier(value):
            raise ValueError(f"job names are {IDENTIFIER_RULE}")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _notebook_or_import(self):
        if (self.notebook is None) == (self.import_ is None):
            raise ValueError("write one of notebook: (a notebook to run) or import: (an import's name)")
        if self.import_ is not None and self.parameters:
            raise ValueError("an import job takes no parameters (its import's file says what it pulls)")
        return self

    @field_validator("on_update")
    @classmethod
    def _tables(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not re.match(TABLE_NAME, t)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a catalog table name zone.name")
        return value

    @field_validator("publish", mode="before")
    @classmethod
    def _publish(cls, value: Any) -> list[PublishStep]:
        if not isinstance(value, list):
            raise ValueError("publish is a list of steps")
        return [_publish_step(v) for v in value]

    @property
    def max_attempts(self) -> int:
        return self.retries.max + 1

    def alerts_on(self, event: str) -> list[str]:
        """The channels to tell about ``event`` (failure, retry, success, late)."""
        return list(self.alerts.to) if self.alerts and event in self.alerts.on else []


@dataclass
class Job:
    """A loaded job: its definition, file, notebook (None for an import job) and the hash of
    the definition and what it runs (the notebook, or the import's file)."""

    definition: JobDefinition
    path: Path
    notebook_path: Path | None
    definition_hash: str

    @property
    def name(self) -> str:
        return self.definition.name


@dataclass
class JobSet:
    """The workspace's jobs that load, and why each file that does not load does not."""

    jobs: dict[str, Job] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def job(self, name: str) -> Job:
        if name in self.jobs:
            return self.jobs[name]
        if name in self.problems:
            raise JobDefinitionError(self.problems[name], hint="fix the job's file")
        guess = did_you_mean(name, self.jobs)
        raise UnknownJob(f"no job {name!r}", hint=guess or f"jobs: {', '.join(sorted(self.jobs)) or 'none'}")


# -- loading -------------------------------------------------------------------------------------------
def definition_files(jobs_dir: Path) -> list[Path]:
    return sorted(jobs_dir.glob("*.yaml")) if jobs_dir.is_dir() else []


def load_jobs(workspace, *, strict: bool = False) -> JobSet:
    """Every job of the workspace. With ``strict``, the first problem is raised."""
    found = JobSet()
    for path in definition_files(workspace.jobs_dir):
        try:
            job = load_job(workspace, path)
            found.jobs[job.name] = job
        except JobDefinitionError as exc:
            found.problems[path.stem] = exc.message + (f" ({exc.hint})" if exc.hint else "")
            if strict:
                raise
    _check_after(found, strict)
    return found


def load_job(workspace, path: Path, *, shown: str | Path | None = None) -> Job:
    """One definition file, checked on its own (``after:`` names are checked by load_jobs);
    errors name it as ``shown`` (default: its path)."""
    label = shown or path
    raw = _read(path, label)
    raw.setdefault("name", path.stem)
    try:
        definition = JobDefinition.model_validate(raw)
    except ValidationError as exc:
        raise _definition_error(label, exc) from None
    _check_channels(definition, label, set(workspace.settings.alerts.channels))
    if definition.import_ is not None:
        return Job(definition, path, None, _hash(definition, _import_file(workspace, definition.import_, label)))
    notebook = definition.notebook if definition.notebook.is_absolute() else workspace.root / definition.notebook
    if not notebook.is_file():
        raise JobDefinitionError(f"{label}: notebook: {definition.notebook} does not exist", hint=HINTS["notebook"])
    check_parameters(notebook, definition.parameters, where=f"{label}: parameters")
    return Job(definition, path, notebook, _hash(definition, notebook))


def _import_file(workspace, name: str, label: str | Path) -> Path:
    """The file of the import an import job runs, checked to load."""
    from ..errors import LakebookError
    from ..imports import load_import

    try:
        load_import(workspace, name)
    except LakebookError as exc:
        raise JobDefinitionError(f"{label}: import: {exc.message}", hint=exc.hint) from None
    return workspace.imports_dir / f"{name}.yaml"


def _check_channels(definition: JobDefinition, path: str | Path, declared: set[str]) -> None:
    """Every ``alerts.to`` name is a channel of ``alerts.channels`` in lakebook.yaml."""
    for channel in definition.alerts.to if definition.alerts else ():
        if channel not in declared:
            guess = did_you_mean(channel, declared)
            raise JobDefinitionError(
                f"{path}: alerts.to: no alert channel {channel!r}",
                hint=(guess + " " if guess else "") + "declare it in lakebook.yaml: alerts: {channels: {"
                f"{channel}: {{type: webhook, url: ...}}}}}} (or type: email), or remove it from alerts.to")


def _read(path: Path, label: str | Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise JobDefinitionError(f"{label} is not valid YAML: {exc}", hint="see the example in README.md") from None
    if not isinstance(raw, dict):
        raise JobDefinitionError(f"{label} must hold a mapping of job settings", hint=HINTS["notebook"])
    return raw


def _definition_error(path: str | Path, exc: ValidationError) -> JobDefinitionError:
    """The first problem of a definition, naming its key, with what to write instead."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) or "(file)"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        guess = did_you_mean(loc[-1], allowed)
        return JobDefinitionError(f"{path}: {key}: unknown key",
                                  hint=f"{guess + ' ' if guess else ''}allowed keys: {', '.join(allowed)}")
    message = err["msg"].removeprefix("Value error, ")
    hint = next((HINTS[p] for p in reversed(loc) if p in HINTS), None)
    return JobDefinitionError(f"{path}: {key}: {message}", hint=hint)


def _allowed_keys(loc: list[str]) -> list[str]:
    model: type[BaseModel] = JobDefinition
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        nested = [a for a in (annotation, *getattr(annotation, "__args__", ())) if isinstance(a, type)
                  and issubclass(a, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _hash(definition: JobDefinition, notebook: Path) -> str:
    digest = hashlib.sha256(json.dumps(definition.model_dump(mode="json"), sort_keys=True).encode())
    digest.update(notebook.read_bytes())
    return digest.hexdigest()[:16]


def _check_after(found: JobSet, strict: bool) -> None:
    """Every ``after:`` name is a job, and the ``after:`` graph has no cycle."""
    known = set(found.jobs) | set(found.problems)
    for job in list(found.jobs.values()):
        for upstream in job.definition.after:
            if upstream not in known:
                guess = did_you_mean(upstream, known)
                _problem(found, job, f"{job.path}: after: no job {upstream!r}",
                         (guess + " " if guess else "") + HINTS["after"], strict)
    graph = {name: [u for u in job.definition.after if u in found.jobs] for name, job in found.jobs.items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        message = f"after: the jobs wait for each other in a cycle: {' -> '.join(reversed(cycle))}"
        for name in set(cycle):
            if name in found.jobs:
                _problem(found, found.jobs[name], f"{found.jobs[name].path}: {message}",
                         "remove one of these after: entries", strict)


def _problem(found: JobSet, job: Job, message: str, hint: str, strict: bool) -> None:
    if strict:
        raise JobDefinitionError(message, hint=hint)
    found.jobs.pop(job.name, None)
    found.problems[job.name] = f"{message} ({hint})"


# -- parameters ----------------------------------------------------------------------------------------
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                       "list": (list,), "dict": (dict,)}


def notebook_parameters(notebook: Path) -> dict[str, dict]:
    """The notebook's parameters (papermill.inspect_notebook), each with its ``type`` (or None: any)."""
    from ._papermill import import_papermill

    papermill = import_papermill()
    try:
        found = papermill.inspect_notebook(str(notebook))
    except (ValueError, OSError) as exc:
        raise JobDefinitionError(f"cannot read the parameters of {notebook}: {exc}",
                                 hint="a notebook needs a kernel (metadata.kernelspec) and a cell tagged "
                                      "'parameters'") from None
    return {name: {**info, "type": _parameter_type(info)} for name, info in found.items()}


def _parameter_type(info: dict) -> str | None:
    declared = str(info.get("inferred_type_name") or "None").split("[")[0].strip()
    if declared in _TYPES:
        return declared
    try:
        default = ast.literal_eval(str(info.get("default")))
    except (ValueError, SyntaxError):
        return None
    return type(default).__name__ if type(default).__name__ in _TYPES else None


def check_parameters(notebook: Path, parameters: dict[str, Any], *, where: str) -> None:
    """Each parameter is one of the notebook's, of its type; else a JobDefinitionError naming it."""
    if not parameters:
        return
    declared = notebook_parameters(notebook)
    for name, value in parameters.items():
        if name not in declared:
            guess = did_you_mean(name, declared)
            raise JobDefinitionError(f"{where}.{name}: {notebook.name} has no parameter {name!r}",
                                     hint=f"{guess + ' ' if guess else ''}its parameters: "
                                          f"{', '.join(declared) or 'none (tag a cell parameters)'}")
        wanted = declared[name]["type"]
        if wanted and not _is_type(value, wanted):
            raise JobDefinitionError(f"{where}.{name}: {value!r} is not of type {wanted}",
                                     hint=f"write a {wanted}, like its default {declared[name]['default']}")


def _is_type(value: Any, wanted: str) -> bool:
    if isinstance(value, bool) and wanted != "bool":
        return False
    return isinstance(value, _TYPES[wanted])
