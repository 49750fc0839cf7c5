"""Import definitions: ``imports/*.yaml``, one import a file, read into pydantic models.

An import's name is its file's stem. Every error names the file, the key and what to write
instead. A credential is never written in the file: ``auth`` names an environment variable or
a secrets file holding it, and a literal token (``auth.value``, a credential-like query
parameter in ``url`` or ``params``) is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ImportDefinitionError, UnknownImport, did_you_mean
from ..names import IDENTIFIER_RULE, is_identifier
from ..redact import is_secret_param
from .jsonpath import compile_path

HINTS = {
    "source": "write source: NAME, a contract of the contracts folder (lakebook contracts list)",
    "url": "write url: https://api.example.org/v1/items (http or https)",
    "auth": "write auth: {header: Authorization, scheme: Bearer, env: API_TOKEN} (or file: PATH instead of env)",
    "pagination": ("write pagination: {type: next_link, path: links.next} (no path: the Link header), "
                   "{type: cursor, param: cursor, path: meta.next}, or {type: page, param: page, start: 1}"),
    "records": "write records: data.items (the JSON path of the list of records; $ for the whole response)",
    "incremental": "write incremental: {cursor_field: updated_at, param: since}",
    "rate_limit": "write requests per second: rate_limit: 5",
    "retries": "write retries: {max: 5, backoff: 1} (seconds before the first retry, doubled after each)",
    "timeout": "write seconds (30) or a duration: 30s, 2m",
    "map": "write map: {field_in_record: contract_field}",
    "params": "write params: {name: value}",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|ms)?\s*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _checked_path(value: str) -> str:
    compile_path(value)  # a ValueError names what is wrong
    return value


JsonPath = Annotated[str, Field(min_length=1)]


class Auth(_Model):
    """A credential sent with every request: in a header (``scheme`` before it) or as a query
    parameter, its value read from an environment variable or a secrets file, never the YAML."""

    header: str | None = Field(None, description="the header that carries it (Authorization)")
    scheme: str | None = Field(None, description="written before the value in the header: Bearer, Token")
    param: str | None = Field(None, description="the query parameter that carries it, for APIs that take one")
    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="environment variable holding it")
    file: Path | None = Field(None, description="file holding it (outside git; relative to the workspace)")

    @model_validator(mode="before")
    @classmethod
    def _no_literal(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("a credential is never written in an import's file")
        if isinstance(value, dict) and {"value", "token", "password", "secret"} & set(value):
            raise ValueError("a credential is never written in an import's file")
        return value

    @model_validator(mode="after")
    def _one_place(self):
        if (self.header is None) == (self.param is None):
            raise ValueError("write one of header or param")
        if (self.env is None) == (self.file is None):
            raise ValueError("write one of env or file: where the credential is read from")
        if self.scheme is not None and self.header is None:
            raise ValueError("scheme goes with header")
        return self


class NextLink(_Model):
    type: Literal["next_link"]
    path: JsonPath | None = Field(None, description="JSON path of the next page's URL; none: the Link header's rel=next")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return value if value is None else _checked_path(value)


class CursorPages(_Model):
    type: Literal["cursor"]
    param: str = Field(..., min_length=1, description="the query parameter the next cursor is sent as")
    path: JsonPath = Field(..., description="JSON path of the next cursor in a response (none or empty: the end)")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _checked_path(value)


class NumberedPages(_Model):
    type: Literal["page"]
    param: str = Field("page", min_length=1, description="the query parameter the page number is sent as")
    start: int = Field(1, ge=0, description="the first page's number; an empty page is the end")


Pagination = Annotated[Union[NextLink, CursorPages, NumberedPages], Field(discriminator="type")]


class Incremental(_Model):
    cursor_field: str = Field(..., min_length=1, description="the record field that grows: an update time, an id")
    param: str = Field(..., min_length=1, description="the query parameter the stored cursor is sent as")


class Retries(_Model):
    max: int = Field(5, ge=0, le=100, description="attempts after the first")
    backoff: float = Field(1.0, ge=0, description="seconds before the first retry; doubled for each next one")
    max_backoff: float = Field(60.0, gt=0, description="the longest wait between two attempts (Retry-After aside)")

    def delay_s(self, failed_attempt: int) -> float:
        """Seconds after failed attempt ``failed_attempt`` (1-based), without a Retry-After."""
        return min(self.backoff * 2 ** (failed_attempt - 1), self.max_backoff)


class ImportDefinition(_Model):
    name: str
    source: str = Field(..., description="the contract the records are checked against and land under (raw.<source>)")
    url: str
    method: Literal["GET"] = "GET"
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    auth: Auth | None = None
    pagination: Pagination | None = None
    records: JsonPath = Field("$", description="JSON path of the list of records in a response")
    incremental: Incremental | None = None
    rate_limit: float | None = Field(None, gt=0, description="requests per second at most")
    retries: Retries = Field(default_factory=Retries)
    timeout: float = Field(30.0, description="seconds to wait for a response")
    map: dict[str, str] = Field(default_factory=dict, description="record field -> contract field")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_identifier(value):
            raise ValueError(f"import names are {IDENTIFIER_RULE}")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("not an http(s) URL")
        if parts.password:
            raise ValueError("a credential is never written in an import's file (a password in the URL)")
        for name, _ in parse_qsl(parts.query):
            _refuse_secret_param(name)
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict) -> dict:
        for name in value:
            _refuse_secret_param(name)
        return value

    @field_validator("records")
    @classmethod
    def _records(cls, value: str) -> str:
        return _checked_path(value)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        return parse_seconds(value)

    @property
    def secret_params(self) -> list[str]:
        """Query parameters whose value is never shown."""
        return [self.auth.param] if self.auth and self.auth.param else []


def _refuse_secret_param(name: str) -> None:
    if is_secret_param(name):
        raise ValueError(f"{name!r} looks like a credential, which is never written in an import's file: "
                         f"write auth: {{param: {name}, env: VARIABLE}}")


def parse_seconds(value: Any) -> float:
    """Seconds from a number or ``500ms``, ``30s``, ``2m``."""
    match = _DURATION.match(str(value)) if not isinstance(value, bool) else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return float(match.group(1)) * {None: 1, "s": 1, "m": 60, "ms": 0.001}[match.group(2)]


@dataclass
class ImportSet:
    """The workspace's imports that load, and why each file that does not load does not."""

    imports: dict[str, ImportDefinition] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> ImportDefinition:
        if name in self.imports:
            return self.imports[name]
        if name in self.problems:
            raise ImportDefinitionError(self.problems[name], hint="fix the import's file")
        guess = did_you_mean(name, self.imports)
        raise UnknownImport(f"no import {name!r}",
                            hint=guess or f"imports: {', '.join(sorted(self.imports)) or 'none (add imports/NAME.yaml)'}")


