"""lakebook.yaml, read once into one validated settings object; and the process environment.

Precedence: defaults < lakebook.yaml < a profile's overlay (``lakebook.<profile>.yaml`` beside
it, chosen by ``lakebook -p <profile>`` or ``LAKEBOOK_PROFILE``) < environment
(``LAKEBOOK_<SECTION>__<KEY>``).
Secrets (ingest tokens, the MQTT inlet's username and password, alert channels' headers and
passwords) are never read from lakebook.yaml: only from the environment or a tokens file kept
outside git. They are never shown: an error about a setting that holds or contains one does
not quote its value, once read they are masked in every error and log line of the process
(redact.py), and a child process gets them only if it needs them.
Backends (``query.engine``, ``features.online_store``, ...) are typed configs selected by
``type:`` (backends.py).
This is the only module that reads environment variables.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Mapping, NamedTuple, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, SerializeAsAny, ValidationError, model_validator,
)

from . import backends
from .backends import BackendConfig
from .errors import ConfigError, did_you_mean
from .redact import remember

CONFIG_FILE = "lakebook.yaml"
ENV_PREFIX = "LAKEBOOK_"
PROFILE_ENV = "LAKEBOOK_PROFILE"  # the profile whose overlay is merged over lakebook.yaml
PROFILE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Environment variables with the prefix that select things rather than override settings.
NON_SETTING_ENV = {"LAKEBOOK_WORKSPACE", "LAKEBOOK_RUN_ID", "LAKEBOOK_RUN_IO",
                   PROFILE_ENV}  # WORKSPACE_ENV, RUN_ID_ENV, RUN_IO_ENV
SECRET_KEYS = {("ingest", "tokens"), ("ingest", "mqtt", "username"), ("ingest", "mqtt", "password"),
               ("serving", "tokens")}
# The tokens file's entry that holds the MQTT inlet's credentials ({username, password}) rather
# than a source's tokens (those are a token or a list of them, never a mapping).
MQTT_CREDENTIALS = "mqtt"
# Settings whose bad value is not quoted in errors: it may hold a secret written where it does not belong.
UNQUOTED_KEYS = {("ingest", "tokens_file"), ("ingest", "mqtt", "url"), ("serving", "tokens_file"),
                 ("alerts", "secrets_file")}
# The keys of an alert channel (alerts.channels.<name>.<key>) that hold secrets.
CHANNEL_SECRETS = ("headers", "password")


def _backend(registry: backends.Registry):
    """A settings field type: a backend of ``registry``, by name or as ``{type: ..., ...}``."""
    return Annotated[SerializeAsAny[BackendConfig], BeforeValidator(registry.parse)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class MqttTLS(_Section):
    ca_certs: Path | None = Field(None, description="CA bundle the broker's certificate is checked against "
                                                    "(default: the system's)")
    certfile: Path | None = Field(None, description="client certificate, for brokers that ask for one")
    keyfile: Path | None = Field(None, description="the client certificate's key")
    insecure: bool = Field(False, description="accept a certificate whose name is not the broker's host (tests only)")


class MqttSettings(_Section):
    url: str = Field("mqtt://127.0.0.1:1883", pattern=r"^mqtts?://[A-Za-z0-9.\-]+(:\d{1,5})?/?$", description=(
        "the broker: mqtt://host:port, or mqtts://host:port for TLS (credentials go in username and password)"))
    topic_prefix: str = Field("lakebook/events", pattern=r"^[^#+\s]+$",
                              description="events of source S are published to <topic_prefix>/S")
    client_id: str | None = Field(None, min_length=1, max_length=128, description=(
        "the inlet's fixed MQTT client id, which keeps its session on the broker; default lakebook-<name>"))
    keepalive_s: int = Field(30, ge=5, le=65535)
    tls: MqttTLS | None = Field(None, description="TLS settings (mqtts:// only)")
    health_port: int = Field(8788, ge=1, le=65535, description="its /health and /metrics on 127.0.0.1")
    username: SecretStr | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _tls_only_with_mqtts(self):
        if self.tls is not None and not self.url.startswith("mqtts://"):
            raise ValueError("tls settings need an mqtts:// url")
        return self


class DropFolder(_Section):
    dir: Path = Field(description="the folder producers drop files into (relative to the workspace)")
    pattern: str = Field("*", description="file names taken (a glob, e.g. *.csv); others are left alone")
    source: str = Field(description="the blob source the files are stored as")
    settle_s: float = Field(5.0, ge=0, description=(
        "a file without a <name>.done marker is taken once its size and modification time have not "
        "changed for this long"))
    require_done: bool = Field(False, description="take only files with a <name>.done marker beside them")


class IngestSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=1, le=65535)
    log: _backend(backends.ingest_logs) = Field("sqlite", description="ingest log backend")
    max_request_bytes: int = Field(16 * 1024 * 1024, gt=0)
    max_events_per_request: int = Field(100_000, gt=0, description="events in one request (413 above)")
    max_backlog_events: int = Field(500_000, gt=0, description=(
        "unflushed events per source (503 above): about what the flusher writes in one Retry-After "
        "(flush_interval_s), so the lake stays seconds behind what was acknowledged"))
    max_validating_bodies: int = Field(
        8, gt=0, description="bodies validated event by event off the event loop at once, queued ones "
        "included (429 above)")
    flush_interval_s: float = Field(5.0, gt=0)
    flush_min_events: int = Field(1, ge=1, description=(
        "the periodic flush leaves a source with fewer unflushed events than this in the ingest log (where they "
        "are durable) until its oldest is flush_max_age_s old: fewer, larger lake files under a steady trickle; "
        "1 writes whatever is there every flush_interval_s"))
    flush_max_age_s: float = Field(60.0, gt=0, description=(
        "with flush_min_events above 1, the longest an event waits in the ingest log for its source's next file "
        "(the lake's freshness bound)"))
    max_rejections_reported: int = Field(
        1000, ge=0, description="rejected events detailed in one response (all are quarantined)")
    tokens: dict[str, list[SecretStr]] = Field(default_factory=dict)
    tokens_file: Path | None = None
    allowed_origins: list[Annotated[str, Field(pattern=r"^https?://[^/\s]+$")]] = Field(
        default_factory=list, description="web page origins (https://app.example.com) whose requests are "
                                          "accepted; requests from other pages are refused")
    mqtt: MqttSettings | None = Field(None, description="the MQTT inlet (lakebook up runs it when this is set)")
    drops: list[DropFolder] = Field(default_factory=list, description=(
        "drop folders: files that appear in them are stored as blobs of their source, then moved aside"))
    drops_interval_s: float = Field(1.0, gt=0, description="how often the ingest service looks into the drop folders")


class RetentionSettings(_Section):
    """What `lakebook lake vacuum` (and the ingest service's periodic maintenance) keeps."""

    versions: int = Field(3, ge=1, description=(
        "versions kept of each transform output and seed, the published one among them (2 or more keep a "
        "rollback possible)"))
    version_days: float | None = Field(None, gt=0, description=(
        "also keep every version published less than this many days ago (default: only the count counts)"))
    quarantine_days: int | None = Field(None, ge=1, description=(
        "remove quarantine date partitions older than this many days (default: kept forever)"))
    raw_days: int | None = Field(None, ge=1, description=(
        "remove raw date partitions older than this many days, with their catalog rows: they are gone for "
        "every later full refresh (default: raw is kept forever)"))
    interval_s: float = Field(3600.0, ge=60, description="seconds between two runs of the periodic maintenance")


class CompactionSettings(_Section):
    enabled: bool = Field(True, description="the ingest service compacts the append-only tables every interval_s")
    interval_s: float = Field(300.0, gt=0, description="how often the ingest service looks for partitions to compact")
    target_bytes: int = Field(128 * 1024 * 1024, gt=0, description=(
        "size a compacted file is filled up to (the originals' bytes counted); a file of half of it or more "
        "is not small"))
    target_rows: int = Field(1_000_000, gt=0, description=(
        "rows a compacted file is filled up to; a file of half of it or more is not small"))
    min_files: int = Field(16, ge=2, description="small files a partition must hold before it is compacted")
    grace_s: float = Field(600.0, ge=0, description=(
        "how long replaced files stay on disk after a compaction: a query that listed them just before still "
        "reads them"))


class LakeSettings(_Section):
    root: str = Field("lake", description=(
        "relative to the state dir, an absolute path, or s3://bucket/prefix (an S3-compatible store: endpoint, "
        "region and credentials from the environment, AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ...)"))
    compression: str = Field("zstd", pattern="^(zstd|snappy|gzip|none)$")
    retention: RetentionSettings = Field(default_factory=RetentionSettings,
                                         description="old versions and partitions that vacuum removes")
    compaction: CompactionSettings = Field(default_factory=CompactionSettings,
                                           description="rewriting the small files of raw, quarantine and speed tables")


class CatalogSettings(_Section):
    url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the state dir")


class QuerySettings(_Section):
    engine: _backend(backends.query_engines) = Field("duckdb", description="e.g. duckdb or {type: duckdb, threads: 2}")
    display_limit: int = Field(20, ge=1)


class BatchSettings(_Section):
    master: str = Field("local[*]", description="Spark master: local[*], spark://host:7077, yarn, k8s://...")
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(8, ge=1)
    conf: dict[str, str] = Field(default_factory=dict, description="extra spark.* settings")
    engine: _backend(backends.transform_engines) = Field("duckdb", description="default engine for SQL transforms")
    s3_staging: Literal["local", "shared"] = Field("local", description=(
        "on an S3 lake, Spark reads local copies of the lake's files in <state dir>/s3cache: 'local' (a local "
        "master only) or 'shared' (a cluster whose workers see the state dir at the same path: one host, a shared mount)"))


class FeaturesSettings(_Section):
    repo_dir: Path = Field(Path("feature_repo"), description="the Feast repository of the workspace")
    online_store: _backend(backends.online_stores) = Field(
        "sqlite", description="Feast online store; e.g. {type: redis, connection_string: '127.0.0.1:6379'}")
    offline_store: _backend(backends.offline_stores) = Field("duckdb", description="Feast offline store")


class MLSettings(_Section):
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default SQLite in the state dir")
    artifact_location: str | None = Field(None, description=(
        "default: mlflow/artifacts in the state dir, or <lake.root>/_mlflow/artifacts for a lake on S3"))
    experiment: str = "lakebook"
    ui_port: int = Field(5000, ge=1, le=65535)


class LabSettings(_Section):
    port: int = Field(8888, ge=1, le=65535, description="JupyterLab's port under lakebook up")


class StreamSettings(_Section):
    bus: _backend(backends.buses) = Field("sqlite", description=(
        "event bus: sqlite (consumer groups over the ingest log) or {type: redis, url: ...} (Redis Streams)"))
    retain_events: int = Field(1_000_000, gt=0, description=(
        "per source: flushed events a registered consumer group has not committed that the ingest log keeps; "
        "a group further behind reads the older ones from the lake"))
    enabled: bool = Field(False, description="lakebook up starts the stream (the speed layer)")
    port: int = Field(8790, ge=1, le=65535, description="the stream service's status and metrics on 127.0.0.1")
    group: str = Field("speed", pattern=r"^[A-Za-z0-9_.-]+$", description="the stream's consumer group on the bus")
    start: Literal["earliest", "latest"] = Field(
        "earliest", description="where a new consumer group starts: the oldest event the bus keeps, or the next one")
    ray_address: str | None = Field(None, description="a Ray cluster: its GCS address host:6379 or its Ray Client "
                                                      "address ray://host:10001; default: a local Ray runtime on 127.0.0.1")
    ray_auth_mode: Literal["token", "disabled"] = Field(
        "token", description="RAY_AUTH_MODE of the Ray runtime the stream starts or joins")
    ray_num_cpus: int = Field(2, ge=1, description="CPUs of the local Ray runtime")
    max_batch_events: int = Field(10_000, gt=0, description="events per micro-batch at most")
    poll_timeout_s: float = Field(0.2, gt=0, description="how long a read waits for events")
    speed_flush_interval_s: float = Field(5.0, gt=0, description="how often speed.* rows are written to the lake")
    lateness: str = Field("24h", pattern=r"^\s*\d+\s*[smhd]\s*$", description=(
        "how far behind the newest event a windows' row is still revised; older events are counted and dropped"))


MODEL_URI_PATTERN = r"^models:/[A-Za-z0-9_.-]+(@[A-Za-z0-9_-]+|/[0-9]+)$"


class Autoscaling(_Section):
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(8.0, gt=0, description="requests in flight per replica Serve aims at")


class EndpointSettings(_Section):
    model: str = Field(..., pattern=MODEL_URI_PATTERN, description=(
        "models:/<name>@<alias> (followed when the alias moves) or models:/<name>/<version>"))
    replicas: int = Field(1, ge=1, description="replicas when autoscaling is not set")
    autoscaling: Autoscaling | None = None
    max_batch_size: int = Field(16, ge=1, description="requests one model call answers at most (@serve.batch)")
    batch_wait_timeout_s: float = Field(0.005, ge=0, description="how long a batch waits to fill")


class ServingSettings(_Section):
    host: str = Field("127.0.0.1", description="the endpoints' address (Ray Serve's HTTP proxy)")
    port: int = Field(8000, ge=1, le=65535, description="endpoints answer under http://host:port/<name>/")
    admin_port: int = Field(8791, ge=1, le=65535, description="the serving service's admin API and /metrics on 127.0.0.1")
    endpoints: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")], EndpointSettings] = Field(
        default_factory=dict, description="endpoints by name (lakebook up serves them when any is declared)")
    tokens: dict[str, list[SecretStr]] = Field(default_factory=dict, description=(
        "bearer tokens by endpoint name ('*': every endpoint); from LAKEBOOK_SERVING__TOKENS or tokens_file"))
    tokens_file: Path | None = None
    poll_interval_s: float = Field(5.0, gt=0, description="how often a model alias is resolved again")
    ray_address: str | None = Field(None, description="a Ray cluster (host:6379); default: a local Ray runtime")
    proxy_location: Literal["HeadOnly", "EveryNode"] = Field("HeadOnly", description=(
        "where Serve runs its HTTP proxy on host:port: the head node only, or every node with a replica "
        "(nodes sharing a machine cannot share the port)"))
    ray_auth_mode: Literal["token", "disabled"] = Field(
        "token", description="RAY_AUTH_MODE of the Ray runtime serving starts or joins")
    ray_num_cpus: int = Field(2, ge=1, description="CPUs of the local Ray runtime")
    access_log: bool = Field(False, description=(
        "Serve logs a line per request in the proxy's and each replica's log (CPU on every request)"))


