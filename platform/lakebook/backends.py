"""Pluggable backends: small registries keyed by the ``type:`` of their section in lakebook.yaml.

Each backend has a typed config (a pydantic model, ``extra="forbid"``), so a wrong type or an
unknown key is an error when lakebook.yaml is read, naming what is allowed. A bare name is
short for ``{type: name}`` (``query.engine: duckdb``). A type is a built-in name, a name a
third party registers in the entry-point group ``lakebook.<kind>s`` (e.g.
``lakebook.query_engines = "mine = pkg.module:Engine"``), or a dotted class path; such a
class may carry its own ``Config`` model (a BackendConfig subclass).

This module is light (pydantic only): implementations are imported when first used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .errors import ConfigError, did_you_mean
from .redact import remember


class BackendConfig(BaseModel):
    """The settings of one backend; ``type`` names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


class _External(BackendConfig):
    """A third-party backend without a Config model of its own: its keys are its business."""

    model_config = ConfigDict(extra="allow", frozen=True)


@dataclass(frozen=True)
class _Entry:
    target: str | None  # "module:attr" of the implementation (None: another library implements it)
    config: type[BackendConfig]


@cache
def _installed_entry_points():
    """Every installed package's entry points, read once per process (reading them opens
    every package's metadata)."""
    from importlib.metadata import entry_points

    return entry_points()


class Registry:
    """The backends of one kind: ``names()``, ``parse(value)`` a config, ``load(name)`` a class."""

    def __init__(self, kind: str, setting: str, builtins: dict[str, _Entry], plural: str | None = None):
        self.kind = kind
        self.setting = setting
        self._builtins = builtins
        self._loaded: dict[str, Any] = {}
        self._group = "lakebook." + (plural or kind + "s").replace(" ", "_")

    def _entry_points(self) -> dict[str, Any]:
        return {ep.name: ep for ep in _installed_entry_points().select(group=self._group)}

    def names(self) -> list[str]:
        return sorted(set(self._builtins) | set(self._entry_points()))

    def _unknown(self, name: str) -> str:
        guess = did_you_mean(name, self.names())
        return f"unknown {self.kind} {name!r}; {guess + ' ' if guess else ''}allowed: {', '.join(self.names())}"

    def load(self, name: str) -> Any:
        """The implementation class of backend ``name``."""
        if name in self._loaded:
            return self._loaded[name]
        entry = self._builtins.get(name)
        if entry is not None and entry.target is not None:
            module, _, attr = entry.target.partition(":")
            found = getattr(importlib.import_module(module), attr)
        elif name in self._entry_points():
            found = self._entry_points()[name].load()
        elif "." in name:
            module, _, attr = name.rpartition(".")
            try:
                found = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"{self.setting}: cannot import {name!r}: {exc}") from None
        else:
            raise ConfigError(f"{self.setting}: {self._unknown(name)}")
        self._loaded[name] = found
        return found

    def config_model(self, name: str) -> type[BackendConfig]:
        if name in self._builtins:
            return self._builtins[name].config
        if name in self._entry_points() or "." in name:
            model = getattr(self.load(name), "Config", None)
            return model if isinstance(model, type) and issubclass(model, BackendConfig) else _External
        raise PydanticCustomError("backend", "{message}", {"message": self._unknown(name)})

    def parse(self, value: Any) -> BackendConfig:
        """A config from lakebook.yaml's value: a name, or a mapping with ``type``."""
        if isinstance(value, BackendConfig):
            return value
        if isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise PydanticCustomError("backend", "{message}", {
                "message": f"give a {self.kind} name ({', '.join(self.names())}) or a mapping with 'type:'"})
        model = self.config_model(value["type"])
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            raise PydanticCustomError("backend", "{message}", {"message": _describe(exc, model, value["type"])}) from None


    def config(self, value: Any) -> BackendConfig:
        """``parse`` for a value given outside lakebook.yaml (a CLI option): a ConfigError if bad."""
        try:
            return self.parse(value)
        except PydanticCustomError as exc:
            raise ConfigError(f"{self.setting}: {exc.message()}") from None


def _describe(exc: ValidationError, model: type[BaseModel], name: str) -> str:
    keys = [field.alias or key for key, field in model.model_fields.items()]  # as written in lakebook.yaml
    allowed = ", ".join(k for k in keys if k != "type") or "none"
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            guess = did_you_mean(key, keys)
            problems.append(f"unknown key {key!r} for type {name}{'; ' + guess if guess else ''} (allowed keys: {allowed})")
        else:
            problems.append(f"{key}: {err['msg']}" if key else err["msg"])  # no key: the whole config
    return "; ".join(problems)


# -- the built-in backends and their settings ------------------------------------------------
class DuckDBQueryConfig(BackendConfig):
    type: Literal["duckdb"] = "duckdb"
    threads: int | None = Field(None, ge=1, description="DuckDB threads per query (default: all cores)")


class SQLiteIngestLogConfig(BackendConfig):
    type: Literal["sqlite"] = "sqlite"
    path: str | None = Field(None, description="the log's file; default ingest/log.sqlite in the state dir")


class SQLiteBusConfig(BackendConfig):
    """The event bus over the ingest log itself (its retention: ``stream.retain_events``)."""

    type: Literal["sqlite"] = "sqlite"


