"""The delivery job (queue `alerts`): send one Delivery on its channel, and record what happened.

Idempotent: a delivery already sent is not sent again. A failure that may mend (timeout, refused,
HTTP 5xx) is retried by RQ with ALERT_RETRY_INTERVALS backoff; a permanent one (a refused address,
HTTP 4xx, a bad login) is not. Either way the reason is on the delivery, and a final failure does
not go to RQ's failed registry: it is the user's endpoint that failed, not the site.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rq import get_current_job
from rq.job import Job, JobStatus

from alerts.channels import CHANNELS, DeliveryError, Message
from alerts.dispatch import delivery_job_id, schedule
from alerts.models import AlertSettings, Delivery, DeliveryStatus, Summary, SummaryKind
from jobs.enqueue import ALERTS, get_queue

log = logging.getLogger(__name__)

# Job states in which a delivery's job will still run, or is running.
LIVE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED}


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def message_for(delivery: Delivery) -> Message:
    now = timezone.now()
    if delivery.alert_id:
        alert = delivery.alert
        name, url = alert.person.name, absolute(alert.photo.get_absolute_url())
        text = f"{name} was found in {alert.photo}"
        if alert.distance is not None:
            text += f" (distance {alert.distance:.2f})"
        return Message(
            kind="found", subject=f"{name} was found in a photo", text=text + ".", url=url, time=alert.created_at,
            person_id=alert.person_id, person_name=name, distance=alert.distance, photo_url=url, alert=alert,
        )  # fmt: skip
    if delivery.summary_id:
        return summary_message(delivery.summary)
    return Message(
        kind="test", subject="photosite: a test alert", text="This is a test alert from photosite. It works.",
        url=absolute("/alerts/"), time=now,
    )  # fmt: skip


def summary_message(summary: Summary) -> Message:
    kind = {
        SummaryKind.EARLIER: "found_earlier",
        SummaryKind.FOLLOWUP: "found_more",
        SummaryKind.QUIET: "quiet_summary",
        SummaryKind.UNKNOWN: "someone_new",
    }[summary.kind]
    url = absolute(summary.get_absolute_url())
    headline = summary.headline()
    message = Message(
        kind=kind, subject=headline, text=headline + ".", url=url, time=summary.created_at, count=summary.count,
        earlier=summary.kind == SummaryKind.EARLIER, summary=summary,
    )  # fmt: skip
    if summary.person_id:
        message.person_id, message.person_name = summary.person_id, summary.person.name
    if summary.kind == SummaryKind.FOLLOWUP:
        message.subject = message.text = f"{summary.person.name}: and {summary.count:,} more photos"
    if summary.kind == SummaryKind.QUIET:
        rows = summary.alerts.values("person_id", "person__name").order_by("person__name")
        counts: dict[tuple[int, str], int] = {}
        for row in rows:
            key = (row["person_id"], row["person__name"])
            counts[key] = counts.get(key, 0) + 1
        message.people = [(pid, name, n) for (pid, name), n in counts.items()]
    if summary.photo_id:
        message.photo_url = absolute(summary.photo.get_absolute_url())
        message.url = message.photo_url
    return message


def close(summary: Summary) -> Summary:
    """No more alerts join a gathering summary once its message is being sent."""
    with transaction.atomic():
        AlertSettings.objects.select_for_update().filter(user_id=summary.owner_id).first()
        Summary.objects.filter(pk=summary.pk, closed_at__isnull=True).update(closed_at=timezone.now())
    summary.refresh_from_db()
    return summary


def send_delivery(delivery_id: int) -> dict:
    delivery = (
        Delivery.objects.select_related("owner", "alert__person", "alert__photo", "summary__person", "summary__photo")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        return {"delivery": delivery_id, "skipped": "deleted"}
    if delivery.status == DeliveryStatus.SENT:
        return {"delivery": delivery_id, "skipped": "already sent"}
    if delivery.summary_id and delivery.summary.closed_at is None:
        delivery.summary = close(delivery.summary)
    prefs = AlertSettings.for_user(delivery.owner)
    channel = CHANNELS[delivery.channel](prefs)
    Delivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1)
    try:
        if not channel.is_enabled():
            raise DeliveryError(f"{channel.label} is not set up any more", permanent=True)
        note = channel.send(message_for(delivery))
    except DeliveryError as exc:
        return failed(delivery, exc)
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SENT, sent_at=timezone.now(), error="")
    return {"delivery": delivery_id, "sent": note}


def failed(delivery: Delivery, exc: DeliveryError) -> dict:
    job = get_current_job()
    final = exc.permanent or job is None or not job.retries_left
    status = DeliveryStatus.FAILED if final else DeliveryStatus.PENDING
    Delivery.objects.filter(pk=delivery.pk).update(status=status, error=exc.reason[:300])
    log.info(
        "%s delivery %s failed (%s): %s", delivery.channel, delivery.pk, "final" if final else "will retry", exc.reason
    )
    if not final:
        raise exc  # RQ retries it after the next interval
    return {"delivery": delivery.pk, "failed": exc.reason}


def requeue_lost(grace: int = 60) -> list[int]:
    """Pending deliveries, due for `grace` seconds, whose job is gone (Redis flushed, or down when they
    were made): queued again, or failed once they have had all their tries. Run by `reconcile`."""
    cutoff = timezone.now() - timedelta(seconds=grace)
    pending = list(Delivery.objects.filter(status=DeliveryStatus.PENDING, due_at__lt=cutoff))
    if not pending:
        return []
    with get_queue(ALERTS).connection.pipeline(transaction=False) as pipeline:
        for delivery in pending:
            pipeline.hget(Job.key_for(delivery_job_id(delivery.pk)), "status")
        statuses = pipeline.execute()
    lost = [d for d, status in zip(pending, statuses, strict=True) if not status or status.decode() not in LIVE]
    requeued = []
    for delivery in lost:
        if delivery.attempts > len(settings.ALERT_RETRY_INTERVALS):
            reason = delivery.error or "gave up: the delivery job kept stopping"
            Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, error=reason)
            continue
        get_queue(ALERTS).connection.delete(Job.key_for(delivery_job_id(delivery.pk)))
        schedule(delivery)
        requeued.append(delivery.pk)
    return requeued
