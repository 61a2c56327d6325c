"""The delivery job's bookkeeping: sent once, a channel gone, and lost jobs queued again by reconcile."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.delivery import requeue_lost, send_delivery
from alerts.models import AlertSettings, Delivery
from jobs.enqueue import ALERTS, get_queue
from jobs.reconcile import reconcile

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_channel_turned_off_since_fails_the_delivery_for_good(user):
    AlertSettings.for_user(user)
    delivery = Delivery.objects.create(owner=user, channel="webhook")
    assert send_delivery(delivery.pk) == {"delivery": delivery.pk, "failed": "Webhook is not set up any more"}
    assert send_delivery(123456) == {"delivery": 123456, "skipped": "deleted"}


def test_reconcile_queues_lost_deliveries_again(user, redis_server, settings):
    settings.ALERT_RETRY_INTERVALS = [10, 60]
    long_ago = timezone.now() - timedelta(minutes=5)
    lost = Delivery.objects.create(owner=user, channel="webhook", due_at=long_ago)
    worn_out = Delivery.objects.create(owner=user, channel="mqtt", due_at=long_ago, attempts=3, error="timed out")
    Delivery.objects.create(owner=user, channel="email")  # just made: its job may be on the way
    assert reconcile().deliveries == [lost.pk]
    assert get_queue(ALERTS).job_ids == [f"delivery-{lost.pk}"]
    worn_out.refresh_from_db()
    assert (worn_out.status, worn_out.error) == ("failed", "timed out")
    assert requeue_lost() == [], "a delivery whose job is queued is not lost"
