"""Outbound notifications about DRControls (today: a signed webhook on ReadyForApplication transitions)."""

from reconciler.notify.webhook import SIGNATURE_HEADER, WebhookNotifier, WebhookStats, sign, verify_signature

__all__ = ["SIGNATURE_HEADER", "WebhookNotifier", "WebhookStats", "sign", "verify_signature"]
