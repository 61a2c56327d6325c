"""The data migration: today's UserSettings and the alerts' emailed_at / webhook_* become AlertSettings
and Delivery rows, and back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("recognition", "0005_alert_rules"), ("alerts", "0001_initial")]
AFTER = [("recognition", "0006_remove_alert_delivery_columns"), ("alerts", "0002_move_delivery_data")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_old_settings_and_delivery_columns_move_to_the_alerts_app():
    apps = migrate(BEFORE)
    try:
        User = apps.get_model("auth", "User")
        user = User.objects.create(username="old", email="old@example.org")
        apps.get_model("recognition", "UserSettings").objects.create(
            user=user, email_on_match=False, webhook_url="https://hooks.example/x", webhook_secret="abc"
        )
        person = apps.get_model("recognition", "Person").objects.create(owner=user, name="Obama")
        Photo, Alert = apps.get_model("recognition", "Photo"), apps.get_model("recognition", "Alert")
        emailed_at = timezone.now()
        for n, fields in enumerate([
            {"emailed_at": emailed_at, "webhook_status": "sent", "webhook_attempts": 2, "webhook_error": "HTTP 200"},
            {"webhook_status": "failed", "webhook_attempts": 4, "webhook_error": "timed out"},
            {},
        ]):  # fmt: skip
            photo = Photo.objects.create(owner=user, image=f"photos/x/{n}.jpg")
            Alert.objects.create(owner=user, photo=photo, person=person, **fields)

        apps = migrate(AFTER)
        prefs = apps.get_model("alerts", "AlertSettings").objects.get(user_id=user.pk)
        assert (prefs.email, prefs.webhook_url, prefs.webhook_secret) == (False, "https://hooks.example/x", "abc")
        assert (prefs.email_address, prefs.email_confirmed) == ("old@example.org", ""), "addresses need confirming"
        rows = apps.get_model("alerts", "Delivery").objects.order_by("alert_id", "channel")
        assert [(d.channel, d.status, d.attempts, d.error) for d in rows] == [
            ("email", "sent", 1, ""), ("webhook", "sent", 2, ""), ("webhook", "failed", 4, "timed out"),
        ]  # fmt: skip
        assert rows[0].sent_at == emailed_at

        apps = migrate(BEFORE)  # and back
        old = apps.get_model("recognition", "Alert").objects.order_by("pk")
        assert [(a.emailed_at is not None, a.webhook_status, a.webhook_attempts) for a in old] == [
            (True, "sent", 2), (False, "failed", 4), (False, "", 0),
        ]  # fmt: skip
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