_DURATION_UNITS_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration_s(value: Any) -> Any:
    """Seconds from a number or ``90s``, ``30m``, ``4h``, ``1d`` (anything else is left to the field's check)."""
    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    number, unit = text.rstrip("smhd"), text[len(text.rstrip("smhd")):]
    try:
        return float(number) * _DURATION_UNITS_S[unit] if text else value
    except (ValueError, KeyError):
        return value


Duration = Annotated[float, BeforeValidator(_duration_s), Field(gt=0)]


class AlertRoute(_Section):
    """One line of the routing table: the alerts it matches (every ``match`` label equal, every
    ``match_re`` label matching the whole regular expression) go to ``channels``, one message per
    group of alerts that share the ``group_by`` labels."""

    model_config = ConfigDict(populate_by_name=True)

    match: dict[str, str] = Field(default_factory=dict, description="labels the alert must have, with these values")
    match_re: dict[str, str] = Field(default_factory=dict, description="labels whose value must match the regex")
    channels: list[str] = Field(..., min_length=1, description="names of alerts.channels")
    group_by: list[str] = Field(default_factory=lambda: ["alertname"], description=(
        "labels whose values make a group: one message per group (default: per check)"))
    group_wait: Duration | None = Field(None, description="wait this long after a new group's first alert before "
                                                          "sending, so alerts firing together arrive together")
    repeat_interval: Duration = Field(4 * 3600.0, description="a still-firing group is sent again after this")
    send_resolved: bool = Field(True, description="send one notice when all of a group's alerts have resolved")
    continue_: bool = Field(False, alias="continue", description="also try the routes after this one")

    @model_validator(mode="after")
    def _regexes_compile(self):
        for label, pattern in self.match_re.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"match_re.{label}: {pattern!r} is not a regular expression ({exc})") from None
        return self


