"""The webhook channel: signed JSON to a real HTTP server on 127.0.0.1, retried by RQ, and the address
rules (loopback, link-local, unspecified refused after name resolution; redirects not followed)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading

import pytest

from alerts import dispatch
from alerts.channels.webhook import SIGNATURE_HEADER
from alerts.delivery import send_delivery
from alerts.models import AlertSettings, Delivery
from recognition.models import Alert, Person, Photo, PhotoStatus
from tests.conftest import Receiver, free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alert(user) -> Alert:
    person = Person.objects.create(owner=user, name="Obama")
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", original_name="p.jpg", status=PhotoStatus.DONE)
    return Alert.objects.create(owner=user, photo=photo, person=person, distance=0.335)


@pytest.fixture
def allow_local(settings):
    """The receiver runs on 127.0.0.1: tests that need delivery to succeed allow loopback."""
    settings.WEBHOOK_ALLOW_LOCAL = True


def use_webhook(user, url: str) -> AlertSettings:
    prefs = AlertSettings.for_user(user)
    # update(), not save(): some tests store what the form would refuse (a name that resolves later).
    AlertSettings.objects.filter(pk=prefs.pk).update(webhook_url=url, email=False)
    prefs.refresh_from_db()
    return prefs


def deliver(alert: Alert, run_jobs) -> Delivery:
    [delivery] = dispatch.announce_news([alert])
    run_jobs()
    delivery.refresh_from_db()
    return delivery


def test_webhook_is_signed_json_posted_by_the_job(user, alert, receiver, run_jobs, allow_local):
    prefs = use_webhook(user, receiver.url)
    delivery = deliver(alert, run_jobs)

    [(headers, body)] = receiver.received
    assert headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(prefs.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    payload = json.loads(body)
    assert payload["event"] == "person.found"
    assert payload["alert"]["id"] == alert.pk
    assert payload["alert"]["person"] == {"id": alert.person_id, "name": "Obama"}
    assert payload["alert"]["photo"]["url"].endswith(f"/photos/{alert.photo_id}/")
    assert (delivery.channel, delivery.status, delivery.attempts) == ("webhook", "sent", 1)

    send_delivery(delivery.pk)  # delivered once is delivered: running the job again sends nothing
    assert len(receiver.received) == 1


def test_a_failing_webhook_is_retried_then_marked_failed(user, alert, receiver, run_jobs, settings, allow_local):
    settings.ALERT_RETRY_INTERVALS = [0, 0]  # retry at once, so one burst worker sees every attempt
    use_webhook(user, receiver.url)
    receiver.statuses = [500]
    delivery = deliver(alert, run_jobs)

    assert len(receiver.received) == 3  # the first try and two retries
    assert (delivery.status, delivery.attempts, delivery.error) == ("failed", 3, "HTTP 500")


def test_a_webhook_that_recovers_is_sent_on_retry(user, alert, receiver, run_jobs, settings, allow_local):
    settings.ALERT_RETRY_INTERVALS = [0, 0]
    use_webhook(user, receiver.url)
    receiver.statuses = [503, 200]
    delivery = deliver(alert, run_jobs)
    assert len(receiver.received) == 2
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 2, "")


def test_a_client_error_is_not_retried(user, alert, receiver, run_jobs, settings, allow_local):
    settings.ALERT_RETRY_INTERVALS = [0, 0]
    use_webhook(user, receiver.url)
    receiver.statuses = [403]
    delivery = deliver(alert, run_jobs)
    assert len(receiver.received) == 1
    assert (delivery.status, delivery.error) == ("failed", "HTTP 403")


def test_signatures_differ_per_secret(user, alert, receiver, allow_local):
    use_webhook(user, receiver.url)
    first = Delivery.objects.create(owner=user, channel="webhook")
    send_delivery(first.pk)
    AlertSettings.objects.filter(user=user).update(webhook_secret="another secret")
    second = Delivery.objects.create(owner=user, channel="webhook")
    send_delivery(second.pk)
    one, two = (headers[SIGNATURE_HEADER] for headers, _ in receiver.received)
    assert one != two
    body = receiver.received[1][1]
    assert two == "sha256=" + hmac.new(b"another secret", body, hashlib.sha256).hexdigest()


# The address rules: no WEBHOOK_ALLOW_LOCAL here.


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1:{port}/", "refused: the host resolves to a loopback address"),
        ("http://localhost:{port}/", "refused: the host resolves to a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "refused: the host resolves to a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "refused: the host resolves to a link-local"),
        ("http://0.0.0.0:{port}/", "refused: the host resolves to a unspecified address"),
    ],
)
def test_local_addresses_are_refused_at_send_time(user, alert, receiver, run_jobs, url, reason):
    """Checked after name resolution, whatever the stored URL says (a name can change what it points to)."""
    use_webhook(user, url.format(port=receiver.server_address[1]))
    delivery = deliver(alert, run_jobs)
    assert receiver.received == []
    assert delivery.status == "failed" and delivery.error.startswith(reason)
    assert delivery.attempts == 1, "a refused address is not retried"


def test_the_sites_own_redis_is_refused_even_with_webhook_allow_local(user, alert, receiver, settings, allow_local):
    """Whatever WEBHOOK_ALLOW_LOCAL says: a request to Redis or the database is no alert."""
    settings.RQ_REDIS_URL = f"redis://localhost:{receiver.server_address[1]}/0"
    use_webhook(user, receiver.url)
    [delivery] = dispatch.announce_news([alert])
    send_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert receiver.received == []
    assert (delivery.status, delivery.error) == ("failed", "refused: that is this site's own Redis or database")


def test_a_name_that_resolves_to_loopback_is_refused(user, alert, receiver, run_jobs):
    host = socket.gethostname()
    if socket.getaddrinfo(host, 80)[0][4][0] != "127.0.0.1":
        host = "localhost"
    use_webhook(user, f"http://{host}:{receiver.server_address[1]}/")
    delivery = deliver(alert, run_jobs)
    assert receiver.received == [] and "loopback" in delivery.error


def test_redirects_are_not_followed(user, alert, receiver, run_jobs, allow_local):
    target = Receiver()
    threading.Thread(target=target.serve_forever, daemon=True).start()
    try:
        use_webhook(user, receiver.url)
        receiver.statuses = [302]
        receiver.headers = {"Location": target.url}
        delivery = deliver(alert, run_jobs)
        assert len(receiver.received) == 1 and target.received == []
        assert delivery.status == "failed" and delivery.error == "HTTP 302: redirects are not followed"
    finally:
        target.shutdown()
        target.server_close()


def test_errors_name_the_kind_of_failure_only(user, alert, run_jobs, settings, allow_local):
    """A closed port and a port that hangs up say the same thing: the alerts page is no port scanner."""
    settings.ALERT_RETRY_INTERVALS = []
    closed_port = free_port()
    hang_up = socket.socket()
    hang_up.bind(("127.0.0.1", 0))
    hang_up.listen()

    def accept_and_close() -> None:
        connection, _ = hang_up.accept()
        connection.close()

    threading.Thread(target=accept_and_close, daemon=True).start()
    errors = []
    for port in (closed_port, hang_up.getsockname()[1]):
        use_webhook(user, f"http://127.0.0.1:{port}/")
        delivery = Delivery.objects.create(owner=user, channel="webhook")
        send_delivery(delivery.pk)
        errors.append(Delivery.objects.get(pk=delivery.pk).error)
    hang_up.close()
    assert errors == ["could not connect (refused or closed)"] * 2


def test_a_listener_that_never_answers_times_out(user, run_jobs, settings, allow_local):
    settings.WEBHOOK_TIMEOUT = 0.5
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections (the kernel does) and never answers
    try:
        use_webhook(user, f"http://127.0.0.1:{silent.getsockname()[1]}/")
        delivery = Delivery.objects.create(owner=user, channel="webhook")
        assert send_delivery(delivery.pk) == {"delivery": delivery.pk, "failed": "timed out"}
    finally:
        silent.close()


@pytest.mark.django_db  # no worker: a plain (rolled back) transaction is enough, and quicker
@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.org/x", "http://127.0.0.1:6379/", "http://[::1]/", "http://localhost/x",
     "http://169.254.169.254/", "http://0.0.0.0/"],
)  # fmt: skip
def test_the_form_and_the_api_refuse_bad_webhook_urls(user, api, client, url):
    response = api.patch("/api/alert-settings/", {"webhook_url": url}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "webhook_url" in body and body["error"].startswith("webhook_url: ")
    client.force_login(user)
    html = client.post("/settings/", {"webhook_url": url, "email": "on"}).content.decode()
    assert "errorlist" in html
    assert AlertSettings.for_user(user).webhook_url == ""


@pytest.mark.django_db
def test_lan_addresses_are_allowed(api):
    for url in ("http://192.168.1.20:8123/api/webhook/x", "https://10.0.0.5/hook", "http://homeassistant.lan/"):
        assert api.patch("/api/alert-settings/", {"webhook_url": url}, format="json").status_code == 200
