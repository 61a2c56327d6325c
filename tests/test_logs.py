"""LOG_FORMAT=json: one JSON object per line, with photo_id, job_id, queue and duration_ms on job lines."""

import json
import logging

import pytest

from jobs.enqueue import UPLOADS, enqueue_photos, photo_job_id
from photosite.logs import JsonFormatter, PlainFormatter
from tests.conftest import stored_photo


def test_json_lines_carry_the_job_fields():
    record = logging.makeLogRecord(
        {"name": "jobs.worker", "levelname": "INFO", "msg": "job %s finished", "args": ("photo-7",),
         "photo_id": 7, "job_id": "photo-7", "queue": "high", "duration_ms": 812}
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job photo-7 finished" and line["level"] == "INFO" and line["logger"] == "jobs.worker"
    assert (line["photo_id"], line["job_id"], line["queue"], line["duration_ms"]) == (7, "photo-7", "high", 812)
    assert "T" in line["time"]
    plain = PlainFormatter("%(levelname)s %(message)s").format(record)
    assert plain == "INFO job photo-7 finished [photo_id=7 job_id=photo-7 queue=high duration_ms=812]"


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_logs_json_lines(user, start_worker, capfd):
    photo = stored_photo(user, "nofaces/cat.png")
    sum(enqueue_photos([photo.pk], queue=UPLOADS))
    assert start_worker("--burst", LOG_FORMAT="json").wait(timeout=120) == 0
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    [done] = [line for line in parsed if line["message"].startswith(f"job {photo_job_id(photo.pk)} finished in")]
    assert done["photo_id"] == photo.pk and done["job_id"] == photo_job_id(photo.pk) and done["queue"] == UPLOADS
    assert isinstance(done["duration_ms"], int) and done["duration_ms"] >= 0
    assert any("Job OK" in line["message"] for line in parsed), "RQ's own lines are JSON too"
