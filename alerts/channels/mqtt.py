"""MQTT (paho-mqtt): each alert as JSON on <prefix>/person/<slug>, QoS 1, not retained; with Home
Assistant discovery on, a retained config per person makes a "last seen" sensor.

The broker's name is resolved and vetted as a webhook's is (loopback and link-local refused unless
MQTT_ALLOW_LOCAL, never the site's own Redis or database), and the client connects to that address."""

from __future__ import annotations

import json
import socket
import threading
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.conf import settings
from django.utils.text import slugify

from alerts.channels.base import Channel, DeliveryError, Message, vetted_address
from alerts.validators import MQTT_SCHEMES

DISCOVERY_PREFIX = "homeassistant"


def person_slug(person_id: int | None, name: str) -> str:
    return slugify(name) or f"person-{person_id}"


class Mqtt(Channel):
    name = "mqtt"
    label = "MQTT"

    def is_enabled(self) -> bool:
        return bool(self.prefs.mqtt_url)

    def publications(self, message: Message) -> list[tuple[str, dict, bool]]:
        """(topic, JSON payload, retained) of everything this message publishes."""
        prefix = self.prefs.topic_prefix
        if message.kind == "test":
            return [(f"{prefix}/test", {"test": True, "text": message.text, "time": message.time.isoformat()}, False)]
        if message.kind == "someone_new":
            body = {"count": message.count, "photo_url": message.url, "time": message.time.isoformat()}
            return [(f"{prefix}/unknown", body, False)]
        people = message.people or [(message.person_id, message.person_name, message.count)]
        published = []
        for person_id, name, count in people:
            topic = f"{prefix}/person/{person_slug(person_id, name)}"
            body = {
                "person": name,
                "person_id": person_id,
                "photo_url": message.photo_url or message.url,
                "distance": message.distance if message.kind == "found" else None,
                "time": message.time.isoformat(),
                "earlier": message.earlier,
            }
            if message.kind != "found":
                body.update(count=count, url=message.url)
            if self.prefs.mqtt_discovery:
                published.append(self.discovery_config(person_id, name, topic))
            published.append((topic, body, False))
        return published

    def discovery_config(self, person_id: int, name: str, topic: str) -> tuple[str, dict, bool]:
        user_id = self.prefs.user_id
        object_id = f"photosite_{user_id}_person_{person_id}"
        config = {
            "name": f"{name} last seen",
            "unique_id": object_id,
            "object_id": object_id,
            "state_topic": topic,
            "value_template": "{{ value_json.time }}",
            "json_attributes_topic": topic,
            "device_class": "timestamp",
            "icon": "mdi:face-recognition",
        }
        return f"{DISCOVERY_PREFIX}/sensor/{object_id}/config", config, True

    def send(self, message: Message) -> str:
        publications = self.publications(message)
        client = connect(self.prefs.mqtt_url)
        try:
            for topic, body, retain in publications:
                info = client.publish(topic, json.dumps(body), qos=1, retain=retain)
                info.wait_for_publish(timeout=settings.MQTT_TIMEOUT)
                if not info.is_published():
                    raise DeliveryError("timed out waiting for the broker")
        except (RuntimeError, ValueError) as exc:  # paho: the connection went while publishing
            raise DeliveryError("the broker closed the connection") from exc
        finally:
            client.disconnect()
            client.loop_stop()
        return f"published {len(publications)}"


class PinnedClient(mqtt.Client):
    """Connects to the address we vetted while TLS checks the certificate against the broker's name.

    paho 2.1 opens its TCP connection in _create_socket_connection (requirements.txt pins the version)."""

    def __init__(self, address: str) -> None:
        super().__init__(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.address = address

    def _create_socket_connection(self) -> socket.socket:
        return socket.create_connection((self.address, self._port), timeout=self._connect_timeout)


def connect(url: str) -> mqtt.Client:
    """A connected client with its network loop running; DeliveryError when the broker cannot be had."""
    parts = urlsplit(url)
    secure = parts.scheme == "mqtts"
    if parts.scheme not in MQTT_SCHEMES or not parts.hostname:
        raise DeliveryError("refused: only mqtt and mqtts broker URLs are allowed", permanent=True)
    port = parts.port or (8883 if secure else 1883)
    client = PinnedClient(vetted_address(parts.hostname, port, settings.MQTT_ALLOW_LOCAL))
    client.connect_timeout = settings.MQTT_TIMEOUT
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if secure:
        client.tls_set()
    connected = threading.Event()
    outcome: dict = {}

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        outcome["reason"] = reason_code
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(parts.hostname, port, keepalive=30)
    except TimeoutError as exc:
        raise DeliveryError("timed out connecting to the broker") from exc
    except ConnectionRefusedError as exc:
        raise DeliveryError("the broker refused the connection") from exc
    except OSError as exc:
        raise DeliveryError("could not reach the broker") from exc
    client.loop_start()
    if not connected.wait(settings.MQTT_TIMEOUT):
        client.loop_stop()
        raise DeliveryError("timed out waiting for the broker")
    reason = outcome["reason"]
    if reason.is_failure:
        client.loop_stop()
        # A refused login will not mend itself on retry.
        raise DeliveryError(f"the broker refused the connection ({reason})", permanent=True)
    return client
