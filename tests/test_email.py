"""The email channel: alerts go only to an address confirmed by a signed, expiring link sent to it."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from alerts import dispatch
from alerts.delivery import send_delivery
from alerts.models import AlertSettings, Delivery
from recognition.models import Alert, Person, Photo, PhotoStatus
from tests.conftest import token_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alert(user) -> Alert:
    person = Person.objects.create(owner=user, name="Obama")
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", original_name="p.jpg", status=PhotoStatus.DONE)
    return Alert.objects.create(owner=user, photo=photo, person=person, distance=0.335)


def confirmation_link(message) -> str:
    return re.search(r"http://\S+(/settings/email/confirm/\S+/)", message.body).group(1)


def test_an_address_is_used_only_once_confirmed_by_its_link(user, client, alert, redis_server, run_jobs):
    client.force_login(user)
    client.post("/settings/", {"email": "on", "email_address": "victim@example.net"})
    [confirmation] = mail.outbox
    assert confirmation.to == ["victim@example.net"]
    # Nothing the account holder typed is in the subject (an attacker cannot write to a stranger).
    assert confirmation.subject == "Confirm your address for photosite alerts"
    assert "alice" not in confirmation.body
    assert "until you open the link" in client.get("/settings/").content.decode()

    # Unconfirmed: an alert is not emailed.
    assert dispatch.announce_news([alert]) == []
    run_jobs()
    assert len(mail.outbox) == 1

    client.get(confirmation_link(confirmation))
    prefs = AlertSettings.objects.get(user=user)
    assert prefs.email_confirmed == "victim@example.net" and prefs.email_ready
    biden = Person.objects.create(owner=user, name="Biden")
    [delivery] = dispatch.announce_news([Alert.objects.create(owner=user, photo=alert.photo, person=biden)])
    run_jobs()
    assert mail.outbox[-1].to == ["victim@example.net"] and mail.outbox[-1].subject == "Biden was found in a photo"
    assert Delivery.objects.get(pk=delivery.pk).status == "sent"


def test_a_new_address_needs_its_own_confirmation(user, client):
    AlertSettings.objects.create(user=user, email_address="a@example.org", email_confirmed="a@example.org")
    client.force_login(user)
    client.post("/settings/", {"email": "on", "email_address": "b@example.org"})
    prefs = AlertSettings.objects.get(user=user)
    assert not prefs.email_ready and mail.outbox[-1].to == ["b@example.org"]


def test_the_link_is_signed_expiring_and_for_its_account(user, other_user, client, settings):
    client.force_login(user)
    client.post("/settings/", {"email": "on", "email_address": "me@example.org"})
    link = confirmation_link(mail.outbox[0])

    client.force_login(other_user)  # someone else's session cannot use it
    AlertSettings.objects.create(user=other_user, email_address="me@example.org")
    client.get(link)
    assert not AlertSettings.objects.get(user=other_user).email_confirmed

    client.force_login(user)
    client.get(link[:-3] + "xx/")  # tampered
    assert not AlertSettings.objects.get(user=user).email_confirmed
    settings.ALERT_EMAIL_CONFIRM_MAX_AGE = -1  # expired
    response = client.get(link, follow=True)
    assert "expired" in response.content.decode() and not AlertSettings.objects.get(user=user).email_confirmed

    settings.ALERT_EMAIL_CONFIRM_MAX_AGE = 3600
    client.get(link)
    assert AlertSettings.objects.get(user=user).email_confirmed == "me@example.org"


def test_confirmation_mails_are_limited(user, client):
    from django.core.cache import cache

    cache.clear()
    client.force_login(user)
    client.post("/settings/", {"email": "on", "email_address": "me@example.org"})
    for _ in range(5):
        client.post("/settings/email/confirm/")
    assert len(mail.outbox) == 1
    cache.clear()


def test_the_api_cannot_set_an_address(user):
    """The API turns email alerts on and off; the address is set (and confirmed) on the settings page."""
    api = token_client(user)
    body = api.patch("/api/alert-settings/", {"email": True, "email_address": "x@example.net"}, format="json").json()
    assert body["email"] is True and "email_address" not in body
    assert AlertSettings.objects.get(user=user).email_address == "alice@example.com"


def test_an_address_unconfirmed_after_queueing_is_not_mailed(user, alert):
    AlertSettings.objects.create(user=user, email_address="a@example.org", email_confirmed="a@example.org")
    delivery = Delivery.objects.create(owner=user, channel="email", alert=alert)
    AlertSettings.objects.filter(user=user).update(email_address="b@example.org")
    send_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert mail.outbox == [] and delivery.status == "failed" and "not set up" in delivery.error
