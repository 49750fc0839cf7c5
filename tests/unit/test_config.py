from pathlib import Path

import pytest

from lakebook.config import env_overrides, load_settings
from lakebook.errors import ConfigError, WorkspaceNotFound
from lakebook.workspace import Workspace


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lakebook.yaml"
    path.write_text(text)
    return path


def test_defaults_bind_to_loopback_and_use_embedded_engines(tmp_path):
    settings = load_settings(write(tmp_path, "name: x\n"), environ={})
    assert settings.ingest.host == "127.0.0.1"
    assert settings.ingest.port == 8787
    assert settings.ingest.log.type == "sqlite"
    assert settings.query.engine.type == "duckdb"
    assert settings.batch.engine.type == "duckdb"
    assert settings.features.online_store.type == "sqlite"
    assert settings.features.offline_store.type == "duckdb"
    assert settings.catalog.url is None


def test_a_backend_is_a_name_or_a_typed_mapping(tmp_path):
    settings = load_settings(write(tmp_path, "query:\n  engine: {type: duckdb, threads: 2}\nfeatures:\n"
                                             "  online_store: {type: redis, connection_string: '127.0.0.1:7000'}\n"), environ={})
    assert settings.query.engine.threads == 2
    assert settings.features.online_store.model_dump(exclude_none=True) == {
        "type": "redis", "connection_string": "127.0.0.1:7000", "redis_type": "redis"}
    overridden = load_settings(write(tmp_path, "name: x\n"), environ={"LAKEBOOK_BATCH__ENGINE": "spark"})
    assert overridden.batch.engine.type == "spark"


@pytest.mark.parametrize("yaml_text, expected", [
    ("query:\n  engine: duckbd\n", "query.engine: unknown query engine 'duckbd'; did you mean 'duckdb'? allowed: duckdb"),
    ("batch:\n  engine: sprk\n", "batch.engine: unknown transform engine 'sprk'; did you mean 'spark'? allowed: duckdb, spark"),
    ("features:\n  online_store: {type: redis, conection_string: x}\n",
     "features.online_store: unknown key 'conection_string' for type redis; did you mean 'connection_string'? "
     "(allowed keys: connection_string, redis_type, sentinel_master, key_ttl_seconds, full_scan_for_deletion)"),
    ("features:\n  offline_store: {type: duckdb, path: x}\n", "unknown key 'path' for type duckdb"),
    ("ingest:\n  log: {path: x}\n", "ingest.log: give a ingest log name (sqlite) or a mapping with 'type:'"),
    ("query:\n  engine: {type: duckdb, threads: 0}\n", "query.engine: threads: Input should be greater than or equal to 1"),
])
def test_a_bad_backend_is_an_error_at_load_naming_what_is_allowed(tmp_path, yaml_text, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, yaml_text), environ={})
    assert expected in str(info.value)


def test_a_third_party_backend_by_class_path_is_checked_by_its_own_config(tmp_path, monkeypatch):
    (tmp_path / "my_engines.py").write_text(
        "from typing import Literal\nfrom lakebook.backends import BackendConfig\n"
        "class Engine:\n    class Config(BackendConfig):\n        type: Literal['my_engines.Engine']\n        shards: int = 1\n"
        "class Loose:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = load_settings(write(tmp_path, "query:\n  engine: {type: my_engines.Engine, shards: 3}\n"), environ={})
    assert settings.query.engine.shards == 3
    with pytest.raises(ConfigError, match="unknown key 'shard' for type my_engines.Engine"):
        load_settings(write(tmp_path, "query:\n  engine: {type: my_engines.Engine, shard: 3}\n"), environ={})
    loose = load_settings(write(tmp_path, "query:\n  engine: {type: my_engines.Loose, anything: 1}\n"), environ={})
    assert loose.query.engine.model_dump() == {"type": "my_engines.Loose", "anything": 1}
    with pytest.raises(ConfigError, match="cannot import 'nowhere.Engine'"):
        load_settings(write(tmp_path, "query:\n  engine: nowhere.Engine\n"), environ={})


def test_cli_engine_choices_come_from_the_registries():
    from lakebook.backends import query_engines, transform_engines
    from lakebook.cli import query, transform_run

    option = {p.name: p for p in transform_run.params}["engine"]
    assert list(option.type.choices) == transform_engines.names() == ["duckdb", "spark"]
    assert list({p.name: p for p in query.params}["engine"].type.choices) == query_engines.names()


def test_environment_overrides_yaml(tmp_path):
    path = write(tmp_path, "ingest:\n  port: 9000\n")
    settings = load_settings(path, environ={"LAKEBOOK_INGEST__PORT": "9100", "LAKEBOOK_QUERY__DISPLAY_LIMIT": "5"})
    assert settings.ingest.port == 9100
    assert settings.query.display_limit == 5


def test_env_overrides_parse_nested_values():
    got = env_overrides({"LAKEBOOK_INGEST__TOKENS": '{"flights": ["a"]}', "LAKEBOOK_WORKSPACE": "/x", "OTHER": "1"})
    assert got == {"ingest": {"tokens": {"flights": ["a"]}}}


def test_unknown_key_names_the_allowed_keys_and_a_guess(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "ingest:\n  prot: 1\n"), environ={})
    message = str(info.value)
    assert "ingest.prot: unknown key" in message
    assert "did you mean 'port'" in message
    assert "allowed keys: allowed_origins, drops, drops_interval_s, flush_interval_s, flush_max_age_s, flush_min_events, host," in message


