"""What gets sent for new alerts, and when: the rules of the alerts app.

- News (a match in a newly processed photo) goes at once, per channel the person allows, unless a
  message about that person went on that channel less than ALERT_COOLDOWN ago: then it joins one
  follow-up sent when the window ends ("and 29 more photos").
- Earlier photos (found because the gallery changed, or by bulk reprocessing) are never sent one by
  one: each gallery change gives one summary per person and channel.
- Quiet hours hold everything back until they end; the news gathered meanwhile goes as one summary.

Everything is decided inside the transaction that records the alerts, with the user's AlertSettings
row locked, so two workers cannot both decide to send "at once". Redis only carries the job ids.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Retry

from alerts.channels import Channel, enabled_channels
from alerts.models import AlertSettings, Delivery, Summary, SummaryKind
from jobs.enqueue import ALERTS, get_queue
from recognition.models import Alert, Person, Photo

log = logging.getLogger(__name__)


def locked_settings(owner_id: int) -> AlertSettings:
    """The user's settings, row-locked until the transaction ends (serialises decisions per user)."""
    prefs = AlertSettings.objects.select_for_update().select_related("user").filter(user_id=owner_id).first()
    if prefs is None:
        from django.contrib.auth import get_user_model

        AlertSettings.for_user(get_user_model().objects.get(pk=owner_id))
        prefs = AlertSettings.objects.select_for_update().select_related("user").get(user_id=owner_id)
    return prefs


def wants(person: Person | None, channel: Channel) -> bool:
    if person is None:
        return True
    return person.alerts_enabled and (not person.alert_channels or channel.name in person.alert_channels)


@transaction.atomic
def announce_news(alerts: list[Alert]) -> list[Delivery]:
    """Alerts found in a newly processed photo: deliver, or gather into a follow-up or quiet summary."""
    if not alerts:
        return []
    prefs = locked_settings(alerts[0].owner_id)
    now = timezone.now()
    quiet_until = prefs.quiet_until(now)
    created = []
    for alert in alerts:
        for channel in enabled_channels(prefs):
            if not wants(alert.person, channel):
                continue
            if quiet_until is not None:
                gather(SummaryKind.QUIET, prefs, channel, alert, None, quiet_until)
                continue
            last = last_message(prefs.user_id, alert.person_id, channel.name, now)
            if last is not None:
                gather(SummaryKind.FOLLOWUP, prefs, channel, alert, alert.person, last.due_at + cooldown())
                continue
            delivery = Delivery.objects.create(
                owner_id=prefs.user_id, channel=channel.name, alert=alert, person_id=alert.person_id, due_at=now
            )
            schedule(delivery)
            created.append(delivery)
    return created


def cooldown() -> timedelta:
    return timedelta(seconds=settings.ALERT_COOLDOWN)


def last_message(owner_id: int, person_id: int, channel: str, now: datetime) -> Delivery | None:
    """The latest message about this person on this channel that still holds the cooldown window."""
    return (
        Delivery.objects.filter(owner_id=owner_id, person_id=person_id, channel=channel)
        .filter(Q(alert__isnull=False) | Q(summary__kind=SummaryKind.FOLLOWUP))
        .filter(due_at__gt=now - cooldown())
        .order_by("-due_at")
        .first()
    )


def gather(kind: str, prefs: AlertSettings, channel: Channel, alert: Alert, person: Person | None, due: datetime):
    """Add an alert to the open summary of this kind, person and channel; the first one schedules it."""
    summary = Summary.objects.filter(
        owner_id=prefs.user_id, kind=kind, person=person, channel=channel.name, closed_at__isnull=True
    ).first()
    if summary is None:
        summary = Summary.objects.create(
            owner_id=prefs.user_id, kind=kind, person=person, channel=channel.name, due_at=due
        )
        person_id = person.pk if person else None
        schedule(
            Delivery.objects.create(
                owner_id=prefs.user_id, channel=channel.name, summary=summary, person_id=person_id, due_at=due
            )
        )
    summary.alerts.add(alert)
    Summary.objects.filter(pk=summary.pk).update(count=F("count") + 1)


