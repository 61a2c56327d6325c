"""The allocator's tuning (photosite/memory.py): freed photo-sized buffers are reused, not faulted in again.

Each case runs in a fresh process and counts the minor page faults of making and dropping 32 MB (8 buffers
of 4 MB, as a photo's pixels, pyramid and arrays are) 10 times: about 8,000 each time when glibc hands the
freed heap back to the kernel, almost none when it is kept."""

from __future__ import annotations

import pytest

from tests.test_settings import run

CHURN = """
import resource
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def photo():
    buffers = [b"x" * (4 << 20) for _ in range(8)]
    del buffers
photo()  # the first one faults in whatever is kept
before = faults()
for _ in range(10):
    photo()
print((faults() - before) // 10)
"""
PAGES = (32 << 20) // 4096  # 32 MB of fresh memory faults in about this many pages


def faults_per_photo(setup: str, **env: str) -> int:
    result = run(setup + CHURN, DJANGO_DEBUG="1", **env)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def test_glibc_hands_freed_memory_back_and_faults_it_in_again():
    """The baseline the tuning is for: without it, every photo costs its pages again."""
    assert faults_per_photo("") > PAGES // 2


def test_kept_freed_memory_is_reused():
    setup = "from photosite.memory import keep_freed_memory\nassert keep_freed_memory(64)\n"
    assert faults_per_photo(setup) < PAGES // 20


def test_zero_keeps_glibc_default():
    setup = "from photosite.memory import keep_freed_memory\nassert not keep_freed_memory(0)\n"
    assert faults_per_photo(setup) > PAGES // 2


LOAD_ENGINE = "import django\ndjango.setup()\nfrom recognition import engine\nengine.load_models()\n"
IMPORT_WSGI = "import photosite.wsgi\n"


@pytest.mark.parametrize("setup", [LOAD_ENGINE, IMPORT_WSGI], ids=["engine", "web worker"])
def test_engine_and_web_workers_keep_freed_memory(setup):
    """Every process that detects faces (workers, their horses by inheritance) and every web worker."""
    assert faults_per_photo(setup) < PAGES // 20


@pytest.mark.parametrize("setup", [LOAD_ENGINE, IMPORT_WSGI], ids=["engine", "web worker"])
def test_the_setting_turns_it_off(setup):
    assert faults_per_photo(setup, MEMORY_KEEP_FREED_MB="0") > PAGES // 2