class AlertSettings(_Section):
    routes: list[AlertRoute] = Field(default_factory=list, description=(
        "the alert routing table, tried in order: the first route that matches takes an alert (unless it says "
        "continue: true); without routes every alert goes to every channel"))
    channels: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")], _backend(backends.alert_channels)] = Field(
        default_factory=dict, description="alert channels by name: {type: webhook, url: ...}, "
                                          "{type: email, host: ..., from: ..., to: [...]} or {type: lab}")
    secrets_file: Path | None = Field(None, description=(
        "a YAML file outside git holding each channel's secrets: <channel>: {headers: {...}, password: ...}"))

    @model_validator(mode="after")
    def _routes_name_channels(self):
        for i, route in enumerate(self.routes):
            for name in route.channels:
                if name not in self.channels:
                    guess = did_you_mean(name, self.channels)
                    known = ", ".join(sorted(self.channels)) or "none"
                    raise ValueError(f"routes[{i}].channels: unknown channel {name!r} ("
                                     + (f"{guess} " if guess else "") + f"declared channels: {known})")
        return self


class JobsSettings(_Section):
    dir: Path = Field(Path("jobs"), description="the job definitions (*.yaml), relative to the workspace")
    executor: Literal["local", "ray"] = Field("local", description=(
        "where runs execute: local processes, or a Ray task each (on the runtime at ray_address)"))
    ray_address: str | None = Field(None, description="a Ray cluster (host:6379 or ray://host:10001) for "
                                                      "executor ray; default: a local Ray runtime")
    ray_auth_mode: Literal["token", "disabled"] = Field(
        "token", description="RAY_AUTH_MODE of the Ray runtime the ray executor starts or joins")
    ray_num_cpus: int = Field(2, ge=1, description="CPUs of the local Ray runtime")
    ray_task_cpus: float = Field(1.0, gt=0, description="CPUs a run's Ray task reserves (num_cpus)")
    port: int = Field(8792, ge=1, le=65535, description="the scheduler's /health, /status and /metrics on 127.0.0.1")
    tick_s: float = Field(0.5, gt=0, description="how often the scheduler looks for due work")
    lease_ttl_s: float = Field(10.0, gt=0, description=(
        "how long the leader's lease lasts unrenewed: a standby scheduler takes over after it"))
    heartbeat_s: float = Field(1.0, gt=0, description="how often a running run records that it is alive")
    stale_after_s: float = Field(10.0, gt=0, description=(
        "a running run whose heartbeat is older than this, and whose process is gone, is failed"))
    late_after_s: float = Field(60.0, gt=0, description="a due run not started within this is late (alert)")
    kill_grace_s: float = Field(5.0, ge=0, description="between SIGTERM and SIGKILL when a run is stopped")


