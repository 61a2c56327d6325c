"""The alert channels. Adding one: a Channel subclass in its own module, listed here (README)."""

from __future__ import annotations

from alerts.channels.base import Channel, DeliveryError, Message
from alerts.channels.email import Email
from alerts.channels.mqtt import Mqtt
from alerts.channels.webhook import Webhook

CHANNELS: dict[str, type[Channel]] = {channel.name: channel for channel in (Email, Webhook, Mqtt)}

__all__ = ["CHANNELS", "Channel", "DeliveryError", "Message", "enabled_channels"]


def enabled_channels(prefs) -> list[Channel]:
    """The channels a user has set up, in a fixed order."""
    return [channel for channel in (cls(prefs) for cls in CHANNELS.values()) if channel.is_enabled()]
