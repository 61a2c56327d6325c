"""URLs: the gallery pages, the JSON API, the admin and django-rq's dashboard."""

from django.contrib import admin
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from jobs import admin_views as queue_admin
from jobs import api as jobs_api
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
    path("api/queues/", jobs_api.queues, name="api-queues"),
    path("api/", include(router.urls)),
    path("", include("recognition.urls")),
]
