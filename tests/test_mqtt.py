"""The MQTT channel against a real broker (Debian's mosquitto on a free port): what a subscriber gets."""

from __future__ import annotations

import json
import socket

import pytest

from alerts import dispatch
from alerts.delivery import send_delivery
from alerts.models import AlertSettings, Delivery, Summary, SummaryKind
from recognition.models import Alert, Person, Photo, PhotoStatus
from tests.conftest import MqttBroker, free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def allow_local(settings):
    """The brokers here run on 127.0.0.1; the address rules' tests below turn this off."""
    settings.MQTT_ALLOW_LOCAL = True


@pytest.fixture
def alert(user) -> Alert:
    person = Person.objects.create(owner=user, name="Barack Obama")
    photo = Photo.objects.create(owner=user, image="photos/x/p.jpg", original_name="p.jpg", status=PhotoStatus.DONE)
    return Alert.objects.create(owner=user, photo=photo, person=person, distance=0.335)


def use_mqtt(user, url: str, **fields) -> AlertSettings:
    prefs = AlertSettings.for_user(user)
    AlertSettings.objects.filter(pk=prefs.pk).update(mqtt_url=url, email=False, **fields)
    prefs.refresh_from_db()
    return prefs


def test_an_alert_is_published_as_json_on_the_person_topic(user, alert, mqtt_broker, run_jobs):
    use_mqtt(user, mqtt_broker.url)
    subscriber = mqtt_broker.subscribe("photosite/#")
    try:
        [delivery] = dispatch.announce_news([alert])
        run_jobs()
        wait_for(lambda: subscriber.messages, timeout=10)
    finally:
        subscriber.close()
    [(topic, payload, retained)] = subscriber.messages
    assert topic == "photosite/alice/person/barack-obama" and not retained
    body = json.loads(payload)
    assert body == {
        "person": "Barack Obama",
        "person_id": alert.person_id,
        "photo_url": f"http://127.0.0.1:8000/photos/{alert.photo_id}/",
        "distance": 0.335,
        "time": alert.created_at.isoformat(),
        "earlier": False,
    }
    assert Delivery.objects.get(pk=delivery.pk).status == "sent"


def test_a_summary_goes_to_the_person_topic_with_its_count(user, alert, mqtt_broker):
    use_mqtt(user, mqtt_broker.url, mqtt_prefix="home/faces")
    summary = Summary.objects.create(owner=user, kind=SummaryKind.EARLIER, person=alert.person, count=12)
    delivery = Delivery.objects.create(owner=user, channel="mqtt", summary=summary)
    subscriber = mqtt_broker.subscribe("home/#")
    try:
        send_delivery(delivery.pk)
        wait_for(lambda: subscriber.messages, timeout=10)
    finally:
        subscriber.close()
    [(topic, payload, _)] = subscriber.messages
    body = json.loads(payload)
    assert topic == "home/faces/person/barack-obama"
    assert body["earlier"] is True and body["count"] == 12 and body["url"].endswith(f"/alerts/summaries/{summary.pk}/")


def test_home_assistant_discovery_publishes_a_retained_sensor_config(user, alert, mqtt_broker):
    use_mqtt(user, mqtt_broker.url, mqtt_discovery=True)
    send_delivery(Delivery.objects.create(owner=user, channel="mqtt", alert=alert).pk)
    # Retained: a subscriber that comes later still gets it, as Home Assistant does after a restart.
    subscriber = mqtt_broker.subscribe("homeassistant/#")
    try:
        wait_for(lambda: subscriber.messages, timeout=10)
    finally:
        subscriber.close()
    [(topic, payload, retained)] = subscriber.messages
    config = json.loads(payload)
    assert retained and topic == f"homeassistant/sensor/photosite_{user.pk}_person_{alert.person_id}/config"
    assert config["state_topic"] == "photosite/alice/person/barack-obama"
    assert config["device_class"] == "timestamp" and config["name"] == "Barack Obama last seen"


def test_the_broker_down_retries_then_fails_with_the_reason(user, alert, run_jobs, settings):
    settings.ALERT_RETRY_INTERVALS = [0, 0]
    use_mqtt(user, f"mqtt://127.0.0.1:{free_port()}")
    [delivery] = dispatch.announce_news([alert])
    run_jobs()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.error) == ("failed", 3, "the broker refused the connection")


def test_credentials_from_the_url_are_used(user, alert, tmp_path):
    broker = MqttBroker(tmp_path, users={"home": "s3cret/pass"})
    broker.start()
    try:
        subscriber = broker.subscribe("#", "home", "s3cret/pass")
        use_mqtt(user, f"mqtt://home:s3cret%2Fpass@127.0.0.1:{broker.port}")
        good = Delivery.objects.create(owner=user, channel="mqtt", alert=alert)
        send_delivery(good.pk)
        wait_for(lambda: subscriber.messages, timeout=10)
        subscriber.close()
        use_mqtt(user, f"mqtt://home:wrong@127.0.0.1:{broker.port}")
        bad = Delivery.objects.create(owner=user, channel="mqtt")
        send_delivery(bad.pk)
    finally:
        broker.stop()
    assert Delivery.objects.get(pk=good.pk).status == "sent"
    bad.refresh_from_db()
    assert bad.status == "failed" and bad.attempts == 1, "a refused login is not retried"
    assert bad.error.startswith("the broker refused the connection (")


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://broker:1883", "mqtt://", "broker:1883", "mqtt://host:99999"])
def test_bad_broker_urls_are_refused(api, url):
    response = api.patch("/api/alert-settings/", {"mqtt_url": url}, format="json")
    assert response.status_code == 400 and "mqtt_url" in response.json()


# The address rules.


def test_a_loopback_broker_is_refused_at_send_time_without_mqtt_allow_local(user, alert, mqtt_broker, settings):
    """Checked after name resolution, whatever the stored URL says (the form refuses it too)."""
    settings.MQTT_ALLOW_LOCAL = False
    use_mqtt(user, mqtt_broker.url.replace("127.0.0.1", "localhost"))
    subscriber = mqtt_broker.subscribe("#")
    delivery = Delivery.objects.create(owner=user, channel="mqtt", alert=alert)
    send_delivery(delivery.pk)
    subscriber.close()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 1), "a refused address is not retried"
    assert delivery.error == "refused: the host resolves to a loopback address"
    assert subscriber.messages == []


def listener() -> socket.socket:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    return server


def test_the_sites_own_redis_is_refused_even_with_mqtt_allow_local(user, alert, settings):
    """A broker URL pointed at the site's Redis would have MQTT's bytes (user name, topic) read as commands."""
    server = listener()
    port = server.getsockname()[1]
    settings.RQ_REDIS_URL = f"redis://localhost:{port}/0"
    use_mqtt(user, f"mqtt://127.0.0.1:{port}")
    delivery = Delivery.objects.create(owner=user, channel="mqtt", alert=alert)
    send_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error == "refused: that is this site's own Redis or database"
    with pytest.raises(TimeoutError):
        server.accept()
    server.close()


@pytest.mark.django_db
def test_the_form_refuses_the_sites_own_redis_by_address(api, settings):
    settings.RQ_REDIS_URL = "redis://127.0.0.1:6390/0"
    response = api.patch("/api/alert-settings/", {"mqtt_url": "mqtt://127.0.0.1:6390"}, format="json")
    assert response.status_code == 400
    assert response.json()["mqtt_url"] == ["Refused: that is this site's own Redis or database."]
    assert api.patch("/api/alert-settings/", {"mqtt_url": "mqtt://127.0.0.1:1883"}, format="json").status_code == 200