class DashboardsSettings(_Section):
    host: Literal["127.0.0.1"] = Field("127.0.0.1", description="the dashboard server binds to loopback only")
    port: int = Field(8866, ge=1, le=65535, description="the dashboard server (Voila) on 127.0.0.1")
    public_url: str | None = Field(None, description=(
        "the server's address in share links (a proxy in front); default http://127.0.0.1:<port>"))
    pool_size: int = Field(1, ge=0, le=8, description="pre-heated kernels per published dashboard (default)")
    cull_idle_s: float = Field(600.0, gt=0, description="a dashboard kernel idle this long is shut down")
    cull_interval_s: float = Field(60.0, gt=0, description="how often idle kernels are looked for")
    share_expires: str = Field("7d", pattern=r"^\d+(\.\d+)?[smhd]?$", description="a share link's default lifetime")
    lab_link_expires: str = Field("8h", pattern=r"^\d+(\.\d+)?[smhd]?$", description=(
        "the lifetime of the link the Lab's Dashboards panel mints to open a dashboard"))
    snapshot_timeout_s: float = Field(600.0, gt=0, description="a snapshot's notebook cell timeout")


class MonitorSettings(_Section):
    enabled: bool = Field(True, description="whether lakebook up runs the monitor service")
    dir: Path = Field(Path("monitors"), description="the check definitions (*.yaml), relative to the workspace")
    defaults: bool = Field(True, description="checks derived from the contracts: freshness and reject rate per source")
    interval_s: float = Field(60.0, gt=0, description="how often the monitor service evaluates every check")
    port: int = Field(8793, ge=1, le=65535, description="the monitor service's /health and /status on 127.0.0.1")
    history: int = Field(200, ge=1, description="results kept per check (older ones are dropped)")


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
    lab: LabSettings = Field(default_factory=LabSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)


    jobs: JobsSettings = Field(default_factory=JobsSettings)
    dashboards: DashboardsSettings = Field(default_factory=DashboardsSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)


