"""GET /metrics/: Prometheus text for staff or a bearer token; histograms the jobs recorded with a real worker."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from recognition.models import Photo
from tests.conftest import photos_finished, upload_of, wait_for
from tests.test_faults import portraits

pytestmark = pytest.mark.django_db(transaction=True)


def parse(response) -> dict:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def sample(families: dict, name: str, suffix: str = "", **labels) -> float:
    found = [s.value for s in families[name].samples if s.name == name + suffix and labels.items() <= s.labels.items()]
    assert len(found) == 1, (name, suffix, labels, families[name].samples)
    return found[0]


def test_anonymous_users_and_wrong_tokens_get_403(client, api, redis_server, settings):
    settings.METRICS_TOKEN = "s3cret-token-for-prometheus"
    assert client.get("/metrics/").status_code == 403
    assert api.get("/metrics/").status_code == 403, "a user who is not staff"
    assert client.get("/metrics/", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics/", HTTP_AUTHORIZATION="Bearer s3cret-token-for-prometheus").status_code == 200
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics/", HTTP_AUTHORIZATION="Bearer ").status_code == 403, "no token set: staff only"


def test_ten_photos_through_a_real_worker(api, staff_client, redis_server, start_worker):
    ids = [api.post("/api/photos/", {"image": upload_of(name)}).json()["id"] for name in portraits(10)]
    assert start_worker("--burst").wait(timeout=300) == 0
    wait_for(lambda: photos_finished(ids), timeout=10)
    families = parse(staff_client.get("/metrics/"))
    for kind in ("wait", "run"):
        name = f"photosite_job_{kind}_seconds"
        assert families[name].type == "histogram"
        assert sample(families, name, "_count", queue="high") == 10
        assert sample(families, name, "_bucket", queue="high", le="+Inf") == 10
        assert sample(families, name, "_sum", queue="high") > 0
        assert sample(families, name, "_count", queue="low") == 0
    assert sample(families, "photosite_photos", status="done") == 10 == Photo.objects.filter(status="done").count()
    assert sample(families, "photosite_photos", status="failed") == 0
    assert sample(families, "photosite_faces_detected", "_total") == 10
    assert sample(families, "photosite_alert_deliveries", "_total", channel="webhook", status="sent") == 0
    assert sample(families, "rq_jobs", queue="high", status="queued") == 0, "django-rq's own collector"
