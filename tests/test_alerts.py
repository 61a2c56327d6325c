"""The alerts app end to end: real worker processes (with RQ's scheduler), real photos, a real webhook
receiver, a real MQTT broker and subscriber, and email through Django's file backend.

Waiting for a cooldown or quiet hours to end would make a test depend on how long photos take; instead
the test checks that the message is scheduled in RQ's scheduler for the right time, then moves that
scheduled job to now (as if the time had come) and waits for the worker's scheduler to run it.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from PIL import Image
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from alerts.dispatch import delivery_job_id
from alerts.models import AlertSettings, Delivery, Summary
from jobs.enqueue import ALERTS, get_queue
from recognition.models import Alert, Person, Photo, ReferenceStatus
from tests.conftest import face_file, photos_finished, upload_of, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.scaleout]

OBAMA_PHOTOS = ["people/obama/congress_address_2009.jpg", "people/obama/senate.jpg"]


def obama_photos(count: int, offset: int = 0) -> list[SimpleUploadedFile]:
    """`count` different files of Obama: his photos saved at different JPEG qualities (same face)."""
    files = []
    for number in range(offset, offset + count):
        relative = OBAMA_PHOTOS[number % len(OBAMA_PHOTOS)]
        out = io.BytesIO()
        Image.open(face_file(relative)).convert("RGB").save(out, "JPEG", quality=70 + number)
        files.append(SimpleUploadedFile(f"obama_{number}.jpg", out.getvalue(), content_type="image/jpeg"))
    return files


class Outbox:
    """The mails a worker process wrote with Django's file-based email backend."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def subjects(self) -> list[str]:
        messages = []
        for path in sorted(self.folder.glob("*.log")):
            for part in path.read_bytes().split(b"-" * 79):
                if part.strip():
                    messages.append(message_from_bytes(part.strip()))
        return [message["Subject"] for message in messages]


@pytest.fixture
def outbox(tmp_path) -> Outbox:
    return Outbox(tmp_path / "mail")


@pytest.fixture
def worker(start_worker, outbox):
    """Start a worker with RQ's scheduler that may post to the test's receiver on 127.0.0.1."""

    def start(**env: str):
        return start_worker(
            "--with-scheduler",
            WEBHOOK_ALLOW_LOCAL="1",
            MQTT_ALLOW_LOCAL="1",
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
            EMAIL_FILE_PATH=str(outbox.folder),
            ALERT_EARLIER_SETTLE="1s",
            **env,
        )

    return start


@pytest.fixture
def channels(user, receiver, mqtt_broker):
    """Webhook, MQTT and a confirmed email address, all on; yields the MQTT subscriber."""
    AlertSettings.objects.create(
        user=user, email_address=user.email, email_confirmed=user.email, webhook_url=receiver.url,
        webhook_secret="secret", mqtt_url=mqtt_broker.url,
    )  # fmt: skip
    subscriber = mqtt_broker.subscribe("photosite/#")
    yield subscriber
    subscriber.close()


def upload(api, files) -> list[int]:
    ids = []
    for file in files:
        response = api.post("/api/photos/", {"image": file})
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    return ids


def add_person(api, name: str, relative: str) -> Person:
    person = api.post("/api/people/", {"name": name}, format="json").json()
    assert api.post(f"/api/people/{person['id']}/references/", {"image": upload_of(relative)}).status_code == 202
    return Person.objects.get(pk=person["id"])


def reference_done(person: Person) -> bool:
    return person.references.filter(status=ReferenceStatus.DONE).exists()


def settled() -> bool:
    """Nothing left to send now: no delivery pending that is due, and the alerts queue is empty."""
    due = Delivery.objects.filter(status="pending", due_at__lte=timezone.now()).exists()
    return not due and get_queue(ALERTS).count == 0


def fast_forward(delivery: Delivery) -> None:
    """Move a delivery's scheduled job to now, as if its time had come; the worker's scheduler runs it."""
    queue = get_queue(ALERTS)
    job = Job.fetch(delivery_job_id(delivery.pk), connection=queue.connection)
    registry = ScheduledJobRegistry(queue=queue)
    assert job.id in registry.get_job_ids(), "the message is not scheduled"
    registry.schedule(job, datetime.now(UTC))