def profile_path(config_path: Path, profile: str) -> Path:
    """The overlay file of ``profile``: ``lakebook.<profile>.yaml`` beside lakebook.yaml."""
    return config_path.with_name(f"{Path(CONFIG_FILE).stem}.{profile}{Path(CONFIG_FILE).suffix}")


def profile_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """The profile ``LAKEBOOK_PROFILE`` names, if any."""
    environ = os.environ if environ is None else environ
    return environ.get(PROFILE_ENV) or None


def ray_runtime_options(profile: str | None) -> dict[str, Any]:
    """Options of a Ray actor, task or Serve replica that lakebook starts: on a cluster its
    worker runs in the node's environment, not this process's, so the workspace's profile goes
    with it (``runtime_env``), and the worker loads the same settings. Nothing secret goes this
    way: a secret reaches a cluster's workers through their nodes' environment or a tokens file."""
    return {"runtime_env": {"env_vars": {PROFILE_ENV: profile}}} if profile else {}


def set_profile_environment(profile: str | None) -> None:
    """Make ``profile`` this process's profile, and that of every lakebook process it starts
    (services, kernels, job runs inherit ``LAKEBOOK_PROFILE``)."""
    if profile:
        os.environ[PROFILE_ENV] = profile


def _read_profile(config_path: Path, profile: str) -> tuple[Path, dict[str, Any]]:
    if not PROFILE_PATTERN.match(profile):
        raise ConfigError(f"profile {profile!r} is not a profile name",
                          hint="lower-case letters, digits, - and _ (e.g. scale): it names lakebook.<profile>.yaml")
    path = profile_path(config_path, profile)
    if not path.is_file():
        found = sorted(p.name[len("lakebook."):-len(".yaml")] for p in config_path.parent.glob("lakebook.*.yaml"))
        known = ", ".join(found) if found else "none"
        raise ConfigError(f"profile {profile!r}: there is no {path.name} in {config_path.parent}",
                          hint=(did_you_mean(profile, found) or f"profiles of this workspace: {known}")
                          + f"; a profile is a file {path.name} beside {CONFIG_FILE}, merged over it")
    return path, _read_yaml(path)


def load_settings(config_path: Path | None, environ: Mapping[str, str] | None = None,
                  profile: str | None = None) -> Settings:
    """Read lakebook.yaml (if any), merge the profile's overlay over it (``profile``, or the one
    ``LAKEBOOK_PROFILE`` names), overlay environment overrides, validate."""
    environ = os.environ if environ is None else environ
    profile = profile or profile_from_environment(environ)
    raw: dict[str, Any] = {}
    source = "defaults"
    if config_path is not None:
        source = str(config_path)
        raw = _read_yaml(config_path)
        layers = [(config_path, raw)]
        if profile:
            overlay_path, overlay = _read_profile(config_path, profile)
            layers.append((overlay_path, overlay))
            raw = _deep_merge(raw, overlay)
            source = f"{config_path} with {overlay_path.name}"
        for path, layer in layers:
            _refuse_secrets(layer, path)
            _refuse_url_password(layer, path)
            _refuse_channel_secrets(layer, path)
            _refuse_lake_credentials(layer, path)
    elif profile:
        raise ConfigError(f"profile {profile!r} needs a workspace: it is merged over its {CONFIG_FILE}")
    overrides = env_overrides(environ)
    merged = _deep_merge(raw, overrides)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, overrides)) from None
    if "://" in settings.lake.root:  # an s3:// root lakebook cannot use fails here, not at the first flush
        parse_lake_root(settings.lake.root)
        remember(environ.get(name, "") for name in S3_SECRET_ENV)  # masked in every error and log line
    if settings.ingest.tokens_file is not None:
        secrets = _read_tokens_file(settings.ingest.tokens_file, "ingest.tokens_file")
        settings.ingest.tokens = _merge_tokens(settings.ingest.tokens, secrets)
        _add_mqtt_credentials(settings.ingest.mqtt, secrets.get(MQTT_CREDENTIALS))
    if settings.serving.tokens_file is not None:
        secrets = _read_tokens_file(settings.serving.tokens_file, "serving.tokens_file")
        settings.serving.tokens = _merge_tokens(settings.serving.tokens, secrets, credentials=None)
    if settings.alerts.secrets_file is not None:
        _add_channel_secrets(settings.alerts, _read_tokens_file(settings.alerts.secrets_file, "alerts.secrets_file"))
    _check_channel_logins(settings.alerts)
    for tokens in (settings.ingest.tokens, settings.serving.tokens):
        remember(token.get_secret_value() for values in tokens.values() for token in values)
    if settings.ingest.mqtt is not None:
        remember(s.get_secret_value() for s in (settings.ingest.mqtt.username, settings.ingest.mqtt.password) if s)
    return settings


def _refuse_secrets(raw: dict[str, Any], config_path: Path) -> None:
    """A ConfigError if lakebook.yaml writes a secret (SECRET_KEYS), naming where it belongs."""
    for path in SECRET_KEYS:
        node: Any = raw
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            key = ".".join(path)
            raise ConfigError(f"{config_path}: {key} must not be written in {CONFIG_FILE}",
                              hint=f"set {_env_name(path)} or put it in {path[0]}.tokens_file")


