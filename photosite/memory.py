"""The C allocator, tuned for processes that handle one large photo after another.

glibc gives a freed block of 128 kB or more straight back to the kernel (as it does the free top of its
heap past 128 kB), and the next photo's equally large buffers (decoded pixels, the detector's image pyramid,
arrays, an upload's body) come back as fresh pages, each one a page fault and zeroed by the kernel. Measured
here on the benchmark's 12 MP photos: 10,000 minor page faults and 35-40 ms of system time per photo in the
engine, 3 of the 7 ms a web worker spends receiving a 2 MB upload. Keeping up to MEMORY_KEEP_FREED_MB of freed
memory for reuse takes both to almost nothing (30 faults, 1 ms). The peak resident size stays the same;
between photos a process holds on to what its last photo used instead of going back down (a work horse
300 MB rather than 243 MB).
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
