"""Prometheus metrics (GET /metrics/): django-rq's collector, and photosite's own figures.

Ours: photos by status (the database), job wait and run histograms per queue and faces detected (kept in
Redis by the jobs, jobs/stats.py, so they add up across workers and hosts), and alert deliveries.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from django_rq.contrib.prometheus import RQCollector
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from jobs import stats
from jobs.monitoring import connection
from recognition.models import Alert, DeliveryStatus, Photo, PhotoStatus


def _alert_delivery_counts() -> dict[tuple[str, str], int]:
    """Alert deliveries by (channel, status): the one place that knows where deliveries are recorded."""
    counts = {("email", "sent"): Alert.objects.filter(emailed_at__isnull=False).count()}
    by_status = Alert.objects.exclude(webhook_status="").values("webhook_status").annotate(n=Count("pk"))
    for status in (DeliveryStatus.SENT, DeliveryStatus.PENDING, DeliveryStatus.FAILED):
        counts["webhook", status.value] = 0
    for row in by_status:
        counts["webhook", row["webhook_status"]] = row["n"]
    return counts


class PhotositeCollector:
    def collect(self) -> Iterator[Metric]:
        photos = GaugeMetricFamily("photosite_photos", "Photos by status", labels=["status"])
        counts = dict(Photo.objects.values_list("status").annotate(n=Count("pk")))
        for status in PhotoStatus:
            photos.add_metric([status.value], counts.get(status.value, 0))
        yield photos

        redis = connection()
        for kind, what in (("wait", "from enqueue to start"), ("run", "from start to end")):
            family = HistogramMetricFamily(
                f"photosite_job_{kind}_seconds", f"Seconds jobs took {what}", labels=["queue"]
            )
            for queue, histogram in stats.histograms(redis, kind).items():
                family.add_metric([queue], histogram.buckets, histogram.sum)
            yield family

        faces = CounterMetricFamily("photosite_faces_detected", "Faces found by photo jobs")
        faces.add_metric([], stats.faces_detected(redis))
        yield faces

        deliveries = CounterMetricFamily(
            "photosite_alert_deliveries", "Alert deliveries by channel and status", labels=["channel", "status"]
        )
        for (channel, status), count in sorted(_alert_delivery_counts().items()):
            deliveries.add_metric([channel, status], count)
        yield deliveries


_registry: CollectorRegistry | None = None


def registry() -> CollectorRegistry:
    global _registry
    if _registry is None:
        _registry = CollectorRegistry(auto_describe=False)
        _registry.register(RQCollector())
        _registry.register(PhotositeCollector())
    return _registry
