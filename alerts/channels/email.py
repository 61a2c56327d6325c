"""Email, only ever to an address the user confirmed by opening a link sent to it."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import send_mail

from alerts.channels.base import Channel, DeliveryError, Message


class Email(Channel):
    name = "email"
    label = "Email"

    def is_enabled(self) -> bool:
        return self.prefs.email_ready

    def send(self, message: Message) -> str:
        if not self.prefs.email_ready:
            raise DeliveryError("the email address is not confirmed", permanent=True)
        try:
            send_mail(
                subject=message.subject,
                message=f"{message.text}\n\n{message.url}\n",
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[self.prefs.email_address],
            )
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"the mail server did not take it ({exc.__class__.__name__})") from exc
        return ""