# Where an S3 lake's endpoint and region are read from, first found first (as the AWS SDKs do).
S3_ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
S3_REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
S3_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3 lake's bucket, from the environment (no secret is held here: the
    credentials are pyarrow's default chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
    AWS_PROFILE / AWS_SHARED_CREDENTIALS_FILE, an instance role)."""

    endpoint: str | None
    region: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "S3Options":
        environ = os.environ if environ is None else environ
        endpoint = next((environ[k] for k in S3_ENDPOINT_ENV if environ.get(k)), None)
        region = next((environ[k] for k in S3_REGION_ENV if environ.get(k)), None)
        return cls(endpoint, region)

    @property
    def shown_endpoint(self) -> str:
        return self.endpoint or "AWS S3 (no AWS_ENDPOINT_URL set)"


def parse_lake_root(text: str) -> tuple[str, str] | None:
    """(bucket, prefix) of an ``s3://bucket/prefix`` lake root; None for a local root; a
    ConfigError for an S3 root lakebook cannot use (no bucket, credentials in the URL, another
    scheme)."""
    if "://" not in text:
        return None
    scheme, _, rest = text.partition("://")
    if scheme != "s3":
        raise ConfigError(f"lake.root: the scheme {scheme}:// is not supported",
                          hint="use a local folder or s3://bucket/prefix (an S3-compatible store)")
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        raise ConfigError("lake.root must not hold credentials or a port",
                          hint="give the endpoint in AWS_ENDPOINT_URL and the credentials in AWS_ACCESS_KEY_ID / "
                               "AWS_SECRET_ACCESS_KEY (or a credentials file), not in lakebook.yaml")
    if not bucket:
        raise ConfigError("lake.root: s3:// needs a bucket", hint="e.g. lake.root: s3://my-bucket/lake")
    return bucket, prefix.strip("/")


# Keys an S3 client takes that must never be written in lakebook.yaml's lake section.
_LAKE_CREDENTIAL_KEYS = ("access_key", "secret_key", "session_token", "aws_access_key_id", "aws_secret_access_key",
                         "aws_session_token", "key", "secret", "token", "credentials", "profile", "endpoint",
                         "endpoint_url", "endpoint_override", "region")


def _refuse_lake_credentials(raw: dict[str, Any], config_path: Path) -> None:
    """The S3 lake's credentials (and endpoint) come from the environment or a credentials
    file, never from lakebook.yaml: a ConfigError naming where they belong (never the value)."""
    lake = raw.get("lake")
    found = [k for k in lake if str(k).lower() in _LAKE_CREDENTIAL_KEYS] if isinstance(lake, dict) else []
    root = lake.get("root") if isinstance(lake, dict) else None
    if isinstance(root, str) and "://" in root and "@" in root.split("://", 1)[1].split("/", 1)[0]:
        found.append("root (credentials in the URL)")
    if found:
        raise ConfigError(f"{config_path}: lake.{found[0]} must not be written in {CONFIG_FILE}",
                          hint="an S3 lake's endpoint, region and credentials come from the environment: "
                               "AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or "
                               "AWS_PROFILE / AWS_SHARED_CREDENTIALS_FILE")


# URL settings that may carry a password (user:password@host): never written in a file of the
# workspace; the environment override of the setting (or the client's own variable, such as
# PGPASSWORD or MLFLOW_TRACKING_PASSWORD) carries it.
URL_SETTINGS = (("stream", "bus", "url"), ("catalog", "url"), ("ml", "tracking_uri"),
                ("features", "online_store", "connection_string"))


def _refuse_url_password(raw: dict[str, Any], config_path: Path) -> None:
    """A password in a URL setting (URL_SETTINGS) is a secret: it comes from the environment."""
    for path in URL_SETTINGS:
        node: Any = raw
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str) and _url_password(node):
            key = ".".join(path)
            whole = path[:2] if path[0] in ("stream", "features") else path
            shown = f"'{{type: redis, {path[-1]}: ...}}'" if len(whole) < len(path) else "..."
            raise ConfigError(f"{config_path}: {key} must not hold a password in {config_path.name}",
                              hint=f"set {_env_name(whole)}={shown} in the environment instead")


def _url_password(url: str) -> bool:
    """Whether ``url`` holds a password: user:password@ in a URL, or a Redis connection
    string's ``password=`` option (host:port,password=...)."""
    if "password=" in url.replace(" ", "").lower():
        return True
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


def _refuse_channel_secrets(raw: dict[str, Any], config_path: Path) -> None:
    """An alert channel's headers and password are secrets: never in lakebook.yaml."""
    alerts = raw.get("alerts")
    channels = alerts.get("channels") if isinstance(alerts, dict) else None
    if not isinstance(channels, dict):
        return
    for name, channel in channels.items():
        for key in CHANNEL_SECRETS if isinstance(channel, dict) else ():
            if key in channel:
                path = ("alerts", "channels", str(name), key)
                raise ConfigError(f"{config_path}: {'.'.join(path)} must not be written in {CONFIG_FILE}",
                                  hint=f"set {_env_name(path)} or put it in alerts.secrets_file")