def test_bad_value_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "ingest:\n  port: 99999\n"), environ={})
    assert "ingest.port" in str(info.value) and "99999" in str(info.value)


def test_bad_env_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "name: x\n"), environ={"LAKEBOOK_INGEST__PORT": "abc"})
    assert "LAKEBOOK_INGEST__PORT" in str(info.value)


def test_secrets_are_refused_in_the_config_file(tmp_path):
    with pytest.raises(ConfigError, match="must not be written"):
        load_settings(write(tmp_path, "ingest:\n  tokens:\n    flights: [abc]\n"), environ={})


def test_tokens_from_env_and_file_are_merged_and_hidden(tmp_path):
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("flights: file-token\nweather: [w1, w2]\n")
    path = write(tmp_path, f"ingest:\n  tokens_file: {secrets}\n")
    settings = load_settings(path, environ={"LAKEBOOK_INGEST__TOKENS": '{"flights": ["env-token"]}'})
    tokens = {k: [t.get_secret_value() for t in v] for k, v in settings.ingest.tokens.items()}
    assert tokens == {"flights": ["env-token", "file-token"], "weather": ["w1", "w2"]}
    assert "env-token" not in repr(settings)


def test_serving_endpoints_and_their_tokens_from_env_and_file(tmp_path):
    secrets = tmp_path / "serving-secrets.yaml"
    secrets.write_text("delay: s-file\n'*': [s-all]\n")
    path = write(tmp_path, f"serving:\n  tokens_file: {secrets}\n  endpoints:\n"
                           "    delay: {model: 'models:/flight_delay@champion', max_batch_size: 8}\n")
    settings = load_settings(path, environ={"LAKEBOOK_SERVING__TOKENS": '{"delay": ["s-env"]}'})
    tokens = {k: [t.get_secret_value() for t in v] for k, v in settings.serving.tokens.items()}
    assert tokens == {"delay": ["s-env", "s-file"], "*": ["s-all"]}
    assert settings.serving.endpoints["delay"].model == "models:/flight_delay@champion"
    assert (settings.serving.host, settings.serving.port) == ("127.0.0.1", 8000)
    with pytest.raises(ConfigError, match="serving.tokens must not be written") as info:
        load_settings(write(tmp_path, "serving:\n  tokens: {delay: [x]}\n"), environ={})
    assert "serving.tokens_file" in info.value.hint
    with pytest.raises(ConfigError, match="endpoints.delay.model"):
        load_settings(write(tmp_path, "serving:\n  endpoints:\n    delay: {model: flight_delay}\n"), environ={})


def test_invalid_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "ingest: [\n"), environ={})


def test_workspace_paths_live_under_the_state_dir(tmp_path):
    write(tmp_path, "name: x\n")
    ws = Workspace.load(tmp_path, environ={})
    assert ws.state_dir == tmp_path.resolve() / ".lakebook"
    assert ws.lake.table_dir("raw", "flights") == ws.state_dir / "lake" / "raw" / "flights"
    assert ws.catalog_url.startswith("sqlite:///") and str(ws.state_dir) in ws.catalog_url


