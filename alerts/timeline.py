"""A user's alerts page as one list, newest first: news alerts and summaries (whose alerts, found in
earlier photos, are listed inside them rather than one by one)."""

from __future__ import annotations

from django.db.models import CharField, Value

from alerts.models import Summary
from recognition.models import Alert


class Timeline:
    """A lazy sequence of Alert and Summary objects for Paginator: one UNION query per page."""

    def __init__(self, user, unseen: bool = False) -> None:
        alerts = Alert.objects.filter(owner=user, earlier=False)
        summaries = Summary.objects.filter(owner=user)
        if unseen:
            alerts, summaries = alerts.filter(seen=False), summaries.filter(seen=False)
        self.alerts, self.summaries = alerts, summaries
        kind = CharField()
        self.rows = (
            alerts.order_by()
            .annotate(item_kind=Value("alert", output_field=kind))
            .values_list("id", "created_at", "item_kind")
            .union(
                summaries.order_by()
                .annotate(item_kind=Value("summary", output_field=kind))
                .values_list("id", "created_at", "item_kind"),
                all=True,
            )
            .order_by("-created_at", "-id")
        )

    def count(self) -> int:
        return self.alerts.count() + self.summaries.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list:
        rows = list(self.rows[index])
        alert_ids = [pk for pk, _, kind in rows if kind == "alert"]
        summary_ids = [pk for pk, _, kind in rows if kind == "summary"]
        alerts = Alert.objects.select_related("person", "photo").prefetch_related("deliveries").in_bulk(alert_ids)
        summaries = (
            Summary.objects.select_related("person", "photo").prefetch_related("deliveries").in_bulk(summary_ids)
        )
        return [alerts[pk] if kind == "alert" else summaries[pk] for pk, _, kind in rows]


def timeline(user, unseen: bool = False) -> Timeline:
    return Timeline(user, unseen)
