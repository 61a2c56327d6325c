"""Alert delivery: email, and a signed webhook POSTed to a real HTTP server on 127.0.0.1, retried by RQ."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from jobs.deliver_alert import SIGNATURE_HEADER, deliver_alert
from jobs.enqueue import enqueue_alert_delivery
from recognition.models import Alert, DeliveryStatus, Person, Photo, PhotoStatus, UserSettings

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver(ThreadingHTTPServer):
    """Records every POST; answers each with the next status of `statuses` (the last one repeats)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses = [204]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/photosite"


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))
        status = self.server.statuses.pop(0) if len(self.server.statuses) > 1 else self.server.statuses[0]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:  # keep test output quiet
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def alert(user) -> Alert:
    person = Person.objects.create(owner=user, name="Obama")
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", original_name="p.jpg", status=PhotoStatus.DONE)
    return Alert.objects.create(owner=user, photo=photo, person=person, distance=0.335)


def use_webhook(user, url: str, email: bool = False) -> UserSettings:
    prefs = UserSettings.for_user(user)
    prefs.webhook_url, prefs.email_on_match = url, email
    prefs.save()
    return prefs


def test_webhook_is_signed_json_posted_by_the_job(user, alert, receiver, run_jobs):
    prefs = use_webhook(user, receiver.url)
    enqueue_alert_delivery(alert.pk)
    run_jobs()

    [(headers, body)] = receiver.received
    assert headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(prefs.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    payload = json.loads(body)
    assert payload["event"] == "person.found"
    assert payload["alert"]["id"] == alert.pk
    assert payload["alert"]["person"] == {"id": alert.person_id, "name": "Obama"}
    assert payload["alert"]["photo"]["url"].endswith(f"/photos/{alert.photo_id}/")
    alert.refresh_from_db()
    assert alert.webhook_status == DeliveryStatus.SENT and alert.webhook_attempts == 1
    assert mail.outbox == []  # email on match is off

    deliver_alert(alert.pk)  # delivered once is delivered: running the job again sends nothing
    assert len(receiver.received) == 1


def test_a_failing_webhook_is_retried_then_marked_failed(user, alert, receiver, run_jobs, settings):
    settings.JOB_RETRY_INTERVALS = [0, 0]  # retry at once, so one burst worker sees every attempt
    use_webhook(user, receiver.url)
    receiver.statuses = [500]
    enqueue_alert_delivery(alert.pk)
    run_jobs(expect_failures=True)

    assert len(receiver.received) == 3  # the first try and two retries
    alert.refresh_from_db()
    assert alert.webhook_status == DeliveryStatus.FAILED and alert.webhook_attempts == 3
    assert "500" in alert.webhook_error


def test_a_webhook_that_recovers_is_sent_on_retry(user, alert, receiver, run_jobs, settings):
    settings.JOB_RETRY_INTERVALS = [0, 0]
    use_webhook(user, receiver.url)
    receiver.statuses = [503, 200]
    enqueue_alert_delivery(alert.pk)
    run_jobs()

    assert len(receiver.received) == 2
    alert.refresh_from_db()
    assert alert.webhook_status == DeliveryStatus.SENT and alert.webhook_attempts == 2


def test_signatures_differ_per_secret(user, alert, receiver):
    use_webhook(user, receiver.url)
    deliver_alert(alert.pk)
    other = Alert.objects.create(owner=user, photo=alert.photo, person=Person.objects.create(owner=user, name="B"))
    prefs = UserSettings.for_user(user)
    prefs.webhook_secret = "another secret"
    prefs.save()
    deliver_alert(other.pk)
    first, second = (headers[SIGNATURE_HEADER] for headers, _ in receiver.received)
    assert first != second
    body = receiver.received[1][1]
    assert second == "sha256=" + hmac.new(b"another secret", body, hashlib.sha256).hexdigest()


def test_email_on_match_is_sent_once(user, alert):
    use_webhook(user, "", email=True)
    deliver_alert(alert.pk)
    deliver_alert(alert.pk)
    [message] = mail.outbox
    assert message.to == ["alice@example.com"] and "Obama" in message.subject