def scheduled_at(delivery: Delivery) -> datetime:
    queue = get_queue(ALERTS)
    return ScheduledJobRegistry(queue=queue).get_scheduled_time(delivery_job_id(delivery.pk))


def test_a_new_reference_sends_one_summary_per_channel_and_reprocessing_nothing(
    api, user, worker, channels, receiver, outbox
):
    worker()
    ids = upload(api, obama_photos(12))
    wait_for(lambda: photos_finished(ids))
    assert not Alert.objects.exists() and receiver.received == []

    obama = add_person(api, "Obama", "people/obama/portrait_2012.jpg")
    wait_for(lambda: len(receiver.received) >= 1 and channels.messages and outbox.subjects())
    wait_for(settled)

    [summary] = Summary.objects.all()
    assert Alert.objects.filter(person=obama, earlier=True).count() == 12
    assert receiver.bodies() == [
        {
            "event": "person.found_earlier",
            "person": {"id": obama.pk, "name": "Obama"},
            "count": 12,
            "url": f"http://127.0.0.1:8000/alerts/summaries/{summary.pk}/",
        }
    ]
    [mqtt_message] = channels.payloads()
    assert mqtt_message["count"] == 12 and mqtt_message["earlier"] is True and mqtt_message["person"] == "Obama"
    assert outbox.subjects() == ["Obama was found in 12 earlier photos"]
    sent = {("email", "sent"), ("webhook", "sent"), ("mqtt", "sent")}
    assert set(Delivery.objects.values_list("channel", "status")) == sent

    # Bulk reprocessing afterwards finds the same people again: nothing new is sent.
    before = timezone.now()
    call_command("reprocess", "--all")
    wait_for(lambda: Photo.objects.filter(pk__in=ids, processed_at__gt=before, status="done").count() == 12)
    wait_for(lambda: settled() and not ScheduledJobRegistry(queue=get_queue(ALERTS)).get_job_ids())
    assert len(receiver.received) == 1 and len(channels.messages) == 1 and len(outbox.subjects()) == 1
    assert Summary.objects.count() == 1 and Alert.objects.count() == 12


def test_a_burst_gives_one_message_at_once_and_one_follow_up(api, user, worker, channels, receiver, outbox):
    worker(ALERT_COOLDOWN="1h")  # every photo of the burst falls in the window, however slow the machine
    obama = add_person(api, "Obama", "people/obama/portrait_2012.jpg")
    wait_for(lambda: reference_done(obama))
    ids = upload(api, obama_photos(10))
    wait_for(lambda: photos_finished(ids))
    wait_for(settled)

    # One message at once on each channel ...
    [first] = receiver.bodies()
    assert first["event"] == "person.found" and first["alert"]["person"]["name"] == "Obama"
    assert len(channels.messages) == 1 and outbox.subjects() == ["Obama was found in a photo"]
    # ... and the nine others gathered into one follow-up per channel, due when the window ends.
    follow_ups = list(Delivery.objects.filter(summary__kind="followup").select_related("summary"))
    assert sorted(d.channel for d in follow_ups) == ["email", "mqtt", "webhook"]
    assert {d.summary.count for d in follow_ups} == {9} and {d.status for d in follow_ups} == {"pending"}
    for delivery in follow_ups:
        first_sent = Delivery.objects.get(channel=delivery.channel, alert__isnull=False)
        assert delivery.due_at == first_sent.due_at + timedelta(hours=1)
        assert abs(scheduled_at(delivery) - delivery.due_at) < timedelta(seconds=1)
        fast_forward(delivery)

    wait_for(lambda: len(receiver.received) == 2 and len(channels.messages) == 2 and len(outbox.subjects()) == 2)
    wait_for(settled)
    follow_up = receiver.bodies()[1]
    assert follow_up["event"] == "person.found_more" and follow_up["count"] == 9
    assert follow_up["person"] == {"id": obama.pk, "name": "Obama"}
    assert channels.payloads()[1]["count"] == 9
    # Mail files are named by the second they were written: two in one second may list in either order.
    assert sorted(outbox.subjects()) == ["Obama was found in a photo", "Obama: and 9 more photos"]
    assert len(receiver.received) == 2 and Delivery.objects.filter(status="sent").count() == 6


