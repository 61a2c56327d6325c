"""Log lines: plain text, or one JSON object per line with LOG_FORMAT=json.

Lines logged while a job runs carry `job_id`, `queue` and `photo_id`; the line a worker logs when a job
ends also carries `duration_ms`.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
from datetime import UTC, datetime

JOB_FIELDS = ("photo_id", "job_id", "queue", "duration_ms")


class JobContext(logging.Filter):
    """Adds the running job's id, queue and photo to each record logged while it runs (in a work horse)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            from rq import get_current_job

            job = get_current_job()
            if job is not None:
                record.job_id = job.id
                record.queue = job.origin
                if getattr(record, "photo_id", None) is None:
                    record.photo_id = job.meta.get("photo_id")
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name in JOB_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class PlainFormatter(logging.Formatter):
    """The plain format, with the job's fields after the message when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [f"{name}={getattr(record, name)}" for name in JOB_FIELDS if getattr(record, name, None) is not None]
        return f"{text} [{' '.join(fields)}]" if fields else text


def formatter_class() -> str:
    json_lines = os.environ.get("LOG_FORMAT", "") == "json"
    return "photosite.logs.JsonFormatter" if json_lines else "photosite.logs.PlainFormatter"


def configure(config: dict) -> None:
    """Django's LOGGING_CONFIG: Python's warnings go through logging too, so a JSON log stays all JSON."""
    logging.captureWarnings(True)
    logging.config.dictConfig(config)


def logging_config(level: str) -> dict:
    """Django's LOGGING setting."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"job": {"()": "photosite.logs.JobContext"}},
        "formatters": {"main": {"()": formatter_class(), "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "main", "filters": ["job"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}},
    }


def gunicorn_logconfig() -> dict:
    """gunicorn's own lines (errors and the access log) in the same format."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": {"()": formatter_class(), "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {  # gunicorn's own handler names, so its defaults (the root logger) still resolve
            "error_console": {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"},
            "console": {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stdout"},
        },
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {
            "gunicorn.error": {"handlers": ["error_console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }
