"""The built-in alert channels, selected by ``type:`` under ``alerts.channels`` (backends.py):
a webhook (JSON over HTTP), email (SMTP), and the Lab's inbox (``lab``: JupyterLab shows it).

A channel is made from its name, its config and the workspace, and has ``send(alert)``, which returns once the
receiver took the alert or raises DeliveryFailed; anything else it raises counts as a failure
that is not transient. Messages name a receiver by scheme, host and port only: a webhook URL's
path is often its secret (Slack's are).
"""

from __future__ import annotations

import http.client
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from urllib.parse import urlsplit

import orjson

from .inbox import Inbox
from .model import Alert, one_line, plain_text, webhook_payload

_BODY_SHOWN = 200  # characters of a refusing receiver's answer kept in the error


class DeliveryFailed(Exception):
    """The receiver did not take the alert; a ``transient`` failure is worth one more try."""

    def __init__(self, text: str, *, transient: bool):
        super().__init__(text)
        self.transient = transient


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not followed: following it would send the headers elsewhere."""

    def redirect_request(self, *args, **kwargs):
        return None


class WebhookChannel:
    """POSTs ``webhook_payload(alert)`` as JSON to ``url`` with the configured headers."""

    def __init__(self, name: str, config, workspace=None):
        self.name = name
        self.config = config
        self._opener = urllib.request.build_opener(_NoRedirects)

    def send(self, alert: Alert) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "lakebook-alerts",
                   **{key: value.get_secret_value() for key, value in self.config.headers.items()}}
        request = urllib.request.Request(self.config.url, data=orjson.dumps(webhook_payload(alert)),
                                         headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.config.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            answer = one_line(exc.read(_BODY_SHOWN).decode("utf-8", "replace"))
            transient = exc.code >= 500 or exc.code in (408, 429)
            raise DeliveryFailed(f"{_origin(self.config.url)} answered HTTP {exc.code}"
                                 + (f": {answer}" if answer else ""), transient=transient) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryFailed(f"cannot reach {_origin(self.config.url)}: {reason}", transient=True) from None


class EmailChannel:
    """Sends the alert as a plain-text email: subject ``[lakebook] <severity> <title>``."""

    def __init__(self, name: str, config, workspace=None):
        self.name = name
        self.config = config

    def message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[lakebook] {alert.severity} {one_line(alert.title)}"
        message["From"] = self.config.sender
        message["To"] = ", ".join(self.config.to)
        message.set_content(plain_text(alert))
        return message

    def send(self, alert: Alert) -> None:
        where = f"SMTP server {self.config.host}:{self.config.port}"
        try:
            with self._connect() as smtp:
                if self.config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.config.username:
                    smtp.login(self.config.username, self.config.password.get_secret_value())
                smtp.send_message(self.message(alert))
        except smtplib.SMTPResponseException as exc:
            answer = one_line(exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes)
                              else str(exc.smtp_error))
            raise DeliveryFailed(f"{where} answered {exc.smtp_code} {answer}",
                                 transient=400 <= exc.smtp_code < 500) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryFailed(f"{where} refused the recipients {', '.join(exc.recipients)}", transient=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"cannot deliver through {where}: {exc or type(exc).__name__}", transient=True) from None

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        if config.ssl:
            return smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_s,
                                    context=ssl.create_default_context())
        return smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)


class LabChannel:
    """Records the alert in the workspace's Lab inbox (inbox.py), keeping the channel's
    ``keep`` newest: JupyterLab shows each new one as a notification."""

    def __init__(self, name: str, config, workspace):
        self.name = name
        self.config = config
        self.workspace = workspace

    def send(self, alert: Alert) -> None:
        with Inbox(self.workspace) as inbox:
            inbox.add(self.name, alert, keep=self.config.keep)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