@transaction.atomic
def summarize_earlier(owner_id: int) -> list[Summary]:
    """One summary per person for the earlier photos found since the last one, sent on each channel."""
    prefs = locked_settings(owner_id)
    waiting = Alert.objects.filter(owner_id=owner_id, earlier=True, summaries__isnull=True).select_related("person")
    by_person: dict[Person, list[int]] = defaultdict(list)
    for alert in waiting:
        by_person[alert.person].append(alert.pk)
    due = prefs.quiet_until() or timezone.now()
    summaries = []
    for person, alert_ids in by_person.items():
        summary = Summary.objects.create(
            owner_id=owner_id, kind=SummaryKind.EARLIER, person=person, count=len(alert_ids), closed_at=timezone.now()
        )
        summary.alerts.set(alert_ids)
        for channel in enabled_channels(prefs):
            if wants(person, channel):
                schedule(Delivery.objects.create(owner_id=owner_id, channel=channel.name, summary=summary, due_at=due))
        summaries.append(summary)
    return summaries


def schedule_earlier_summary(owner_id: int) -> None:
    """After bulk reprocessing: summarise once the run has been quiet for ALERT_EARLIER_SETTLE seconds.

    One fixed job id per user: every photo of the run pushes the same job later, so a run of 10,000
    photos gives one summary, not 10,000."""

    def push() -> None:
        get_queue(ALERTS).enqueue_in(
            timedelta(seconds=settings.ALERT_EARLIER_SETTLE),
            "alerts.dispatch.summarize_earlier",
            owner_id,
            job_id=f"alerts-earlier-{owner_id}",
            job_timeout=settings.JOB_TIMEOUT,
            description=f"summarise earlier alerts of user {owner_id}",
        )

    transaction.on_commit(push, robust=True)


@transaction.atomic
def announce_someone_new(photo: Photo, unknown_faces: int) -> Summary | None:
    """Faces that match nobody in a new photo, for users who asked: at most one per cooldown and channel."""
    prefs = locked_settings(photo.owner_id)
    if not prefs.alert_unknown or not unknown_faces:
        return None
    summary = Summary.objects.create(
        owner_id=photo.owner_id, kind=SummaryKind.UNKNOWN, photo=photo, count=unknown_faces, closed_at=timezone.now()
    )
    now = timezone.now()
    for channel in enabled_channels(prefs):
        recent = Delivery.objects.filter(
            owner_id=photo.owner_id,
            channel=channel.name,
            summary__kind=SummaryKind.UNKNOWN,
            due_at__gt=now - cooldown(),
        )
        if not recent.exists():
            schedule(
                Delivery.objects.create(
                    owner_id=photo.owner_id, channel=channel.name, summary=summary, due_at=prefs.quiet_until(now) or now
                )
            )
    return summary


def send_test(prefs: AlertSettings, channel: str) -> Delivery:
    delivery = Delivery.objects.create(owner_id=prefs.user_id, channel=channel)
    schedule(delivery)
    return delivery


def delivery_job_id(delivery_id: int) -> str:
    return f"delivery-{delivery_id}"


def retry_policy() -> Retry:
    intervals = settings.ALERT_RETRY_INTERVALS
    return Retry(max=len(intervals), interval=intervals)


def schedule(delivery: Delivery) -> None:
    """Put the delivery's job on the alerts queue once committed, at its due time (RQ's scheduler)."""

    def push() -> None:
        options = {
            "job_id": delivery_job_id(delivery.pk),
            "job_timeout": settings.ALERT_JOB_TIMEOUT,
            "retry": retry_policy(),
            "description": f"deliver {delivery.channel} message {delivery.pk}",
            "failure_ttl": 7 * 24 * 3600,
        }
        queue = get_queue(ALERTS)
        try:
            if delivery.due_at > timezone.now():
                queue.enqueue_at(delivery.due_at, "alerts.delivery.send_delivery", delivery.pk, **options)
            else:
                queue.enqueue("alerts.delivery.send_delivery", delivery.pk, **options)
        except RedisError as exc:
            # The row stays pending: reconcile (alerts.delivery.requeue_lost) queues it again.
            log.warning("Redis unavailable, delivery %s waits in the database: %s", delivery.pk, exc)

    transaction.on_commit(push)
