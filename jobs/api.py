"""GET /api/queues/: the figures of the Queues admin page as JSON, for staff."""

from __future__ import annotations

from redis.exceptions import RedisError
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import monitoring


@api_view(["GET"])
@permission_classes([IsAdminUser])
def queues(request: Request) -> Response:
    try:
        return Response(monitoring.snapshot())
    except RedisError as exc:
        return Response({"error": f"Redis is unavailable: {exc}"}, status=503)
