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
    assert settings.ingest.log == "sqlite"
    assert settings.query.engine == "duckdb"
    assert settings.catalog.url is None


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
    assert "allowed keys: flush_interval_s, host," in message


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


def test_invalid_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "ingest: [\n"), environ={})


def test_workspace_paths_live_under_the_state_dir(tmp_path):
    write(tmp_path, "name: x\n")
    ws = Workspace.load(tmp_path, environ={})
    assert ws.state_dir == tmp_path.resolve() / ".lakebook"
    assert ws.table_dir("raw", "flights") == ws.state_dir / "lake" / "raw" / "flights"
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
