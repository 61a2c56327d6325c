"""The alerts pages: alerts and summaries, settings with test alerts, a person's alert rules."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from alerts.models import AlertSettings, Delivery, Summary, SummaryKind
from recognition.models import Alert, Person, Photo, PhotoStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client, user) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def obama(user) -> Person:
    return Person.objects.create(owner=user, name="Obama")


def photo_of(user, name: str = "p.jpg") -> Photo:
    return Photo.objects.create(owner=user, image=f"photos/x/{name}", original_name=name, status=PhotoStatus.DONE)


def test_alerts_page_marks_unread_and_reads(owner, user, obama):
    alert = Alert.objects.create(owner=user, photo=photo_of(user), person=obama, distance=0.335)
    html = owner.get(reverse("alerts")).content.decode()
    assert 'class="alert unread"' in html and 'id="unread-alerts"' in html and "Obama</a> was found in" in html
    owner.post(reverse("alert-read", args=[alert.pk]), {"next": "https://evil.example/"})
    assert Alert.objects.get().seen
    html = owner.get(reverse("alerts")).content.decode()
    assert 'class="alert unread"' not in html and 'id="unread-alerts"' not in html


def test_a_summary_is_one_expandable_item_and_mark_all_read(owner, user, obama):
    earlier = [Alert.objects.create(owner=user, photo=photo_of(user, f"{n}.jpg"), person=obama, earlier=True)
               for n in range(3)]  # fmt: skip
    summary = Summary.objects.create(owner=user, kind=SummaryKind.EARLIER, person=obama, count=3)
    summary.alerts.set(earlier)
    Delivery.objects.create(owner=user, channel="webhook", summary=summary, status="sent", attempts=1)
    html = owner.get(reverse("alerts")).content.decode()
    assert html.count('class="alert summary unread"') == 1 and 'data-alert-id="' not in html
    assert "<details>" in html and "Obama was found in 3 earlier photos" in html and "webhook: sent" in html
    assert '<span class="badge" id="unread-alerts" title="unread alerts">1</span>' in html
    page = owner.get(summary.get_absolute_url()).content.decode()
    assert all(f"Obama in {n}.jpg" in page for n in range(3))
    owner.post(reverse("alerts-read-all"))
    assert not Summary.objects.filter(seen=False).exists() and not Alert.objects.filter(seen=False).exists()


def test_each_delivery_shows_by_its_alert(owner, user, obama):
    alert = Alert.objects.create(owner=user, photo=photo_of(user), person=obama)
    Delivery.objects.create(owner=user, channel="webhook", alert=alert, status="failed", attempts=4, error="timed out")
    Delivery.objects.create(owner=user, channel="email", alert=alert, status="sent", attempts=1)
    html = owner.get(reverse("alerts")).content.decode()
    assert "webhook: failed after 4 tries (timed out)" in html and "email: sent" in html


def test_another_users_summary_is_404(user, other_user, obama):
    summary = Summary.objects.create(owner=user, kind=SummaryKind.EARLIER, person=obama, count=1)
    intruder = Client()
    intruder.force_login(other_user)
    assert intruder.get(summary.get_absolute_url()).status_code == 404
    assert intruder.post(reverse("summary-read", args=[summary.pk])).status_code == 404


def test_settings_save_channels_and_rules_and_show_the_secret(owner, user):
    html = owner.get(reverse("settings")).content.decode()
    secret = AlertSettings.objects.get(user=user).webhook_secret
    assert secret and secret in html and "X-Photosite-Signature" in html
    response = owner.post(reverse("settings"), {
        "webhook_url": "https://hooks.example/in", "mqtt_url": "mqtt://ha.lan:1883", "mqtt_discovery": "on",
        "quiet_start": "22:00", "quiet_end": "07:00", "alert_unknown": "on",
    })  # fmt: skip
    assert response.status_code == 302
    prefs = AlertSettings.objects.get(user=user)
    assert prefs.webhook_url == "https://hooks.example/in" and not prefs.email and prefs.alert_unknown
    assert (prefs.mqtt_url, prefs.mqtt_discovery, str(prefs.quiet_start)) == ("mqtt://ha.lan:1883", True, "22:00:00")
    response = owner.post(reverse("settings"), {"webhook_url": "not a url", "quiet_start": "22:00"})
    body = response.content.decode()
    assert response.status_code == 200 and "Enter a valid URL" in body and "both a start and an end" in body
    owner.post(reverse("settings-secret"))
    assert AlertSettings.objects.get(user=user).webhook_secret != secret


@pytest.mark.django_db(transaction=True)
def test_send_a_test_alert_per_channel(owner, user, receiver, run_jobs, settings):
    settings.WEBHOOK_ALLOW_LOCAL = True
    response = owner.post(reverse("settings-test", args=["webhook"]), follow=True)
    assert "Set this channel up first" in response.content.decode()
    AlertSettings.objects.filter(user=user).update(webhook_url=receiver.url)
    owner.post(reverse("settings-test", args=["webhook"]))
    run_jobs()
    assert receiver.bodies()[0]["event"] == "test"
    html = owner.get(reverse("settings")).content.decode()
    assert "last test:" in html and "webhook: sent" in html
    assert owner.post(reverse("settings-test", args=["pigeon"]), follow=True).status_code == 200


def test_a_persons_alert_rules(owner, user, obama):
    page = owner.get(reverse("person", args=[obama.pk])).content.decode()
    assert 'name="alerts_enabled"' in page and 'value="mqtt"' in page
    owner.post(reverse("person-alerts", args=[obama.pk]), {"alert_channels": ["webhook", "mqtt"]})
    obama.refresh_from_db()
    assert not obama.alerts_enabled and obama.alert_channels == ["webhook", "mqtt"]
    owner.post(reverse("person-alerts", args=[obama.pk]), {"alerts_enabled": "on", "alert_channels": ["fax"]})
    obama.refresh_from_db()
    assert not obama.alerts_enabled, "a bad channel changes nothing"
