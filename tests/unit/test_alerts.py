"""Alert channels: their settings (checked when lakebook.yaml is read, secrets only from the
environment or the secrets file), the alert's texts, and notify's refusal of unknown names.
Delivery to real servers is in tests/integration/test_alert_delivery.py."""

from pathlib import Path

import pytest

from lakebook.alerts import Alert, EmailChannel, notify, plain_text, webhook_payload
from lakebook.config import child_environment, load_settings
from lakebook.errors import AlertError, ConfigError, LakebookError
from lakebook.workspace import Workspace

WEBHOOK = "alerts:\n  channels:\n    ops: {type: webhook, url: 'https://hooks.example.com/T0/B0/abc'}\n"
EMAIL = "alerts:\n  channels:\n    oncall: {type: email, host: smtp.example.com, from: lakebook@example.com, " \
        "to: [a@example.com, b@example.com]}\n"
ALERT = Alert(title="nightly_batch failed", text="cell 4 raised KeyError: 'origin'", severity="critical",
              labels={"job": "nightly_batch", "attempt": "2/3"}, status="firing", url="http://127.0.0.1:8888/lab/x")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lakebook.yaml"
    path.write_text(text)
    return path


def config_error(tmp_path: Path, text: str, environ: dict | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ=environ or {})
    return info.value


def test_channels_are_typed_backends(tmp_path):
    settings = load_settings(write(tmp_path, WEBHOOK + EMAIL.replace("alerts:\n  channels:\n", "")), environ={})
    ops, oncall = settings.alerts.channels["ops"], settings.alerts.channels["oncall"]
    assert (ops.type, ops.url, ops.headers, ops.timeout_s) == ("webhook", "https://hooks.example.com/T0/B0/abc", {}, 10)
    assert (oncall.sender, oncall.to, oncall.port, oncall.starttls, oncall.ssl) == (
        "lakebook@example.com", ["a@example.com", "b@example.com"], 25, False, False)


@pytest.mark.parametrize("text, expected", [
    ("alerts:\n  channels:\n    ops: {type: webhok, url: 'http://x'}\n",
     "alerts.channels.ops: unknown alert channel 'webhok'; did you mean 'webhook'? allowed: email, lab, webhook"),
    ("alerts:\n  channels:\n    ops: {type: webhook, url: 'http://x', timout_s: 3}\n",
     "alerts.channels.ops: unknown key 'timout_s' for type webhook; did you mean 'timeout_s'? "
     "(allowed keys: url, headers, timeout_s)"),
    ("alerts:\n  channels:\n    m: {type: email, host: h, to: [a@b.c], form: x@y.z}\n",
     "unknown key 'form' for type email; did you mean 'from'? (allowed keys: host, port, from, to, starttls, ssl, "
     "username, password, timeout_s)"),
    ("alerts:\n  channels:\n    m: {type: email, host: h, to: [a@b.c]}\n", "alerts.channels.m: from: Field required"),
    ("alerts:\n  channels:\n    m: {type: email, host: h, from: a@b.c, to: []}\n", "alerts.channels.m: to: List should"),
    ("alerts:\n  channels:\n    m: {type: email, host: h, from: a@b.c, to: [a@b.c], ssl: true, starttls: true}\n",
     "alerts.channels.m: Value error, choose starttls or ssl, not both"),
    ("alerts:\n  channels:\n    ops: {type: webhook, url: 'http://x', timeout_s: 600}\n",
     "alerts.channels.ops: timeout_s: Input should be less than or equal to 60"),
    ("alerts:\n  channels:\n    ops: {type: webhook, url: 'hooks.example.com'}\n", "alerts.channels.ops: url: String should"),
    ("alerts:\n  channels:\n    Ops-1: webhook\n", "alerts.channels.Ops-1.[key]: String should match pattern"),
    ("alerts:\n  chanels: {}\n", "alerts.chanels: unknown key; did you mean 'channels'?"),
])
def test_a_bad_channel_is_an_error_at_load_naming_the_key(tmp_path, text, expected):
    assert expected in str(config_error(tmp_path, text))


@pytest.mark.parametrize("secret", ["headers: {Authorization: Bearer s3cret}", "password: s3cret"])
def test_channel_secrets_are_refused_in_lakebook_yaml(tmp_path, secret):
    channel = "ops: {type: webhook, url: 'http://x', " if "headers" in secret else \
        "ops: {type: email, host: h, from: a@b.c, to: [a@b.c], username: u, "
    error = config_error(tmp_path, f"alerts:\n  channels:\n    {channel}{secret}}}\n")
    key = secret.split(":")[0]
    assert f"alerts.channels.ops.{key} must not be written in lakebook.yaml" in error.message
    assert error.hint == f"set LAKEBOOK_ALERTS__CHANNELS__OPS__{key.upper()} or put it in alerts.secrets_file"
    assert "s3cret" not in str(error)


