"""Where alerts may go (alerts/validators.py): the pure rules; each channel's tests send for real."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from alerts.validators import (
    database_endpoint,
    redis_endpoint,
    site_endpoints,
    validate_mqtt_url,
    validate_topic_prefix,
)

POSTGRES, MYSQL, SQLITE = (f"django.db.backends.{name}" for name in ("postgresql", "mysql", "sqlite3"))


def test_the_sites_endpoints_are_its_redis_and_its_database_server(settings):
    settings.RQ_REDIS_URL = "redis://127.0.0.1:6380/0"
    assert site_endpoints()[0] == ("127.0.0.1", 6380)
    assert database_endpoint({"ENGINE": POSTGRES, "HOST": "db.lan", "PORT": ""}) == ("db.lan", 5432)
    assert database_endpoint({"ENGINE": MYSQL, "HOST": "db.lan", "PORT": "3307"}) == ("db.lan", 3307)
    assert database_endpoint({"ENGINE": MYSQL, "HOST": "db.lan"}) == ("db.lan", 3306)


def test_sockets_and_files_have_no_endpoint():
    assert redis_endpoint("unix:///run/redis.sock") is None
    assert redis_endpoint("redis://host:99999/0") is None
    assert database_endpoint({"ENGINE": POSTGRES, "HOST": "/run/postgresql", "PORT": ""}) is None
    assert database_endpoint({"ENGINE": SQLITE, "NAME": "db.sqlite3"}) is None


@pytest.mark.parametrize(
    "url", ["mqtt://user%0A:pw@broker.lan", "mqtt://user:pw%0D@broker.lan", "mqtt://us%00er@broker.lan", "mqtt://[::1]"]
)
def test_broker_urls_refused(url, settings):
    settings.MQTT_ALLOW_LOCAL = False
    with pytest.raises(ValidationError):
        validate_mqtt_url(url)


def test_a_local_broker_is_allowed_with_mqtt_allow_local(settings):
    settings.MQTT_ALLOW_LOCAL = True
    validate_mqtt_url("mqtt://localhost:1883")
    validate_mqtt_url("mqtts://home:s%2Fecret@ha.lan")


@pytest.mark.parametrize("prefix, ok", [("home/faces", True), ("", True), ("home/+", False), ("a\tb", False)])
def test_topic_prefixes(prefix, ok):
    if ok:
        validate_topic_prefix(prefix)
    else:
        with pytest.raises(ValidationError):
            validate_topic_prefix(prefix)
