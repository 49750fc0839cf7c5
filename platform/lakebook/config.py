"""lakebook.yaml, read once into one validated settings object.

Precedence: defaults < lakebook.yaml < environment (``LAKEBOOK_<SECTION>__<KEY>``).
Secrets (ingest tokens) are never read from lakebook.yaml: only from the environment or a
tokens file kept outside git. This is the only module that reads environment variables.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from .errors import ConfigError

CONFIG_FILE = "lakebook.yaml"
ENV_PREFIX = "LAKEBOOK_"
# Environment variables with the prefix that select things rather than override settings.
NON_SETTING_ENV = {"LAKEBOOK_WORKSPACE"}
SECRET_KEYS = {("ingest", "tokens")}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class IngestSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=1, le=65535)
    log: str = Field("sqlite", description="ingest log backend (registry name)")
    max_request_bytes: int = Field(16 * 1024 * 1024, gt=0)
    max_backlog_events: int = Field(2_000_000, gt=0)
    flush_interval_s: float = Field(5.0, gt=0)
    max_rejections_reported: int = Field(
        1000, ge=0, description="rejected events detailed in one response (all are quarantined)")
    tokens: dict[str, list[SecretStr]] = Field(default_factory=dict)
    tokens_file: Path | None = None


class LakeSettings(_Section):
    root: str = Field("lake", description="relative to the state dir, or an absolute path")
    compression: str = Field("zstd", pattern="^(zstd|snappy|gzip|none)$")


class CatalogSettings(_Section):
    url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the state dir")


class QuerySettings(_Section):
    engine: str = "duckdb"
    display_limit: int = Field(20, ge=1)
    threads: int | None = Field(None, ge=1)


class BatchSettings(_Section):
    master: str = Field("local[*]", description="Spark master: local[*], spark://host:7077, yarn, k8s://...")
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(8, ge=1)
    conf: dict[str, str] = Field(default_factory=dict, description="extra spark.* settings")
    engine: str = Field("duckdb", description="default engine for SQL transforms: duckdb or spark")


class FeaturesSettings(_Section):
    repo_dir: Path = Field(Path("feature_repo"), description="the Feast repository of the workspace")
    online_store: dict[str, Any] = Field(
        default_factory=lambda: {"type": "sqlite"},
        description="Feast online store config; e.g. {type: redis, connection_string: '127.0.0.1:6379'}")
    offline_store: dict[str, Any] = Field(
        default_factory=lambda: {"type": "duckdb"}, description="Feast offline store config (duckdb or spark)")


class MLSettings(_Section):
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default SQLite in the state dir")
    artifact_location: str | None = Field(None, description="default: mlflow/artifacts in the state dir")
    experiment: str = "lakebook"
    ui_port: int = Field(5000, ge=1, le=65535)


class Settings(_Section):
    name: str = "lakebook"
    state_dir: Path = Path(".lakebook")
    contracts_dir: Path = Path("contracts")
    transforms_dir: Path = Path("transforms")
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    features: FeaturesSettings = Field(default_factory=FeaturesSettings)
    ml: MLSettings = Field(default_factory=MLSettings)


def load_settings(config_path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read lakebook.yaml (if any), overlay environment overrides, validate."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    source = "defaults"
    if config_path is not None:
        source = str(config_path)
        raw = _read_yaml(config_path)
        for section, key in SECRET_KEYS:
            if key in (raw.get(section) or {}):
                raise ConfigError(
                    f"{config_path}: {section}.{key} must not be written in {CONFIG_FILE}",
                    hint=f"set {ENV_PREFIX}{section.upper()}__{key.upper()} or {section}.{key}_file",
                )
    overrides = env_overrides(environ)
    merged = _deep_merge(raw, overrides)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, overrides)) from None
    if settings.ingest.tokens_file is not None:
        settings.ingest.tokens = _merge_tokens(settings.ingest.tokens, settings.ingest.tokens_file)
    return settings


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``LAKEBOOK_INGEST__PORT=9000`` -> ``{"ingest": {"port": 9000}}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in NON_SETTING_ENV:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        try:
            node[path[-1]] = yaml.safe_load(value) if value else value
        except yaml.YAMLError:
            node[path[-1]] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge_tokens(tokens: dict[str, list[SecretStr]], path: Path) -> dict[str, list[SecretStr]]:
    if not path.is_file():
        raise ConfigError(f"ingest.tokens_file {path} does not exist")
    data = _read_yaml(path)
    merged = {k: list(v) for k, v in tokens.items()}
    for source, value in data.items():
        values = value if isinstance(value, list) else [value]
        merged.setdefault(str(source), []).extend(SecretStr(str(v)) for v in values)
    return merged


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Settings
    for part in loc:
        field = model.model_fields.get(part) if model else None
        annotation = field.annotation if field else None
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model


def _describe(exc: ValidationError, source: str, overrides: dict[str, Any]) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc)
        origin = _env_name(loc) if _in_overrides(loc, overrides) else None
        where = f"{key} (from environment {origin})" if origin else key
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            allowed = sorted(parent.model_fields) if parent else []
            close = difflib.get_close_matches(loc[-1], allowed, n=1)
            guess = f"; did you mean '{close[0]}'?" if close else ""
            lines.append(f"  {where}: unknown key{guess} allowed keys: {', '.join(allowed)}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {where}: {err['msg']}{shown}")
    return "\n".join(lines)


def _in_overrides(loc: tuple, overrides: dict[str, Any]) -> bool:
    node: Any = overrides
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _env_name(loc: tuple) -> str:
    return ENV_PREFIX + "__".join(p.upper() for p in loc)