def test_secrets_come_from_the_environment_or_the_secrets_file_and_are_masked(tmp_path):
    secrets = tmp_path / "alert-secrets.yaml"
    secrets.write_text("ops: {headers: {Authorization: Bearer file-token-1, X-Team: t-file}}\n"
                       "oncall: {password: smtp-pass-file}\n")
    text = WEBHOOK + EMAIL.replace("alerts:\n  channels:\n", "").replace("b@example.com]", "b@example.com], username: u") \
        + f"  secrets_file: {secrets}\n"
    settings = load_settings(write(tmp_path, text), environ={
        "LAKEBOOK_ALERTS__CHANNELS__OPS__HEADERS": '{"X-Team": "t-env-77"}'})
    ops, oncall = settings.alerts.channels["ops"], settings.alerts.channels["oncall"]
    assert {k: v.get_secret_value() for k, v in ops.headers.items()} == {
        "Authorization": "Bearer file-token-1", "X-Team": "t-env-77"}  # the environment's value wins
    assert oncall.password.get_secret_value() == "smtp-pass-file"
    error = LakebookError("refused with Bearer file-token-1, t-env-77 and smtp-pass-file")
    assert error.message == "refused with ***, *** and ***"  # a header value is one secret


@pytest.mark.parametrize("content, expected", [
    ("opz: {headers: {A: b}}\n", "alerts.secrets_file: 'opz' is not a channel of alerts.channels"),
    ("ops: {password: x}\n", "alerts.secrets_file: 'ops' must be a mapping with headers"),
    ("ops: {headers: [x]}\n", "alerts.secrets_file: headers: Input should be a valid dictionary"),
])
def test_a_bad_secrets_file_names_the_entry(tmp_path, content, expected):
    secrets = tmp_path / "alert-secrets.yaml"
    secrets.write_text(content)
    error = config_error(tmp_path, WEBHOOK + f"  secrets_file: {secrets}\n")
    assert expected in error.message
    if "opz" in content:
        assert error.hint == "did you mean 'ops'?"


def test_an_email_login_needs_a_username_and_a_password(tmp_path):
    with_user = EMAIL.replace("b@example.com]", "b@example.com], username: lakebook")
    error = config_error(tmp_path, with_user)
    assert error.message == "alerts.channels.oncall: username 'lakebook' has no password"
    assert error.hint.startswith("set LAKEBOOK_ALERTS__CHANNELS__ONCALL__PASSWORD")
    error = config_error(tmp_path, EMAIL, {"LAKEBOOK_ALERTS__CHANNELS__ONCALL__PASSWORD": "pw-no-user"})
    assert error.message == "alerts.channels.oncall: a password without a username"
    settings = load_settings(write(tmp_path, with_user), environ={"LAKEBOOK_ALERTS__CHANNELS__ONCALL__PASSWORD": "pw"})
    assert settings.alerts.channels["oncall"].password.get_secret_value() == "pw"


def test_kernels_get_no_channel_secret(tmp_path):
    environ = {"LAKEBOOK_ALERTS__CHANNELS__OPS__HEADERS": '{"A": "x"}', "LAKEBOOK_ALERTS__CHANNELS__M__PASSWORD": "y",
               "LAKEBOOK_ALERTS": "{channels: {}}", "LAKEBOOK_ALERTS__CHANNELS__OPS__URL": "http://x"}
    kernel = child_environment(tmp_path, secrets=False, environ=environ)
    assert set(kernel) == {"LAKEBOOK_ALERTS__CHANNELS__OPS__URL", "LAKEBOOK_WORKSPACE"}


def test_the_email_and_webhook_texts(tmp_path):
    settings = load_settings(write(tmp_path, EMAIL), environ={})
    message = EmailChannel("oncall", settings.alerts.channels["oncall"]).message(
        Alert(**{**vars(ALERT), "title": "two\nlines"}))
    assert message["Subject"] == "[lakebook] critical two lines"
    assert (message["From"], message["To"]) == ("lakebook@example.com", "a@example.com, b@example.com")
    assert plain_text(ALERT) == ("[FIRING] critical: nightly_batch failed\n\ncell 4 raised KeyError: 'origin'\n\n"
                                 "labels:\n  attempt: 2/3\n  job: nightly_batch\n\nhttp://127.0.0.1:8888/lab/x\n")
    assert webhook_payload(ALERT) == {
        "title": "nightly_batch failed", "description": "cell 4 raised KeyError: 'origin'", "severity": "critical",
        "labels": {"job": "nightly_batch", "attempt": "2/3"}, "status": "firing", "url": "http://127.0.0.1:8888/lab/x",
        "text": plain_text(ALERT).strip()}


@pytest.mark.parametrize("field, value", [("severity", "fatal"), ("status", "pending")])
def test_an_alert_with_an_unknown_severity_or_status_is_refused(field, value):
    with pytest.raises(AlertError, match=f"alert {field} '{value}' is not one of"):
        Alert(**{**vars(ALERT), field: value})


def test_an_unknown_channel_name_is_refused_before_anything_is_sent(tmp_path):
    write(tmp_path, WEBHOOK + EMAIL.replace("alerts:\n  channels:\n", ""))
    with pytest.raises(AlertError) as info:
        notify(Workspace.load(tmp_path), ["oncall", "opps"], ALERT)
    assert info.value.message == "unknown alert channel 'opps' (declared: oncall, ops)"
    assert info.value.hint == "did you mean 'ops'?" and info.value.http_status == 400