def _add_channel_secrets(alerts: AlertSettings, secrets: dict[str, Any]) -> None:
    """The secrets file's ``<channel>: {headers: {...}}`` or ``{password: ...}``, under what
    the environment set (an environment value wins)."""
    for name, entry in secrets.items():
        channel = alerts.channels.get(name)
        if channel is None:
            raise ConfigError(f"alerts.secrets_file: {name!r} is not a channel of alerts.channels",
                              hint=did_you_mean(str(name), alerts.channels) or f"declare it in {CONFIG_FILE}")
        allowed = [key for key in CHANNEL_SECRETS if key in type(channel).model_fields]
        if not isinstance(entry, dict) or not set(entry) <= set(allowed):
            raise ConfigError(f"alerts.secrets_file: {name!r} must be a mapping with {' or '.join(allowed)}")
        alerts.channels[name] = _with_secrets(channel, entry)


def _check_channel_logins(alerts: AlertSettings) -> None:
    """An email channel logs in with a username and a password, or not at all."""
    for name, channel in alerts.channels.items():
        if getattr(channel, "username", None) and getattr(channel, "password", None) is None:
            raise ConfigError(f"alerts.channels.{name}: username {channel.username!r} has no password",
                              hint=f"set {_env_name(('alerts', 'channels', name, 'password'))} or put it in "
                                   "alerts.secrets_file")
        if getattr(channel, "password", None) is not None and not getattr(channel, "username", None):
            raise ConfigError(f"alerts.channels.{name}: a password without a username",
                              hint=f"set alerts.channels.{name}.username in {CONFIG_FILE}")


def _with_secrets(channel: BackendConfig, entry: dict[str, Any]) -> BackendConfig:
    values = channel.model_dump(by_alias=True)
    for key, value in entry.items():
        current = values.get(key)
        values[key] = {**value, **current} if isinstance(value, dict) and isinstance(current, dict) else current or value
    try:
        return type(channel).model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"alerts.secrets_file: {problems}") from None


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


def _read_yaml(path: Path, secret: bool = False) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        if secret:  # YAML's message quotes the offending line, which may hold a token
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(f"{path} is not valid YAML" + (f" (line {mark.line + 1})" if mark else "")) from None
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


def _read_tokens_file(path: Path, setting: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{setting} {path} does not exist")
    return _read_yaml(path, secret=True)


def _merge_tokens(tokens: dict[str, list[SecretStr]], data: dict[str, Any],
                  credentials: str | None = MQTT_CREDENTIALS) -> dict[str, list[SecretStr]]:
    """The tokens by name, the file's added to the environment's; ``credentials`` names an entry
    holding other secrets (a mapping), skipped."""
    merged = {k: list(v) for k, v in tokens.items()}
    for source, value in data.items():
        if source == credentials and isinstance(value, dict):
            continue
        values = value if isinstance(value, list) else [value]
        merged.setdefault(str(source), []).extend(SecretStr(str(v)) for v in values)
    return merged


def _add_mqtt_credentials(mqtt: MqttSettings | None, entry: Any) -> None:
    """The tokens file's ``mqtt: {username, password}`` where the environment set neither."""
    if mqtt is None or not isinstance(entry, dict):  # not a mapping: the tokens of a source named mqtt
        return
    if set(entry) - {"username", "password"} or not all(isinstance(v, str) for v in entry.values()):
        raise ConfigError(f"ingest.tokens_file: the {MQTT_CREDENTIALS!r} entry must be a mapping of username "
                          "and password, both text")
    for key in ("username", "password"):
        if getattr(mqtt, key) is None and key in entry:
            setattr(mqtt, key, SecretStr(entry[key]))


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Settings
    for part in loc:
        if part.isdigit():  # an item of a list of sections (alerts.routes.0)
            continue
        field = model.model_fields.get(part) if model else None
        annotation = field.annotation if field else None  # a section, or an optional one (X | None)
        models = [a for a in (annotation, *get_args(annotation)) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = models[0] if models else None
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
            allowed = sorted(f.alias or n for n, f in parent.model_fields.items()) if parent else []
            guess = did_you_mean(loc[-1], allowed)
            lines.append(f"  {where}: unknown key{'; ' + guess if guess else ''} allowed keys: {', '.join(allowed)}")
        else:
            got = err.get("input")
            secret = _holds_secret(loc) or loc[:3] in UNQUOTED_KEYS
            shown = "" if isinstance(got, dict) or secret or err["type"] == "backend" else f" (got {got!r})"
            lines.append(f"  {where}: {err['msg']}{shown}")
    return "\n".join(lines)


def _holds_secret(path: tuple) -> bool:
    """Whether the setting at ``path`` is a secret, is inside one, or holds one (the whole
    ``ingest`` section, given as one value, may hold the tokens)."""
    if path[:2] == ("alerts", "channels") and (len(path) < 4 or path[3] in CHANNEL_SECRETS) or path == ("alerts",):
        return True
    return any(path[:len(key)] == key or key[:len(path)] == path for key in SECRET_KEYS) if path else False


def _in_overrides(loc: tuple, overrides: dict[str, Any]) -> bool:
    node: Any = overrides
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _env_name(loc: tuple) -> str:
    return ENV_PREFIX + "__".join(p.upper() for p in loc)


def setting_variable(*path: str) -> str:
    """The environment variable that overrides a setting: ``("stream", "ray_address")`` ->
    ``LAKEBOOK_STREAM__RAY_ADDRESS`` (how a parent sets a child service's setting)."""
    return _env_name(path)


# -- the process environment -----------------------------------------------------------------
WORKSPACE_ENV = "LAKEBOOK_WORKSPACE"
# Set for a notebook run by a job: its run id, and the file (JSON lines, {"op": "read"|"write",
# "table": "zone.name"}) where what runs inside it appends the catalog tables it reads and writes.
RUN_ID_ENV = "LAKEBOOK_RUN_ID"
RUN_IO_ENV = "LAKEBOOK_RUN_IO"
# Settings of third-party libraries lakebook starts, unless the user set them: MLflow phones
# home unless told not to; Spark picks a non-loopback address for its driver.
LIBRARY_DEFAULTS = {"MLFLOW_DISABLE_TELEMETRY": "true", "SPARK_LOCAL_IP": "127.0.0.1"}


def workspace_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """The workspace folder ``LAKEBOOK_WORKSPACE`` names, if any."""
    environ = os.environ if environ is None else environ
    return environ.get(WORKSPACE_ENV) or None


class RunEnvironment(NamedTuple):
    """The job run a process works for, as the job runner names it in the environment."""

    run_id: str | None  # RUN_ID_ENV
    io_path: Path | None  # RUN_IO_ENV: the file the tables the run reads and writes are reported to


def run_environment(environ: Mapping[str, str] | None = None) -> RunEnvironment:
    """The run this process works for (``LAKEBOOK_RUN_ID``, ``LAKEBOOK_RUN_IO``); None where unset."""
    environ = os.environ if environ is None else environ
    io_path = environ.get(RUN_IO_ENV)
    return RunEnvironment(environ.get(RUN_ID_ENV) or None, Path(io_path) if io_path else None)


def environment_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """One variable of the process environment (e.g. ``JUPYTER_TOKEN`` for lakebook up)."""
    environ = os.environ if environ is None else environ
    return environ.get(name) or None


def take_environment_value(name: str) -> str | None:
    """One variable of the process environment, removed from it (a token the processes this
    one starts, such as kernels, must not inherit)."""
    return os.environ.pop(name, None) or None


def prepend_jupyter_path(path: Path) -> None:
    """Put ``path`` first on this process's JUPYTER_PATH (where Jupyter apps look for templates)."""
    rest = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(path), *([rest] if rest else [])])


