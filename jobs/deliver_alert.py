"""The alert job: email the owner and POST the alert to their webhook, signed with HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.utils import timezone
from rq import get_current_job

from recognition.models import Alert, DeliveryStatus, UserSettings

SIGNATURE_HEADER = "X-Photosite-Signature"


class WebhookError(Exception):
    pass


def deliver_alert(alert_id: int) -> dict:
    """Idempotent: an alert already emailed is not emailed again; a delivered webhook is not resent."""
    alert = Alert.objects.select_related("owner", "person", "photo").filter(pk=alert_id).first()
    if alert is None:
        return {"alert": alert_id, "skipped": "alert was deleted"}
    prefs = UserSettings.for_user(alert.owner)
    result = {"alert": alert_id, "emailed": False, "webhook": alert.webhook_status}
    if prefs.email_on_match and alert.owner.email and alert.emailed_at is None:
        send_alert_email(alert)
        result["emailed"] = True
    if prefs.webhook_url and alert.webhook_status != DeliveryStatus.SENT:
        post_webhook(alert, prefs)
        result["webhook"] = DeliveryStatus.SENT
    return result


def send_alert_email(alert: Alert) -> None:
    link = settings.SITE_URL.rstrip("/") + alert.photo.get_absolute_url()
    send_mail(
        subject=f"{alert.person.name} was found in a photo",
        message=f"{alert.person.name} was found in {alert.photo} (distance {alert.distance:.2f}).\n\n{link}\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[alert.owner.email],
    )
    Alert.objects.filter(pk=alert.pk).update(emailed_at=timezone.now())


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(alert: Alert, prefs: UserSettings) -> None:
    body = json.dumps({"event": "person.found", "alert": alert.as_payload()}).encode()
    request = urllib.request.Request(
        prefs.webhook_url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, prefs.webhook_secret)},
    )
    Alert.objects.filter(pk=alert.pk).update(webhook_attempts=F("webhook_attempts") + 1)
    try:
        with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT) as response:
            status = response.status
    except (urllib.error.URLError, OSError, ValueError) as exc:
        _record_webhook_failure(alert, str(exc))
        raise WebhookError(f"webhook {prefs.webhook_url} failed: {exc}") from exc
    Alert.objects.filter(pk=alert.pk).update(webhook_status=DeliveryStatus.SENT, webhook_error=f"HTTP {status}")


def _record_webhook_failure(alert: Alert, reason: str) -> None:
    job = get_current_job()
    final = job is None or not job.retries_left
    Alert.objects.filter(pk=alert.pk).update(
        webhook_status=DeliveryStatus.FAILED if final else DeliveryStatus.PENDING, webhook_error=reason
    )
