"""Alert channels: where job failures and monitor findings are sent. Channels are declared
under ``alerts.channels`` in lakebook.yaml (``type: webhook`` or ``type: email``) and named by
the jobs and checks that alert through them."""

from .channels import DeliveryFailed, EmailChannel, WebhookChannel
from .model import SEVERITIES, STATUSES, Alert, plain_text, webhook_payload
from .notify import notify, open_channels

__all__ = ["SEVERITIES", "STATUSES", "Alert", "DeliveryFailed", "EmailChannel", "WebhookChannel", "notify",
           "open_channels", "plain_text", "webhook_payload"]