def load_imports(workspace) -> ImportSet:
    """Every import of the workspace (``imports/*.yaml``)."""
    found = ImportSet()
    folder = workspace.imports_dir
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            found.imports[path.stem] = load_import_file(workspace, path)
            found.paths[path.stem] = path
        except ImportDefinitionError as exc:
            found.problems[path.stem] = exc.message + (f" ({exc.hint})" if exc.hint else "")
    return found


def load_import(workspace, name: str) -> ImportDefinition:
    """One import by name; UnknownImport (with a did-you-mean) or ImportDefinitionError."""
    path = workspace.imports_dir / f"{name}.yaml"
    if path.is_file():
        return load_import_file(workspace, path)
    return load_imports(workspace).get(name)


def load_import_file(workspace, path: Path) -> ImportDefinition:
    """One definition file, checked (its source has a contract); errors name the file and key."""
    label = _label(workspace, path)
    raw = _read(path, label)
    raw.setdefault("name", path.stem)
    try:
        definition = ImportDefinition.model_validate(raw)
    except ValidationError as exc:
        raise _definition_error(label, exc) from None
    sources = workspace.contracts()
    if definition.source not in sources:
        guess = did_you_mean(definition.source, sources)
        raise ImportDefinitionError(f"{label}: source: no contract {definition.source!r}",
                                    hint=(guess + " " if guess else "") + HINTS["source"])
    return definition


def _label(workspace, path: Path) -> str:
    try:
        return path.relative_to(workspace.root).as_posix()
    except ValueError:
        return str(path)


def _read(path: Path, label: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ImportDefinitionError(f"{label} is not valid YAML: {exc}", hint="see Imports in README.md") from None
    if not isinstance(raw, dict):
        raise ImportDefinitionError(f"{label} must hold a mapping of import settings", hint=HINTS["url"])
    return raw


def _definition_error(label: str, exc: ValidationError) -> ImportDefinitionError:
    """The first problem of a definition, naming its key, with what to write instead (a
    credential-like value is never quoted)."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not str(p) in ("next_link", "cursor", "page")]
    key = ".".join(loc) or "(file)"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(err["loc"][:-1])
        guess = did_you_mean(loc[-1], allowed)
        return ImportDefinitionError(f"{label}: {key}: unknown key",
                                     hint=f"{guess + ' ' if guess else ''}allowed keys: {', '.join(allowed)}")
    message = err["msg"].removeprefix("Value error, ")
    hint = next((HINTS[p] for p in reversed(loc) if p in HINTS), None)
    return ImportDefinitionError(f"{label}: {key}: {message}", hint=hint)


_NESTED = {"auth": Auth, "incremental": Incremental, "retries": Retries, "next_link": NextLink,
           "cursor": CursorPages, "page": NumberedPages}


def _allowed_keys(loc: tuple) -> list[str]:
    """The keys the model at ``loc`` (a ValidationError location) takes."""
    model: type[BaseModel] = ImportDefinition
    for part in loc:
        if part in _NESTED:
            model = _NESTED[part]
    return sorted(model.model_fields)
