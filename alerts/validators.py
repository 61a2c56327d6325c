"""Which addresses alerts may be sent to: checked when a form is saved and again at send time.

Webhooks take only http and https, and never loopback, link-local (169.254.0.0/16, where cloud
metadata lives) or unspecified addresses, unless WEBHOOK_ALLOW_LOCAL is on. LAN addresses are
allowed: home automation lives there. A form can only check what the URL says; the webhook channel
checks every address the name resolves to, right before it connects.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

WEBHOOK_SCHEMES = ("http", "https")
MQTT_SCHEMES = ("mqtt", "mqtts")
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def address_refusal(address: str) -> str | None:
    """The kind of address (loopback, link-local, ...) that may not receive webhooks, or None."""
    if settings.WEBHOOK_ALLOW_LOCAL:
        return None
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (such as the cloud metadata service)"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    return None


def host_refusal(host: str) -> str | None:
    """The same rule for the host part of a URL, as far as it can be told without resolving it."""
    host = host.strip("[]").lower().rstrip(".")
    if settings.WEBHOOK_ALLOW_LOCAL:
        return None
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return "loopback"
    try:
        return address_refusal(host)
    except ValueError:
        return None  # a name: checked after resolution, at send time


def validate_webhook_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme.lower() not in WEBHOOK_SCHEMES:
        raise ValidationError("Only http:// and https:// webhook URLs are allowed.", code="scheme")
    if not parts.hostname:
        raise ValidationError("The webhook URL needs a host name.", code="host")
    refusal = host_refusal(parts.hostname)
    if refusal:
        raise ValidationError(f"Refused: {refusal} addresses are not allowed for webhooks.", code="address")


def validate_mqtt_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme.lower() not in MQTT_SCHEMES:
        raise ValidationError("Use mqtt://host:1883 or mqtts://host:8883 (user:password@ optional).", code="scheme")
    if not parts.hostname:
        raise ValidationError("The broker URL needs a host name.", code="host")
    try:
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise ValidationError("The broker URL has a bad port.", code="port") from exc
