"""Media on S3-compatible storage: PUT and GET of a 4 MB photo through django-storages and boto3, and the
pipeline's photos/s with S3 media next to local disk (same photos, same run).

The S3 endpoint is moto's standalone server on this machine (no S3-compatible server can be installed
here): the figures show our code's and boto3's cost per request over HTTP, not a real network's.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks import services
from benchmarks.servers import Site
from benchmarks.services import free_port, percentile
from benchmarks.workset import WorkPhoto

ROUNDS = 20
PHOTO_BYTES = 4 * 1024 * 1024


class MotoServer:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.bucket = f"bench-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> MotoServer:
        command = [*services.MANAGE[:1], "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = services.start(command, dict(os.environ), self.log)
        services.wait_for(self._answers, 60, "moto's S3 server", interval=0.1)
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def __exit__(self, *exc) -> None:
        services.stop(self.process)

    def _answers(self) -> bool:
        try:
            self.client().list_buckets()
            return True
        except Exception:
            return False

    @property
    def env(self) -> dict[str, str]:
        return {
            "MEDIA_STORAGE": "s3",
            "S3_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
            "S3_BUCKET": self.bucket,
            "S3_ACCESS_KEY_ID": "bench",
            "S3_SECRET_ACCESS_KEY": "bench-secret",
            "S3_REGION": "us-east-1",
            "S3_PREFIX": "bench",
        }

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", aws_access_key_id="bench",
                            aws_secret_access_key="bench-secret", region_name="us-east-1")  # fmt: skip


def four_mb_photo(folder: Path, photos: list[WorkPhoto]) -> bytes:
    """The largest work-set photo, padded with a JPEG comment-free tail to 4 MB (bytes are bytes to S3)."""
    data = max((p.path(folder).read_bytes() for p in photos), key=len)
    return data + b"\0" * max(0, PHOTO_BYTES - len(data))


def put_get(server: MotoServer, data: bytes) -> dict:
    """storage.save (PUT) and storage.open_for_reading (one streamed GET) as the upload and the job use them."""
    from django.conf import settings
    from django.core.files.storage import storages
    from django.test.utils import override_settings

    from photosite.settings import s3_options
    from recognition import storage

    backend = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": s3_options(server.env)}
    with override_settings(STORAGES={**settings.STORAGES, "default": backend}):
        assert storage.is_object_storage(storages["default"])
        puts, gets, names = [], [], []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            names.append(storage.save(f"photos/bench/{uuid.uuid4().hex}.jpg", data))
            puts.append((time.perf_counter() - started) * 1000)
        for name in names:
            started = time.perf_counter()
            with storage.open_for_reading(name) as source:
                assert len(source.read()) == len(data)
            gets.append((time.perf_counter() - started) * 1000)
    return {
        "s3_put_ms_p50": percentile(puts, 50),
        "s3_get_ms_p50": percentile(gets, 50),
        "s3_put_ms_p95": percentile(puts, 95),
        "s3_get_ms_p95": percentile(gets, 95),
        "s3_object_mb": len(data) / 1024 / 1024,
    }


def pipeline_s3_vs_local(folder: Path, photos: list[WorkPhoto], server: MotoServer, workers: int = 2) -> dict:
    figures = {}
    for media, env in (("local", {}), ("s3", server.env)):
        with Site(**env) as site:
            client = site.user(f"bench-{media}")
            site.start_workers(workers)
            site.add_people(client)
            run = site.run_uploads(client, folder, photos)
            site.stop_workers()
        figures[f"pipeline_photos_per_s_{media}_media"] = run["photos_per_s"]
        figures[f"pipeline_failed_{media}_media"] = run["failed"]
        figures[f"upload_p95_ms_{media}_media"] = percentile(run["latencies"], 95)
    return figures


def s3_media(folder: Path, photos: list[WorkPhoto]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as tmp, MotoServer(Path(tmp, "moto.log")) as server:
        figures = put_get(server, four_mb_photo(folder, photos))
        figures.update(pipeline_s3_vs_local(folder, photos, server))
    return figures
