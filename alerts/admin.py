"""The alerts admin: settings per user, summaries, every delivery with its status and error.

Alerts themselves are recognition's; their admin gets the deliveries inline here, so recognition
does not depend on this app."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from alerts.dispatch import schedule
from alerts.models import AlertSettings, Delivery, DeliveryStatus, Summary
from recognition.admin import AlertAdmin as RecognitionAlertAdmin
from recognition.admin import _link
from recognition.models import Alert

DELIVERY_FIELDS = ["channel", "status", "attempts", "error", "due_at", "sent_at"]


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


admin.site.unregister(Alert)


@admin.register(Alert)
class AlertAdmin(RecognitionAlertAdmin):
    inlines = [DeliveryInline]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "channel", "status", "attempts", "error", "about", "due_at", "sent_at"]
    list_filter = ["status", "channel", "created_at"]
    search_fields = ["owner__username", "error"]
    list_select_related = ["owner", "alert__person", "alert__photo", "summary__person"]
    readonly_fields = ["owner", "channel", "alert", "summary", "person", *DELIVERY_FIELDS[1:], "created_at"]
    date_hierarchy = "created_at"
    actions = ["deliver_again"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="about")
    def about(self, delivery: Delivery) -> str:
        if delivery.alert_id:
            return _link(delivery.alert)
        return _link(delivery.summary) if delivery.summary_id else "test"

    @admin.action(description="Deliver selected messages again (not the ones sent)")
    def deliver_again(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        again = list(queryset.exclude(status=DeliveryStatus.SENT))
        Delivery.objects.filter(pk__in=[d.pk for d in again]).update(status=DeliveryStatus.PENDING, error="")
        for delivery in again:
            schedule(delivery)
        self.message_user(request, f"Queued {len(again)} deliveries again.", messages.SUCCESS)


@admin.register(Summary)
class SummaryAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "kind", "person", "channel", "count", "seen", "created_at", "due_at"]
    list_filter = ["kind", "seen", "created_at"]
    search_fields = ["owner__username", "person__name"]
    list_select_related = ["owner", "person", "photo"]
    readonly_fields = ["owner", "kind", "person", "photo", "channel", "count", "created_at", "due_at", "closed_at"]
    exclude = ["alerts"]
    inlines = [DeliveryInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AlertSettings)
class AlertSettingsAdmin(admin.ModelAdmin):
    list_display = [
        "user",
        "email",
        "email_address",
        "email_confirmed",
        "webhook_url",
        "alert_unknown",
    ]  # no broker passwords
    list_filter = ["email", "mqtt_discovery", "alert_unknown"]
    search_fields = ["user__username", "email_address", "webhook_url", "mqtt_url"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = ["webhook_secret", "email_confirmed"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
