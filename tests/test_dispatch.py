"""The rules of alerts.dispatch, with the jobs run by an in-process RQ worker: who is told, on which
channel, and when (cooldown, quiet hours, person rules, earlier photos, someone new)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from alerts import dispatch
from alerts.delivery import send_delivery
from alerts.models import AlertSettings, Delivery, Summary, SummaryKind
from recognition.models import Alert, Person, Photo, PhotoStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prefs(user, receiver, settings) -> AlertSettings:
    settings.WEBHOOK_ALLOW_LOCAL = True
    return AlertSettings.objects.create(
        user=user, email_address=user.email, email_confirmed=user.email, webhook_url=receiver.url, webhook_secret="s"
    )


@pytest.fixture
def obama(user) -> Person:
    return Person.objects.create(owner=user, name="Obama")


def new_alert(person: Person, earlier: bool = False) -> Alert:
    photo = Photo.objects.create(owner=person.owner, image="photos/x/p.jpg", status=PhotoStatus.DONE)
    return Alert.objects.create(owner=person.owner, photo=photo, person=person, distance=0.4, earlier=earlier)


def test_the_cooldown_gathers_later_matches_into_one_follow_up(prefs, obama, receiver, run_jobs, settings):
    settings.ALERT_COOLDOWN = 600
    sent = dispatch.announce_news([new_alert(obama)])
    assert sorted(d.channel for d in sent) == ["email", "webhook"]
    for _ in range(3):
        assert dispatch.announce_news([new_alert(obama)]) == []
    run_jobs()
    assert len(receiver.received) == 1

    follow_ups = Delivery.objects.filter(summary__kind=SummaryKind.FOLLOWUP)
    assert sorted(follow_ups.values_list("channel", flat=True)) == ["email", "webhook"]
    webhook = follow_ups.get(channel="webhook")
    assert webhook.summary.count == 3 and webhook.due_at == sent[0].due_at + timedelta(seconds=600)
    send_delivery(webhook.pk)  # what the scheduler does when the window ends
    assert receiver.bodies()[1] | {"url": ""} == {
        "event": "person.found_more", "person": {"id": obama.pk, "name": "Obama"}, "count": 3, "url": "",
    }  # fmt: skip
    # Sent: the summary is closed, and the next match in the new window joins a new follow-up.
    dispatch.announce_news([new_alert(obama)])
    assert Summary.objects.filter(kind=SummaryKind.FOLLOWUP, channel="webhook").count() == 2


def test_the_cooldown_is_per_person(prefs, obama, user, receiver, run_jobs):
    biden = Person.objects.create(owner=user, name="Biden")
    dispatch.announce_news([new_alert(obama)])
    dispatch.announce_news([new_alert(biden)])
    run_jobs()
    assert [body["alert"]["person"]["name"] for body in receiver.bodies()] == ["Obama", "Biden"]


def test_channels_per_person(prefs, obama):
    Person.objects.filter(pk=obama.pk).update(alert_channels=["webhook"])
    obama.refresh_from_db()
    assert [d.channel for d in dispatch.announce_news([new_alert(obama)])] == ["webhook"]


def test_alerts_off_records_no_alert(user, obama):
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", status=PhotoStatus.DONE)
    photo.faces.create(top=0, left=0, bottom=10, right=10, encoding=b"\0" * 512, person=obama, distance=0.3)
    Person.objects.filter(pk=obama.pk).update(alerts_enabled=False)
    assert photo.record_alerts() == [] and not Alert.objects.exists()


def test_earlier_photos_make_one_summary_per_person(prefs, obama, user, receiver, run_jobs):
    biden = Person.objects.create(owner=user, name="Biden")
    for _ in range(5):
        new_alert(obama, earlier=True)
    new_alert(biden, earlier=True)
    summaries = dispatch.summarize_earlier(user.pk)
    assert sorted((s.person.name, s.count) for s in summaries) == [("Biden", 1), ("Obama", 5)]
    assert dispatch.summarize_earlier(user.pk) == [], "each earlier alert is summarised once"
    run_jobs()
    bodies = sorted(receiver.bodies(), key=lambda body: body["person"]["name"])
    assert [(b["event"], b["person"]["name"], b["count"]) for b in bodies] == [
        ("person.found_earlier", "Biden", 1), ("person.found_earlier", "Obama", 5),
    ]  # fmt: skip


def test_quiet_hours_hold_news_and_summaries_until_they_end(prefs, obama, user, settings):
    now = timezone.localtime()
    prefs.set_quiet_hours((now - timedelta(hours=2)).time(), (now + timedelta(hours=1)).time())
    prefs.save()
    assert dispatch.announce_news([new_alert(obama)]) == []
    dispatch.announce_news([new_alert(obama)])
    [quiet] = Summary.objects.filter(kind=SummaryKind.QUIET, channel="webhook")
    assert quiet.count == 2 and quiet.due_at > timezone.now()
    new_alert(obama, earlier=True)
    [earlier] = dispatch.summarize_earlier(user.pk)
    assert {d.due_at for d in earlier.deliveries.all()} == {quiet.due_at}


@pytest.mark.parametrize(
    "start, end, clock, until",
    [
        (time(22), time(7), datetime(2026, 1, 1, 23, 30), datetime(2026, 1, 2, 7)),
        (time(22), time(7), datetime(2026, 1, 2, 6, 59), datetime(2026, 1, 2, 7)),
        (time(22), time(7), datetime(2026, 1, 2, 7, 0), None),
        (time(22), time(7), datetime(2026, 1, 2, 12), None),
        (time(13), time(14), datetime(2026, 1, 2, 13, 15), datetime(2026, 1, 2, 14)),
        (None, None, datetime(2026, 1, 2, 13, 15), None),
    ],
)
def test_quiet_until(user, start, end, clock, until):
    prefs = AlertSettings(user=user, quiet_start=start, quiet_end=end)
    tz = timezone.get_current_timezone()
    expected = until.replace(tzinfo=tz) if until else None
    assert prefs.quiet_until(clock.replace(tzinfo=tz)) == expected


def test_someone_new_only_when_asked_and_once_per_cooldown(prefs, user, receiver, run_jobs):
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", status=PhotoStatus.DONE)
    assert dispatch.announce_someone_new(photo, 2) is None
    AlertSettings.objects.filter(pk=prefs.pk).update(alert_unknown=True, email=False)
    summary = dispatch.announce_someone_new(photo, 2)
    dispatch.announce_someone_new(photo, 1)
    run_jobs()
    assert summary.headline() == f"Someone new is in {photo}"
    [body] = receiver.bodies()
    assert body["event"] == "face.unknown" and body["count"] == 2


def test_delivery_counts_for_metrics(user):
    for channel, status in [("email", "sent"), ("email", "sent"), ("webhook", "failed"), ("mqtt", "pending")]:
        Delivery.objects.create(owner=user, channel=channel, status=status)
    assert Delivery.counts() == {("email", "sent"): 2, ("webhook", "failed"): 1, ("mqtt", "pending"): 1}


def test_bulk_work_schedules_one_summary_per_user(user, redis_server, run_jobs, prefs, obama, receiver):
    """Every photo of a bulk run asks for the summary; it is one scheduled job, pushed later each time."""
    from rq.registry import ScheduledJobRegistry

    from jobs.enqueue import ALERTS, get_queue

    for _ in range(3):
        new_alert(obama, earlier=True)
        dispatch.schedule_earlier_summary(user.pk)
    registry = ScheduledJobRegistry(queue=get_queue(ALERTS))
    assert registry.get_job_ids() == [f"alerts-earlier-{user.pk}"]
    dispatch.summarize_earlier(user.pk)  # what that job runs
    [summary] = Summary.objects.all()
    assert summary.count == 3
