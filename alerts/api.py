"""The alerts API: alert settings, and the alerts list with summaries and each delivery's status."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.models import AlertSettings, Delivery, Summary, SummaryKind
from alerts.timeline import timeline
from recognition.api import PersonBriefSerializer
from recognition.models import Alert


class QuietHoursField(serializers.Field):
    """{"start": "22:00", "end": "07:00"} or null."""

    default_error_messages = {"invalid": 'Give {{"start": "HH:MM", "end": "HH:MM"}} (two different times) or null.'}

    def __init__(self, **kwargs) -> None:
        super().__init__(source="*", allow_null=True, **kwargs)

    def to_representation(self, prefs: AlertSettings) -> dict | None:
        if prefs.quiet_start is None or prefs.quiet_end is None:
            return None
        return {"start": prefs.quiet_start.strftime("%H:%M"), "end": prefs.quiet_end.strftime("%H:%M")}

    def validate_empty_values(self, data):
        if data is None:
            return True, {"quiet_start": None, "quiet_end": None}
        return super().validate_empty_values(data)

    def to_internal_value(self, data) -> dict:
        time_field = serializers.TimeField(input_formats=["%H:%M", "%H:%M:%S"])
        if not isinstance(data, dict) or set(data) != {"start", "end"}:
            self.fail("invalid")
        try:
            start, end = time_field.to_internal_value(data["start"]), time_field.to_internal_value(data["end"])
        except serializers.ValidationError:
            self.fail("invalid")
        if start == end:
            self.fail("invalid")
        return {"quiet_start": start, "quiet_end": end}


class AlertSettingsSerializer(serializers.ModelSerializer):
    quiet_hours = QuietHoursField(required=False)

    class Meta:
        model = AlertSettings
        fields = [
            "email", "webhook_url", "webhook_secret", "mqtt_url", "mqtt_prefix", "mqtt_discovery", "quiet_hours",
            "alert_unknown",
        ]  # fmt: skip
        read_only_fields = ["webhook_secret"]


class AlertSettingsView(APIView):
    def get(self, request: Request) -> Response:
        return Response(AlertSettingsSerializer(AlertSettings.for_user(request.user)).data)

    def patch(self, request: Request) -> Response:
        serializer = AlertSettingsSerializer(AlertSettings.for_user(request.user), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = ["channel", "status", "attempts", "error"]


class AlertSerializer(serializers.ModelSerializer):
    kind = serializers.SerializerMethodField()
    person = PersonBriefSerializer(read_only=True)
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta:
        model = Alert
        fields = ["kind", "id", "photo", "face", "person", "distance", "seen", "created_at", "earlier", "deliveries"]

    def get_kind(self, alert: Alert) -> str:
        return "alert"


class SummarySerializer(serializers.ModelSerializer):
    kind = serializers.SerializerMethodField()
    summary_kind = serializers.CharField(source="kind")
    person = PersonBriefSerializer(read_only=True)
    text = serializers.CharField(source="headline")
    earlier = serializers.SerializerMethodField()
    deliveries = DeliverySerializer(many=True, read_only=True)
    alerts = serializers.SerializerMethodField()

    class Meta:
        model = Summary
        fields = [
            "kind", "id", "summary_kind", "person", "photo", "count", "text", "seen", "created_at", "earlier",
            "alerts", "deliveries",
        ]  # fmt: skip

    def get_kind(self, summary: Summary) -> str:
        return "summary"

    def get_earlier(self, summary: Summary) -> bool:
        return summary.kind == SummaryKind.EARLIER

    def get_alerts(self, summary: Summary) -> str:
        """Where to list the summary's alerts."""
        request = self.context.get("request")
        path = f"/api/alerts/?summary={summary.pk}"
        return request.build_absolute_uri(path) if request else path


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alerts and summaries, newest first; ?summary=<id> lists the alerts of one summary."""

    serializer_class = AlertSerializer

    def get_queryset(self):
        alerts = Alert.objects.filter(owner=self.request.user).select_related("person").prefetch_related("deliveries")
        if self.request.query_params.get("unseen"):
            alerts = alerts.filter(seen=False)
        return alerts

    def list(self, request: Request, *args, **kwargs) -> Response:
        if request.query_params.get("summary"):
            summary = get_object_or_404(Summary, pk=_int_or_404(request.query_params["summary"]), owner=request.user)
            page = self.paginate_queryset(self.get_queryset().filter(summaries=summary))
            return self.get_paginated_response(AlertSerializer(page, many=True).data)
        page = self.paginate_queryset(timeline(request.user, unseen=bool(request.query_params.get("unseen"))))
        items = [
            (SummarySerializer if isinstance(item, Summary) else AlertSerializer)(
                item, context={"request": request}
            ).data
            for item in page
        ]
        return self.get_paginated_response(items)

    @action(detail=True, methods=["post"])
    def seen(self, request: Request, pk: str, **kwargs) -> Response:
        alert = self.get_object()
        Alert.objects.filter(pk=alert.pk).update(seen=True)
        return Response({"id": alert.pk, "seen": True})


def _int_or_404(value: str) -> int:
    from django.http import Http404

    if not value.isdecimal() or len(value) > 18:
        raise Http404("No such summary")
    return int(value)
