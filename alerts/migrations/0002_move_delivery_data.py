"""Copy recognition.UserSettings into AlertSettings, and each alert's emailed_at / webhook_* into
Delivery rows, before recognition.0005 drops them.

Email addresses come over unconfirmed: alerts are emailed only to an address confirmed by a link
sent to it, and nobody ever confirmed the old ones.
"""

from django.db import migrations

OLD_STATUS = {"pending": "pending", "sent": "sent", "failed": "failed"}


def forward(apps, schema_editor):
    UserSettings = apps.get_model("recognition", "UserSettings")
    Alert = apps.get_model("recognition", "Alert")
    AlertSettings = apps.get_model("alerts", "AlertSettings")
    Delivery = apps.get_model("alerts", "Delivery")
    for old in UserSettings.objects.select_related("user").iterator():
        AlertSettings.objects.update_or_create(
            user_id=old.user_id,
            defaults={
                "email": old.email_on_match,
                "email_address": old.user.email,
                "webhook_url": old.webhook_url,
                "webhook_secret": old.webhook_secret,
            },
        )
    rows = []
    alerts = Alert.objects.filter(emailed_at__isnull=False) | Alert.objects.exclude(webhook_status="")
    for alert in alerts.iterator():
        if alert.emailed_at is not None:
            rows.append(
                Delivery(
                    owner_id=alert.owner_id,
                    channel="email",
                    alert_id=alert.pk,
                    person_id=alert.person_id,
                    status="sent",
                    attempts=1,
                    created_at=alert.created_at,
                    due_at=alert.created_at,
                    sent_at=alert.emailed_at,
                )  # fmt: skip
            )
        if alert.webhook_status in OLD_STATUS:
            rows.append(
                Delivery(
                    owner_id=alert.owner_id,
                    channel="webhook",
                    alert_id=alert.pk,
                    person_id=alert.person_id,
                    status=OLD_STATUS[alert.webhook_status],
                    attempts=alert.webhook_attempts,
                    error=alert.webhook_error[:300] if alert.webhook_status != "sent" else "",
                    created_at=alert.created_at,
                    due_at=alert.created_at,
                )  # fmt: skip
            )
        if len(rows) >= 1000:
            Delivery.objects.bulk_create(rows, ignore_conflicts=True)
            rows = []
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)


def backward(apps, schema_editor):
    UserSettings = apps.get_model("recognition", "UserSettings")
    AlertSettings = apps.get_model("alerts", "AlertSettings")
    Alert = apps.get_model("recognition", "Alert")
    Delivery = apps.get_model("alerts", "Delivery")
    for prefs in AlertSettings.objects.iterator():
        UserSettings.objects.update_or_create(
            user_id=prefs.user_id,
            defaults={
                "email_on_match": prefs.email,
                "webhook_url": prefs.webhook_url,
                "webhook_secret": prefs.webhook_secret,
            },
        )
    for delivery in Delivery.objects.filter(alert__isnull=False).iterator():
        if delivery.channel == "email" and delivery.status == "sent":
            Alert.objects.filter(pk=delivery.alert_id).update(emailed_at=delivery.sent_at)
        elif delivery.channel == "webhook":
            Alert.objects.filter(pk=delivery.alert_id).update(
                webhook_status=delivery.status, webhook_attempts=delivery.attempts, webhook_error=delivery.error
            )
    Delivery.objects.filter(alert__isnull=False, channel__in=["email", "webhook"]).delete()


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial"), ("recognition", "0005_alert_rules")]

    operations = [migrations.RunPython(forward, backward)]
