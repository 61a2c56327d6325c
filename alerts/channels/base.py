"""The one small interface every channel implements, and the message it is given."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from alerts.validators import address_refusal, any_site_service

if TYPE_CHECKING:
    from alerts.models import AlertSettings, Summary
    from recognition.models import Alert


class DeliveryError(Exception):
    """A message did not go out. `reason` is shown to the user: a kind of failure, never more than their
    own endpoint said. A permanent error is not retried."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def vetted_address(host: str, port: int, allow_local: bool) -> str:
    """The first address of host, once every address it resolves to has passed the rules (alerts.validators).

    Channels connect to this very address: no second lookup a DNS trick could change."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DeliveryError("the host name could not be resolved") from exc
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        refusal = address_refusal(address, allow_local)
        if refusal:
            raise DeliveryError(f"refused: the host resolves to a {refusal} address", permanent=True)
    if any_site_service(addresses, port):
        raise DeliveryError("refused: that is this site's own Redis or database", permanent=True)
    return addresses[0]


@dataclass
class Message:
    """What to say, in words and as data; each channel picks what it needs."""

    kind: str  # found, found_earlier, found_more, quiet_summary, someone_new, test
    subject: str
    text: str
    url: str  # the page to look at: the photo, or the summary
    time: datetime
    person_id: int | None = None
    person_name: str = ""
    count: int = 1
    distance: float | None = None
    earlier: bool = False
    photo_url: str = ""
    alert: Alert | None = None
    summary: Summary | None = None
    # A message about several people (after quiet hours): (id, name, photos) of each.
    people: list[tuple[int, str, int]] = field(default_factory=list)


class Channel:
    """One way of telling a user. Subclasses set `name` and `label` and implement two methods."""

    name: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, prefs: AlertSettings) -> None:
        self.prefs = prefs

    def is_enabled(self) -> bool:
        """Whether the user has set this channel up (and turned it on)."""
        raise NotImplementedError

    def send(self, message: Message) -> str:
        """Send the message; return a short note for the delivery, or raise DeliveryError."""
        raise NotImplementedError
