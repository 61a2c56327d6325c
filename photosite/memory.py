"""The C allocator, tuned for processes that handle one large photo after another.

glibc maps a large block (128 kB at first) on its own and unmaps it when it is freed, and hands the free
top of its heap back to the kernel past a threshold; it raises both thresholds as it sees large blocks
freed, but a photo's working set (decoded pixels, the detector's image pyramid, arrays, an upload's body)
still goes back to the kernel, and the next photo faults it in again, each page zeroed by the kernel.
Measured here on the benchmark's 12 MP photos: 10,000 minor page faults and 25-40 ms of system time per
photo in the engine; 568 faults per 1.8 MB upload in a web worker. Keeping up to MEMORY_KEEP_FREED_MB of
freed memory for reuse takes the engine's to about 20 faults and 1 ms, the web worker's to about 100. The
peak resident size stays the same; between photos a process holds on to what its last photo used instead
of going back down (a work horse 300 MB rather than 243 MB).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

# mallopt's parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems: larger blocks are always mapped on their own.
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def keep_freed_memory(megabytes: int) -> bool:
    """Let this process keep up to `megabytes` of freed memory for reuse; False where it cannot (0, or a C
    library without mallopt: musl, macOS). Inherited by processes forked after it."""
    if megabytes <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        log.info("No mallopt in this C library: freed memory goes back to the system at once")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    megabytes = min(megabytes, 2047)  # mallopt takes an int of bytes
    # Both set: a fixed threshold turns off glibc's own adjusting, which would otherwise keep some of it.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) and mallopt(M_TRIM_THRESHOLD, megabytes << 20))
