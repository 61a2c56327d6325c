"""GET /api/queues/: the figures of the Queues admin page as JSON, for staff."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from redis.exceptions import RedisError
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import monitoring
from photosite.openapi import error


class QueueSerializer(serializers.Serializer):
    name = serializers.CharField()
    paused = serializers.BooleanField()
    queued = serializers.IntegerField()
    started = serializers.IntegerField()
    deferred = serializers.IntegerField()
    scheduled = serializers.IntegerField()
    finished = serializers.IntegerField()
    failed = serializers.IntegerField()
    oldest_queued_seconds = serializers.FloatField(allow_null=True)


class PhotoFiguresSerializer(serializers.Serializer):
    done_last_5_min = serializers.IntegerField()
    done_last_60_min = serializers.IntegerField()
    failed_last_5_min = serializers.IntegerField()
    failed_last_60_min = serializers.IntegerField()
    backlog = serializers.IntegerField()
    per_minute = serializers.FloatField()
    eta_seconds = serializers.FloatField(allow_null=True)
    eta = serializers.DateTimeField(allow_null=True)


class WorkerSerializer(serializers.Serializer):
    name = serializers.CharField()
    host = serializers.CharField()
    pid = serializers.IntegerField(allow_null=True)
    state = serializers.CharField()
    queues = serializers.ListField(child=serializers.CharField())
    current_job = serializers.CharField(allow_null=True)
    current_photo = serializers.IntegerField(allow_null=True)
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    stale = serializers.BooleanField()


class FailedJobSerializer(serializers.Serializer):
    id = serializers.CharField()
    queue = serializers.CharField()
    description = serializers.CharField()
    photo_id = serializers.IntegerField(allow_null=True)
    photo_exists = serializers.BooleanField()
    owner = serializers.CharField()
    exception_type = serializers.CharField()
    exception_message = serializers.CharField()
    failed_at = serializers.DateTimeField(allow_null=True)
    attempts = serializers.IntegerField()


class MediaCheckSerializer(serializers.Serializer):
    """The figures of the last `manage.py media_check`."""

    checked_at = serializers.DateTimeField()
    referenced = serializers.IntegerField()
    files = serializers.IntegerField()
    bytes = serializers.IntegerField()
    missing_count = serializers.IntegerField()
    orphan_count = serializers.IntegerField()
    orphan_bytes = serializers.IntegerField()
    too_young = serializers.IntegerField()
    deleted = serializers.IntegerField()


class SnapshotSerializer(serializers.Serializer):
    queues = QueueSerializer(many=True)
    photos = PhotoFiguresSerializer()
    workers = WorkerSerializer(many=True)
    failed_jobs = FailedJobSerializer(many=True)
    media_check = MediaCheckSerializer(allow_null=True, help_text="null until media_check has run")


@extend_schema(responses={200: SnapshotSerializer, 503: error("Redis is unavailable")})
@api_view(["GET"])
@permission_classes([IsAdminUser])
def queues(request: Request) -> Response:
    try:
        return Response(monitoring.snapshot())
    except RedisError as exc:
        return Response({"error": f"Redis is unavailable: {exc}"}, status=503)