def test_alerts_off_for_a_person_and_quiet_hours(api, user, worker, receiver):
    AlertSettings.objects.create(user=user, email=False, webhook_url=receiver.url, webhook_secret="s")
    worker()
    obama = add_person(api, "Obama", "people/obama/portrait_2012.jpg")
    biden = add_person(api, "Biden", "people/biden/vp_portrait_2013.jpg")
    assert api.patch(f"/api/people/{biden.pk}/", {"alerts": False}, format="json").json()["alerts"] is False
    wait_for(lambda: reference_done(obama) and reference_done(biden))

    ids = upload(api, [upload_of("groups/obama_biden.jpg")])
    wait_for(lambda: photos_finished(ids) and len(receiver.received) == 1)
    assert sorted(Photo.objects.get(pk=ids[0]).people_names()) == ["Biden", "Obama"]
    assert list(Alert.objects.values_list("person__name", flat=True)) == ["Obama"]
    assert [body["alert"]["person"]["name"] for body in receiver.bodies()] == ["Obama"]

    # Quiet hours around now: nothing goes until they end, then one summary.
    now = timezone.localtime()
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime("%H:%M")
    response = api.patch("/api/alert-settings/", {"quiet_hours": {"start": start, "end": end}}, format="json")
    assert response.json()["quiet_hours"] == {"start": start, "end": end}
    more = upload(api, obama_photos(3))
    wait_for(lambda: photos_finished(more))
    wait_for(settled)
    assert len(receiver.received) == 1
    [quiet] = Delivery.objects.filter(summary__kind="quiet")
    assert quiet.status == "pending" and quiet.summary.count == 3
    assert timezone.localtime(quiet.due_at).strftime("%H:%M") == end and quiet.due_at > timezone.now()
    fast_forward(quiet)
    wait_for(lambda: len(receiver.received) == 2)
    summary = receiver.bodies()[1]
    assert summary["event"] == "alerts.summary" and summary["count"] == 3
    assert summary["people"] == [{"id": obama.pk, "name": "Obama", "count": 3}]


def test_the_broker_down_retries_with_backoff_and_nothing_else_waits(api, user, worker, receiver):
    from tests.conftest import free_port

    AlertSettings.objects.create(user=user, email=False, mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    worker(ALERT_RETRY_INTERVALS="600,600")
    obama = add_person(api, "Obama", "people/obama/portrait_2012.jpg")
    wait_for(lambda: reference_done(obama))
    first = upload(api, obama_photos(1))
    wait_for(lambda: photos_finished(first) and Delivery.objects.filter(attempts=1).exists())
    delivery = Delivery.objects.get()
    wait_for(lambda: delivery_job_id(delivery.pk) in ScheduledJobRegistry(queue=get_queue(ALERTS)).get_job_ids())
    delivery.refresh_from_db()
    assert (delivery.status, delivery.error) == ("pending", "the broker refused the connection")

    # The retry waits in RQ's scheduler, not in a worker: other photos go through meanwhile.
    later = upload(api, [upload_of("people/biden/senate.jpg"), *obama_photos(2, offset=1)])
    wait_for(lambda: photos_finished(later))
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1

    for attempt in (2, 3):  # backoff's time comes
        wait_for(lambda: delivery_job_id(delivery.pk) in ScheduledJobRegistry(queue=get_queue(ALERTS)).get_job_ids())
        fast_forward(delivery)
        wait_for(lambda a=attempt: Delivery.objects.get(pk=delivery.pk).attempts == a)
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "failed")
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.error) == (3, "the broker refused the connection")
