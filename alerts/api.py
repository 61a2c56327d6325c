"""The alerts API: alert settings, and the alerts list with summaries and each delivery's status."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.models import AlertSettings, Delivery, Summary, SummaryKind
from alerts.timeline import timeline
from alerts.validators import validate_mqtt_url, validate_webhook_url
from recognition.api import PersonBriefSerializer, SeenSerializer
from recognition.models import Alert

QUIET_HOURS_SCHEMA = {
    "type": "object",
    "nullable": True,
    "properties": {"start": {"type": "string", "example": "22:00"}, "end": {"type": "string", "example": "07:00"}},
    "required": ["start", "end"],
    "description": "Deliveries wait until the end, then go as one summary; null: none",
}


@extend_schema_field(QUIET_HOURS_SCHEMA)
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


@extend_schema_field({"type": "string", "example": "https://hooks.example/photosite"})
class WebhookUrlField(serializers.CharField):
    """A URL or "": a plain string in the schema (no `format: uri`, which "" could not match)."""


@extend_schema_field({"type": "string", "example": "mqtt://broker.lan:1883"})
class MqttUrlField(serializers.CharField):
    pass


class AlertSettingsSerializer(serializers.ModelSerializer):
    # A plain string in the schema (a URL or ""), checked by the same rules as the form.
    webhook_url = WebhookUrlField(
        allow_blank=True,
        required=False,
        max_length=500,
        validators=[validate_webhook_url],
        help_text="http(s) URL each alert is POSTed to, or empty",
    )
    mqtt_url = MqttUrlField(
        allow_blank=True,
        required=False,
        max_length=500,
        validators=[validate_mqtt_url],
        help_text="mqtt://user:pass@host:1883 or mqtts://..., or empty",
    )
    quiet_hours = QuietHoursField(required=False)

    class Meta:
        model = AlertSettings
        fields = [
            "email", "webhook_url", "webhook_secret", "mqtt_url", "mqtt_prefix", "mqtt_discovery", "quiet_hours",
            "alert_unknown",
        ]  # fmt: skip
        read_only_fields = ["webhook_secret"]


class AlertSettingsView(APIView):
    @extend_schema(responses=AlertSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(AlertSettingsSerializer(AlertSettings.for_user(request.user)).data)

    @extend_schema(request=AlertSettingsSerializer, responses=AlertSettingsSerializer)
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

    @extend_schema_field({"type": "string", "enum": ["alert"]})
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

    @extend_schema_field({"type": "string", "enum": ["summary"]})
    def get_kind(self, summary: Summary) -> str:
        return "summary"

    def get_earlier(self, summary: Summary) -> bool:
        return summary.kind == SummaryKind.EARLIER

    def get_alerts(self, summary: Summary) -> str:
        """Where to list the summary's alerts."""
        request = self.context.get("request")
        path = f"/api/alerts/?summary={summary.pk}"
        return request.build_absolute_uri(path) if request else path


ALERT_OR_SUMMARY = PolymorphicProxySerializer(
    component_name="AlertOrSummary",
    serializers={"alert": AlertSerializer, "summary": SummarySerializer},
    resource_type_field_name="kind",
)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("unseen", bool, description="only alerts and summaries not yet seen"),
            OpenApiParameter("summary", int, description="the alerts of this summary"),
        ],
        responses=ALERT_OR_SUMMARY,
    ),
    seen=extend_schema(request=None, responses={200: SeenSerializer}),
)
class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alerts and summaries, newest first; ?summary=<id> lists the alerts of one summary."""

    serializer_class = AlertSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Alert.objects.none()
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
