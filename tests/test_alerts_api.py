"""The alerts API contract: /api/alert-settings/, {"alerts"} on people, and /api/alerts/ with summaries."""

from __future__ import annotations

import pytest

from alerts.models import AlertSettings, Delivery, Summary, SummaryKind
from recognition.models import Alert, Person, Photo, PhotoStatus

pytestmark = pytest.mark.django_db


def test_alert_settings_read_and_patch(api, user):
    body = api.get("/api/alert-settings/").json()
    assert body == {
        "email": True, "webhook_url": "", "webhook_secret": AlertSettings.objects.get(user=user).webhook_secret,
        "mqtt_url": "", "mqtt_prefix": "", "mqtt_discovery": False, "quiet_hours": None, "alert_unknown": False,
    }  # fmt: skip
    changes = {
        "email": False, "webhook_url": "https://hooks.example/in", "webhook_secret": "mine", "mqtt_url": "mqtts://u:p@broker:8883",
        "mqtt_prefix": "home/faces", "mqtt_discovery": True, "quiet_hours": {"start": "22:00", "end": "07:00"},
        "alert_unknown": True,
    }  # fmt: skip
    body = api.patch("/api/alert-settings/", changes, format="json").json()
    assert body == changes | {"webhook_secret": body["webhook_secret"]}
    assert body["webhook_secret"] != "mine", "the secret is read only"
    assert api.patch("/api/alert-settings/", {"quiet_hours": None}, format="json").json()["quiet_hours"] is None


@pytest.mark.parametrize(
    "change, field",
    [
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "07:00", "end": "07:00"}}, "quiet_hours"),
        ({"quiet_hours": "22-07"}, "quiet_hours"),
        ({"email": "perhaps"}, "email"),
        ({"webhook_url": "ftp://example.org/"}, "webhook_url"),
        ({"mqtt_url": "tcp://broker"}, "mqtt_url"),
        ({"mqtt_url": "mqtt://127.0.0.1:1883"}, "mqtt_url"),
        ({"mqtt_url": "mqtt://localhost"}, "mqtt_url"),
        ({"mqtt_url": "mqtt://169.254.169.254:1883"}, "mqtt_url"),
        ({"mqtt_url": "mqtt://user%0D%0AFLUSHALL:pw@broker.lan"}, "mqtt_url"),
        ({"mqtt_prefix": "home/#"}, "mqtt_prefix"),
        ({"mqtt_prefix": "home\nfaces"}, "mqtt_prefix"),
    ],
)
def test_bad_values_get_400_with_the_fields_error(api, change, field):
    response = api.patch("/api/alert-settings/", change, format="json")
    assert response.status_code == 400
    assert field in response.json() and response.json()["error"].startswith(f"{field}: ")


def test_alerts_on_or_off_per_person(api, user, other_api):
    person = Person.objects.create(owner=user, name="Biden")
    assert api.get(f"/api/people/{person.pk}/").json()["alerts"] is True
    assert api.patch(f"/api/people/{person.pk}/", {"alerts": False}, format="json").json()["alerts"] is False
    assert not Person.objects.get(pk=person.pk).alerts_enabled
    assert other_api.patch(f"/api/people/{person.pk}/", {"alerts": True}, format="json").status_code == 404


def test_alerts_list_news_with_deliveries_and_summaries_with_count(api, user, other_api):
    obama = Person.objects.create(owner=user, name="Obama")
    photos = [Photo.objects.create(owner=user, image=f"photos/x/{n}.jpg", status=PhotoStatus.DONE) for n in range(3)]
    news = Alert.objects.create(owner=user, photo=photos[0], person=obama, distance=0.3)
    Delivery.objects.create(owner=user, channel="webhook", alert=news, status="failed", attempts=4, error="timed out")
    earlier = [Alert.objects.create(owner=user, photo=p, person=obama, earlier=True) for p in photos[1:]]
    summary = Summary.objects.create(owner=user, kind=SummaryKind.EARLIER, person=obama, count=2)
    summary.alerts.set(earlier)
    Delivery.objects.create(owner=user, channel="mqtt", summary=summary, status="sent", attempts=1)

    items = api.get("/api/alerts/").json()["results"]
    assert [item["kind"] for item in items] == ["summary", "alert"]  # newest first; earlier ones inside
    assert items[0] | {"created_at": None, "alerts": None} == {
        "kind": "summary", "id": summary.pk, "summary_kind": "earlier", "person": {"id": obama.pk, "name": "Obama"},
        "photo": None, "count": 2, "text": "Obama was found in 2 earlier photos", "seen": False, "created_at": None,
        "earlier": True, "alerts": None,
        "deliveries": [{"channel": "mqtt", "status": "sent", "attempts": 1, "error": ""}],
    }  # fmt: skip
    assert items[1]["earlier"] is False and items[1]["deliveries"] == [
        {"channel": "webhook", "status": "failed", "attempts": 4, "error": "timed out"}
    ]
    inside = api.get(items[0]["alerts"]).json()["results"]
    assert sorted(item["id"] for item in inside) == sorted(a.pk for a in earlier)
    assert all(item["earlier"] for item in inside)
    assert other_api.get("/api/alerts/").json()["results"] == []
    assert other_api.get(f"/api/alerts/?summary={summary.pk}").status_code == 404
    assert api.get("/api/alerts/?summary=99999999999999999999999").status_code == 404
    assert api.post(f"/api/alerts/{news.pk}/seen/").json() == {"id": news.pk, "seen": True}
    assert [item["kind"] for item in api.get("/api/alerts/?unseen=1").json()["results"]] == ["summary"]
