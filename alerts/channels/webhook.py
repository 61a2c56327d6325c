"""Webhooks: JSON POSTed to the user's URL, signed with HMAC-SHA256, to vetted addresses only.

The host name is resolved and every address it gives is checked (alerts.channels.base.vetted_address)
before we connect, to that very address (no second lookup a DNS trick could change). Redirects are not
followed. Errors name the kind of failure only, so the alerts page is no port scanner.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import ssl
from urllib.parse import urlsplit

from django.conf import settings

from alerts.channels.base import Channel, DeliveryError, Message, vetted_address
from alerts.validators import WEBHOOK_SCHEMES

SIGNATURE_HEADER = "X-Photosite-Signature"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(message: Message) -> dict:
    if message.kind == "found":
        return {"event": "person.found", "alert": message.alert.as_payload()}
    person = {"id": message.person_id, "name": message.person_name}
    if message.kind in ("found_earlier", "found_more"):
        event = "person.found_earlier" if message.kind == "found_earlier" else "person.found_more"
        return {"event": event, "person": person, "count": message.count, "url": message.url}
    if message.kind == "quiet_summary":
        people = [{"id": pid, "name": name, "count": n} for pid, name, n in message.people]
        return {"event": "alerts.summary", "count": message.count, "people": people, "url": message.url}
    if message.kind == "someone_new":
        return {"event": "face.unknown", "count": message.count, "url": message.url}
    return {"event": "test", "text": message.text, "url": message.url}


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address we vetted, whatever the name resolves to by then."""

    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST body to url through a vetted address; the HTTP status, redirects not followed."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in WEBHOOK_SCHEMES or not parts.hostname:
        raise DeliveryError("refused: only http and https URLs are allowed", permanent=True)
    secure = parts.scheme.lower() == "https"
    port = parts.port or (443 if secure else 80)
    address = vetted_address(parts.hostname, port, settings.WEBHOOK_ALLOW_LOCAL)
    connection_class = _PinnedHTTPSConnection if secure else _PinnedHTTPConnection
    connection = connection_class(parts.hostname, port, address, settings.WEBHOOK_TIMEOUT)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=headers)
        return connection.getresponse().status
    except TimeoutError as exc:
        raise DeliveryError("timed out") from exc
    except ssl.SSLError as exc:
        raise DeliveryError("TLS handshake failed") from exc
    except (OSError, http.client.HTTPException) as exc:
        # Refused, reset, closed, or not HTTP: one answer for all, or the error would tell open ports
        # from closed ones.
        raise DeliveryError("could not connect (refused or closed)") from exc
    finally:
        connection.close()


class Webhook(Channel):
    name = "webhook"
    label = "Webhook"

    def is_enabled(self) -> bool:
        return bool(self.prefs.webhook_url)

    def send(self, message: Message) -> str:
        body = json.dumps(payload(message)).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "photosite-webhook",
            SIGNATURE_HEADER: sign(body, self.prefs.webhook_secret),
        }
        status = post(self.prefs.webhook_url, body, headers)
        if 300 <= status < 400:
            raise DeliveryError(f"HTTP {status}: redirects are not followed", permanent=True)
        if status >= 400:
            # A client error will not mend itself, except these two.
            raise DeliveryError(f"HTTP {status}", permanent=status < 500 and status not in (408, 429))
        return f"HTTP {status}"