def set_library_defaults(*names: str) -> None:
    """Put LIBRARY_DEFAULTS ``names`` into this process's environment where they are unset."""
    for name in names:
        os.environ.setdefault(name, LIBRARY_DEFAULTS[name])


# Libraries whose progress lines (INFO) would fill a command's output; some (MLflow) log on
# handlers of their own, so the root logger's level does not reach them.
LIBRARY_LOGGERS = ("mlflow", "alembic", "feast", "ray", "pyspark", "py4j", "ibis", "urllib3", "papermill", "numba",
                   "botocore", "fsspec", "httpx")
_library_log_level: list[int] = []  # the level the command set (none in a notebook's kernel)


def set_library_log_level(level: int) -> None:
    """The level of third-party libraries' loggers in this process (the ``lakebook`` command:
    WARNING, INFO with -v). Not passed on to child processes: a kernel keeps the libraries' own."""
    _library_log_level[:] = [level]
    apply_library_log_level()


def apply_library_log_level() -> None:
    """The level set by ``set_library_log_level``, again: a library that sets its own when it
    is imported (MLflow) is imported after the command set it."""
    import logging

    for level in _library_log_level:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(level)


def set_ray_environment(temp_dir: Path, auth_mode: str) -> None:
    """Where the Ray runtime this process starts keeps its files (``RAY_TMPDIR``), and its
    authentication (``RAY_AUTH_MODE``: set explicitly, as Ray turns token auth on by itself
    for a bare ``ray.init()``)."""
    os.environ["RAY_TMPDIR"] = str(temp_dir)
    os.environ["RAY_AUTH_MODE"] = auth_mode


def set_run_environment(run_id: int, io_path: Path) -> None:
    """Tell a job's notebook (its kernel inherits this process's environment) its run id and
    where to report the tables it reads and writes."""
    os.environ[RUN_ID_ENV] = str(run_id)
    os.environ[RUN_IO_ENV] = str(io_path)


@contextmanager
def run_environment_for(run_id: int, io_path: Path) -> Iterator[None]:
    """``set_run_environment`` for the block only, the variables as they were afterwards: a Ray
    worker runs the tasks of many runs, one after another."""
    saved = {name: os.environ.get(name) for name in (RUN_ID_ENV, RUN_IO_ENV)}
    set_run_environment(run_id, io_path)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _is_secret_variable(name: str) -> bool:
    """An environment variable that may carry a lakebook secret: ``LAKEBOOK_INGEST__TOKENS...``,
    or ``LAKEBOOK_INGEST`` (the whole section as one value)."""
    if not name.startswith(ENV_PREFIX) or name in NON_SETTING_ENV:
        return False
    return _holds_secret(tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__")))


def child_environment(workspace_root: Path, *, secrets: bool = True, extra: Mapping[str, str] | None = None,
                      environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a lakebook child process: this one's, with ``LAKEBOOK_WORKSPACE``
    set, and without lakebook secrets unless ``secrets`` (a JupyterLab kernel needs none)."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if secrets or not _is_secret_variable(k)}
    env[WORKSPACE_ENV] = str(workspace_root)
    env.update(extra or {})
    return env
