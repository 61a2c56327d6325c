"""Operations endpoints: GET /health/ for load balancers, GET /metrics/ for Prometheus."""

from __future__ import annotations

from secrets import compare_digest

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder
from redis.exceptions import RedisError

from jobs import health as health_checks
from jobs import metrics as prometheus


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """No authentication and nothing secret: status, what answers, and what is wrong."""
    found = health_checks.check()
    return JsonResponse(found.as_dict(), status=found.http_status)


def may_read_metrics(request: HttpRequest) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return bool(settings.METRICS_TOKEN and scheme == "Bearer" and compare_digest(token, settings.METRICS_TOKEN))


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not may_read_metrics(request):
        return JsonResponse({"error": "Staff only, or Authorization: Bearer <METRICS_TOKEN>"}, status=403)
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encoder(prometheus.registry())
    except RedisError:
        return JsonResponse({"error": "Redis is unavailable"}, status=503)
    return HttpResponse(body, content_type=content_type)
