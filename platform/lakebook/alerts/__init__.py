"""Alert channels: where job failures and monitor findings are sent. Channels are declared
under ``alerts.channels`` in lakebook.yaml (``type: webhook``, ``email`` or ``lab``) and named by
the jobs and checks that alert through them; a ``lab`` channel's alerts wait in the ``Inbox``."""

from .channels import DeliveryFailed, EmailChannel, LabChannel, WebhookChannel
from .inbox import Inbox
from .model import SEVERITIES, STATUSES, Alert, plain_text, webhook_payload
from .notify import notify, open_channels

__all__ = ["SEVERITIES", "STATUSES", "Alert", "DeliveryFailed", "EmailChannel", "Inbox", "LabChannel",
           "WebhookChannel", "notify", "open_channels", "plain_text", "webhook_payload"]
