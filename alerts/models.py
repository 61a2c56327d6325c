"""Who hears about an alert, how, and what became of each message.

`recognition.Alert` is the domain event (a known person found in a photo). This app decides what is
sent for it: `AlertSettings` are a user's channels and rules, a `Summary` gathers many alerts into one
message (a gallery change, a cooldown follow-up, quiet hours), and a `Delivery` is one message on one
channel with its status.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from alerts.validators import validate_mqtt_url, validate_topic_prefix, validate_webhook_url


class AlertSettings(models.Model):
    """A user's alert channels and rules (moved here from recognition.UserSettings)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_settings")
    email = models.BooleanField("Email me alerts", default=True)
    # Alerts go to email_address only once a link sent to it was opened (email_confirmed equals it).
    email_address = models.EmailField(blank=True)
    email_confirmed = models.EmailField(blank=True, editable=False)
    webhook_url = models.URLField("Webhook URL", max_length=500, blank=True, validators=[validate_webhook_url])
    webhook_secret = models.CharField(max_length=64, blank=True)
    mqtt_url = models.CharField("MQTT broker", max_length=500, blank=True, validators=[validate_mqtt_url])
    mqtt_prefix = models.CharField("MQTT topic prefix", max_length=200, blank=True, validators=[validate_topic_prefix])
    mqtt_discovery = models.BooleanField("Home Assistant discovery", default=False)
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    alert_unknown = models.BooleanField("Alert me when someone new appears", default=False)

    class Meta:
        verbose_name_plural = "alert settings"

    def __str__(self) -> str:
        return f"alert settings of {self.user}"

    @classmethod
    def for_user(cls, user) -> AlertSettings:
        found, _ = cls.objects.get_or_create(
            user=user, defaults={"webhook_secret": uuid.uuid4().hex, "email_address": user.email}
        )
        return found

    @property
    def email_ready(self) -> bool:
        """Email alerts go out only to a confirmed address (a typed-in one could be anyone's)."""
        return bool(self.email and self.email_address and self.email_address == self.email_confirmed)

    @property
    def topic_prefix(self) -> str:
        return (self.mqtt_prefix or f"photosite/{self.user.get_username()}").strip("/")

    def quiet_until(self, now: datetime | None = None) -> datetime | None:
        """The end of the quiet hours `now` falls in (site time zone), or None outside them."""
        if self.quiet_start is None or self.quiet_end is None or self.quiet_start == self.quiet_end:
            return None
        now = timezone.localtime(now or timezone.now())
        start, end, clock = self.quiet_start, self.quiet_end, now.time()
        inside = start <= clock < end if start < end else (clock >= start or clock < end)
        if not inside:
            return None
        until = now.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        return until if until > now else until + timedelta(days=1)

    def set_quiet_hours(self, start: time | None, end: time | None) -> None:
        self.quiet_start, self.quiet_end = start, end


class SummaryKind(models.TextChoices):
    EARLIER = "earlier", "found in earlier photos"  # one per gallery change (or bulk run) and person
    FOLLOWUP = "followup", "follow-up"  # what a cooldown held back, per person and channel
    QUIET = "quiet", "after quiet hours"  # what quiet hours held back, per channel
    UNKNOWN = "unknown", "someone new"  # faces that match nobody, in one photo


class Summary(models.Model):
    """One message about many alerts. Gathering summaries (follow-up, quiet) stay open until due_at."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_summaries")
    kind = models.CharField(max_length=20, choices=SummaryKind.choices)
    person = models.ForeignKey(
        "recognition.Person", null=True, blank=True, on_delete=models.CASCADE, related_name="alert_summaries"
    )
    photo = models.ForeignKey(  # someone new: the photo they are in
        "recognition.Photo", null=True, blank=True, on_delete=models.CASCADE, related_name="alert_summaries"
    )
    channel = models.CharField(max_length=20, blank=True)  # gathering summaries are per channel
    alerts = models.ManyToManyField("recognition.Alert", blank=True, related_name="summaries")
    count = models.PositiveIntegerField(default=0)
    seen = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    due_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)  # no more alerts join it

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "summaries"

    def __str__(self) -> str:
        return self.headline()

    is_summary = True  # templates tell summaries from alerts in one list

    def get_absolute_url(self) -> str:
        return reverse("alert-summary", args=[self.pk])

    def people_counts(self) -> list[tuple[str, int]]:
        """(name, photos) of each person in the summary, most photos first."""
        rows = self.alerts.values("person__name").annotate(n=Count("id")).order_by("-n", "person__name")
        return [(row["person__name"], row["n"]) for row in rows]

    def headline(self) -> str:
        photos = "photo" if self.count == 1 else "photos"
        name = self.person.name if self.person_id else ""
        if self.kind == SummaryKind.EARLIER:
            return f"{name} was found in {self.count:,} earlier {photos}"
        if self.kind == SummaryKind.FOLLOWUP:
            return f"{name} was found in {self.count:,} more {photos}"
        if self.kind == SummaryKind.UNKNOWN:
            return f"Someone new is in {self.photo}" if self.photo_id else "Someone new"
        people = ", ".join(f"{who} in {n}" for who, n in self.people_counts())
        return f"While you were away: {self.count:,} {photos}" + (f" ({people})" if people else "")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"


class Delivery(models.Model):
    """One message on one channel: an alert (news), a summary, or a test (neither)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_deliveries")
    channel = models.CharField(max_length=20, db_index=True)
    alert = models.ForeignKey(
        "recognition.Alert", null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    summary = models.ForeignKey(Summary, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    # Whom a news message was about: the cooldown of a person and channel starts at their last message.
    person = models.ForeignKey("recognition.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    due_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["alert", "channel"], name="one_delivery_per_alert_channel"),
            models.UniqueConstraint(fields=["summary", "channel"], name="one_delivery_per_summary_channel"),
        ]
        indexes = [models.Index(fields=["owner", "person", "channel", "created_at"])]

    def __str__(self) -> str:
        return f"{self.channel} delivery {self.pk} ({self.status})"

    @property
    def is_test(self) -> bool:
        return self.alert_id is None and self.summary_id is None

    @classmethod
    def counts(cls) -> dict[tuple[str, str], int]:
        """Deliveries per (channel, status), from the database: for the metrics endpoint."""
        rows = cls.objects.values_list("channel", "status").annotate(n=Count("id")).order_by()
        return {(channel, status): n for channel, status, n in rows}