class RedisBusConfig(BackendConfig):
    """Redis Streams, fed from the ingest log by the ingest service's forwarder. A password in
    the URL is masked in every error and log line once the settings are read."""

    type: Literal["redis"] = "redis"
    url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^rediss?://", description="redis:// or rediss:// (TLS)")
    stream_prefix: str = Field("lakebook:events:", min_length=1, description="a source's stream is <prefix><source>")
    maxlen: int | None = Field(None, ge=1, description=(
        "entries (logged batches) a stream keeps at most, trimmed approximately; default: until every group "
        "has committed them"))

    @model_validator(mode="after")
    def _mask_password(self):
        remember([urlsplit(self.url).password or ""])
        return self


class SQLiteOnlineStoreConfig(BackendConfig):
    type: Literal["sqlite"] = "sqlite"
    path: str | None = Field(None, description="default feast/online.db in the state dir")


class RedisOnlineStoreConfig(BackendConfig):
    type: Literal["redis"] = "redis"
    connection_string: str = "127.0.0.1:6379"
    redis_type: Literal["redis", "redis_cluster", "redis_sentinel"] = "redis"
    sentinel_master: str | None = None
    key_ttl_seconds: int | None = Field(None, ge=1)
    full_scan_for_deletion: bool | None = None


class SparkOfflineStoreConfig(BackendConfig):
    type: Literal["spark"] = "spark"
    spark_conf: dict[str, str] | None = None
    staging_location: str | None = None
    region: str | None = None


class DuckDBConfig(BackendConfig):
    """DuckDB with no settings of its own (transforms; Feast's offline store)."""

    type: Literal["duckdb"] = "duckdb"


class SparkConfig(BackendConfig):
    """Spark for transforms: the session comes from the ``batch`` settings."""

    type: Literal["spark"] = "spark"


class WebhookChannelConfig(BackendConfig):
    """An alert channel that POSTs the alert as JSON. Header values are secrets: they come from
    the environment or ``alerts.secrets_file``, never lakebook.yaml, and are masked once read."""

    type: Literal["webhook"] = "webhook"
    url: str = Field(..., pattern=r"^https?://[^/\s]+", description="where the alert is POSTed (http:// or https://)")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description=(
        "request headers, e.g. Authorization (from LAKEBOOK_ALERTS__CHANNELS__<NAME>__HEADERS or alerts.secrets_file)"))
    timeout_s: float = Field(10.0, gt=0, le=60, description="connect and read timeout of one attempt")

    @model_validator(mode="after")
    def _mask_secrets(self):
        remember(value.get_secret_value() for value in self.headers.values())
        return self


class EmailChannelConfig(BackendConfig):
    """An alert channel that sends a plain-text email over SMTP. The password is a secret: it
    comes from the environment or ``alerts.secrets_file``, never lakebook.yaml."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal["email"] = "email"
    host: str = Field(..., min_length=1, description="the SMTP server")
    port: int = Field(25, ge=1, le=65535, description="25 or 587 (starttls), 465 (ssl)")
    sender: str = Field(..., alias="from", pattern=r"^[^@\s]+@[^@\s]+$", description="the From address")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(..., min_length=1, description="recipients")
    starttls: bool = Field(False, description="upgrade the connection with STARTTLS before logging in")
    ssl: bool = Field(False, description="connect over TLS from the start (SMTPS)")
    username: str | None = Field(None, description="log in as this user (the password from the environment or secrets file)")
    password: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0, le=60, description="connect and reply timeout of one attempt")

    @model_validator(mode="after")
    def _check(self):
        if self.starttls and self.ssl:
            raise ValueError("choose starttls or ssl, not both")
        if self.password is not None:
            remember([self.password.get_secret_value()])
        return self


class LabChannelConfig(BackendConfig):
    """An alert channel that JupyterLab shows: the alert is kept in the Lab's inbox in the
    catalog database (``lakebook alerts inbox`` reads it too)."""

    type: Literal["lab"] = "lab"
    keep: int = Field(1000, ge=1, le=1_000_000, description=(
        "alerts of this channel the inbox keeps; older ones are dropped"))


query_engines = Registry("query engine", "query.engine", {
    "duckdb": _Entry("lakebook.query.engines:DuckDBEngine", DuckDBQueryConfig),
})
transform_engines = Registry("transform engine", "batch.engine", {
    "duckdb": _Entry("lakebook.transform.engines:DuckDBTransformEngine", DuckDBConfig),
    "spark": _Entry("lakebook.transform.engines:SparkTransformEngine", SparkConfig),
})
ingest_logs = Registry("ingest log", "ingest.log", {
    "sqlite": _Entry("lakebook.ingest.log:SQLiteIngestLog", SQLiteIngestLogConfig),
})
buses = Registry("event bus", "stream.bus", {
    "sqlite": _Entry("lakebook.stream.bus:SQLiteBus", SQLiteBusConfig),
    "redis": _Entry("lakebook.stream.redis_bus:RedisBus", RedisBusConfig),
}, plural="event buses")
# Feast implements the stores: lakebook checks their settings and hands them to Feast.
online_stores = Registry("online store", "features.online_store", {
    "sqlite": _Entry(None, SQLiteOnlineStoreConfig),
    "redis": _Entry(None, RedisOnlineStoreConfig),
})
offline_stores = Registry("offline store", "features.offline_store", {
    "duckdb": _Entry(None, DuckDBConfig),
    "spark": _Entry(None, SparkOfflineStoreConfig),
})
alert_channels = Registry("alert channel", "alerts.channels", {
    "webhook": _Entry("lakebook.alerts.channels:WebhookChannel", WebhookChannelConfig),
    "email": _Entry("lakebook.alerts.channels:EmailChannel", EmailChannelConfig),
    "lab": _Entry("lakebook.alerts.channels:LabChannel", LabChannelConfig),
})