def test_workspace_found_from_a_subfolder(tmp_path, monkeypatch):
    write(tmp_path, "name: x\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert Workspace.load(environ={}).root == tmp_path.resolve()


def test_missing_workspace_says_what_to_do(tmp_path):
    with pytest.raises(WorkspaceNotFound) as info:
        Workspace.load(tmp_path, environ={})
    assert "lakebook init" in str(info.value)


def test_an_unknown_engine_named_outside_the_config_is_a_config_error(workspace):
    from lakebook.query import session_for

    with pytest.raises(ConfigError, match="query.engine: unknown query engine 'duckbd'; did you mean 'duckdb'?"):
        session_for(workspace, "duckbd")


# -- secrets (issue 20, item 8) --------------------------------------------------------------------
TOKEN = "tok-SeCrEt-123"


@pytest.mark.parametrize("environ", [
    {"LAKEBOOK_INGEST": f"tokens: {{flights: [{TOKEN}]"},  # the section as one value, not valid YAML
    {"LAKEBOOK_INGEST": f"[{TOKEN}]"},
    {"LAKEBOOK_INGEST__TOKENS": f'{{"flights": {TOKEN}}}'},
    {"LAKEBOOK_INGEST__TOKENS__FLIGHTS": f"{{a: {TOKEN}}}"},
])
def test_a_rejected_setting_that_may_hold_a_token_is_not_quoted(tmp_path, environ):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "name: x\n"), environ=environ)
    assert TOKEN not in str(info.value) and "(from environment LAKEBOOK_INGEST" in str(info.value)


def test_a_child_that_needs_no_secrets_gets_no_variable_that_may_hold_one(tmp_path):
    from lakebook.config import child_environment

    environ = {"LAKEBOOK_INGEST__TOKENS": f'{{"flights": ["{TOKEN}"]}}', "LAKEBOOK_INGEST__TOKENS__WEATHER": TOKEN,
               "LAKEBOOK_INGEST": f"{{tokens: {{flights: [{TOKEN}]}}}}", "LAKEBOOK_INGEST__PORT": "9000",
               "LAKEBOOK_INGEST__TOKENS_FILE": "/etc/lakebook/tokens.yaml", "LAKEBOOK_QUERY__ENGINE": "duckdb",
               "PATH": "/usr/bin"}
    kernel = child_environment(tmp_path, secrets=False, environ=environ)
    assert TOKEN not in "".join(kernel.values())
    assert set(kernel) == {"LAKEBOOK_INGEST__PORT", "LAKEBOOK_INGEST__TOKENS_FILE", "LAKEBOOK_QUERY__ENGINE", "PATH",
                           "LAKEBOOK_WORKSPACE"}
    assert child_environment(tmp_path, environ=environ).items() >= environ.items()  # the ingest server needs them


def test_a_token_once_read_is_masked_in_every_error_and_log_line(tmp_path, caplog):
    import logging

    from lakebook.errors import LakebookError

    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("weather: wx-file-token-42\n")
    load_settings(write(tmp_path, f"ingest:\n  tokens_file: {tokens}\n"),
                  environ={"LAKEBOOK_INGEST__TOKENS": f'{{"flights": ["{TOKEN}"]}}'})
    log = logging.getLogger("lakebook.test_secrets")
    with caplog.at_level(logging.INFO, logger="lakebook.test_secrets"):
        log.info("a header %s and %s", f"Bearer {TOKEN}", "wx-file-token-42")
        try:
            raise ValueError(f"could not parse {TOKEN!r}")
        except ValueError:
            log.exception("failed with the token in the error")
    text = caplog.text + "".join(logging.Formatter().format(r) for r in caplog.records)
    assert "Bearer ***" in text and "could not parse '***'" in text
    assert TOKEN not in text and "wx-file-token-42" not in text
    error = LakebookError(f"no contract for source {TOKEN!r}", hint=f"did you mean {TOKEN}?")
    assert TOKEN not in str(error) and (error.message, error.hint) == ("no contract for source '***'", "did you mean ***?")
