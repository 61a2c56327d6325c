"""URLs: the gallery pages, the JSON API, the admin and django-rq's dashboard."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from jobs import admin_views as queue_admin
from jobs import api as jobs_api
from jobs import views as ops
from recognition import api

router = DefaultRouter()
router.register("photos", api.PhotoViewSet, basename="api-photo")
router.register("people", api.PersonViewSet, basename="api-person")
router.register("alerts", api.AlertViewSet, basename="api-alert")
router.register("groups", api.GroupViewSet, basename="api-group")

urlpatterns = [
    path("admin/queues/", include(queue_admin.urls)),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("health/", ops.health, name="health"),
    path("metrics/", ops.metrics, name="metrics"),
    path("api/queues/", jobs_api.queues, name="api-queues"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include(router.urls)),
    path("", include("recognition.urls")),
]
