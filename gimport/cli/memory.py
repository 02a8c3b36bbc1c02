"""Keeping freed memory freed, so a run stays within 200 MB + twice the largest message, whatever the server claims.

glibc raises its mmap threshold each time a large block is freed, up to 32 MB: after that, every buffer of a
message up to that size comes from a thread's heap instead of its own mapping, and a heap gives memory back
only from its top. With eight import threads, 100 messages of 20 MB held 291 MB at the peak where 111 MB were
in use. Fixing the threshold (mallopt M_MMAP_THRESHOLD, which also turns the adjustment off) keeps every
large buffer in a mapping of its own, returned to the system when it is freed. Elsewhere (musl, macOS,
Windows) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
THRESHOLD = 128 * 1024  # glibc's default starting value


def bound_heap() -> bool:
    """Fix glibc's mmap threshold for this process (idempotent). True when it was done."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
