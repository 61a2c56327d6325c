"""Which addresses alerts may be sent to: checked when a form is saved and again at send time.

Webhooks take only http and https, MQTT brokers mqtt and mqtts; neither goes to loopback, link-local
(169.254.0.0/16, where cloud metadata lives), unspecified or multicast addresses, unless
WEBHOOK_ALLOW_LOCAL (MQTT_ALLOW_LOCAL) is on. LAN addresses are allowed: home automation lives there.
The site's own Redis and database are refused whatever the settings: a user's broker URL pointed at
Redis would have MQTT's packets, user name and topic read as Redis commands. A form can only check what
the URL says; each channel checks every address the name resolves to, right before it connects (vetted
in alerts.channels.base).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

WEBHOOK_SCHEMES = ("http", "https")
MQTT_SCHEMES = ("mqtt", "mqtts")
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_refusal(address: str, allow_local: bool) -> str | None:
    """The kind of address (loopback, link-local, ...) that may not receive alerts, or None."""
    if allow_local:
        return None
    ip = _ip(address)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (such as the cloud metadata service)"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    return None


def host_refusal(host: str, allow_local: bool) -> str | None:
    """The same rule for the host part of a URL, as far as it can be told without resolving it."""
    host = host.strip("[]").lower().rstrip(".")
    if allow_local:
        return None
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return "loopback"
    try:
        return address_refusal(host, allow_local)
    except ValueError:
        return None  # a name: checked after resolution, at send time


DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306}


def redis_endpoint(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    try:
        port = parts.port or 6379
    except ValueError:  # a bad port: nothing here could connect to it either
        return None
    return (parts.hostname or "localhost", port) if parts.scheme in ("redis", "rediss") else None


def database_endpoint(database: dict) -> tuple[str, int] | None:
    host, engine = database.get("HOST") or "", database["ENGINE"].rsplit(".", 1)[-1]
    if not host or host.startswith("/"):  # SQLite, or a socket's path: no TCP address
        return None
    return host, int(database.get("PORT") or DATABASE_PORTS.get(engine, 5432))


def site_endpoints() -> list[tuple[str, int]]:
    """(host, port) of the site's own Redis (the embedded one too) and database server."""
    found = [redis_endpoint(settings.RQ_REDIS_URL), database_endpoint(settings.DATABASES["default"])]
    return [endpoint for endpoint in found if endpoint]


def site_services() -> set[tuple[str, int]]:
    """The site's endpoints with their names resolved."""
    services = set()
    for host, port in site_endpoints():
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            continue  # not resolvable now: nothing here could connect to it either
        services.update((str(_ip(info[4][0])), port) for info in infos)
    return services


def any_site_service(addresses: list[str], port: int) -> bool:
    """Whether any of these addresses, at this port, is the site's own Redis or database: never an alert's
    destination, local or not, whatever ALLOW_LOCAL says. ValueError for what is not an IP address (checked
    before the site's endpoints are resolved)."""
    wanted = {(str(_ip(address)), port) for address in addresses}
    return not wanted.isdisjoint(site_services())


def validate_webhook_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme.lower() not in WEBHOOK_SCHEMES:
        raise ValidationError("Only http:// and https:// webhook URLs are allowed.", code="scheme")
    if not parts.hostname:
        raise ValidationError("The webhook URL needs a host name.", code="host")
    refusal = host_refusal(parts.hostname, settings.WEBHOOK_ALLOW_LOCAL)
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
    refusal = host_refusal(parts.hostname, settings.MQTT_ALLOW_LOCAL)
    if refusal:
        raise ValidationError(f"Refused: {refusal} addresses are not allowed for MQTT.", code="address")
    if names_site_service(parts):
        raise ValidationError("Refused: that is this site's own Redis or database.", code="address")
    if has_control_characters(unquote(parts.username or "") + unquote(parts.password or "")):
        raise ValidationError("The broker's user name and password may not hold control characters.", code="login")


def names_site_service(parts: SplitResult) -> bool:
    """any_site_service for a broker URL, as far as it can be told without resolving its host."""
    try:
        return any_site_service([parts.hostname.strip("[]")], parts.port or 1883)
    except ValueError:
        return False  # a name: checked after resolution, at send time


def has_control_characters(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def validate_topic_prefix(value: str) -> None:
    """MQTT topics: no wildcards, no control characters (a topic is sent as it is)."""
    if has_control_characters(value) or any(char in value for char in "#+"):
        raise ValidationError("A topic prefix may not hold # or + or control characters.", code="topic")
