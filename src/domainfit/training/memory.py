"""Give freed heap memory back to the operating system.

Training allocates activations of a different size for every batch length; glibc's
allocator keeps the freed blocks, so the resident size creeps up over a run. After each
checkpoint and evaluation (a few times per epoch) the loop asks glibc to return free
memory. Elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

__all__ = ["release_free_memory"]

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim  # noqa: B018  (raises AttributeError where absent)
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def release_free_memory() -> None:
    """Collect garbage and return free heap pages to the OS (glibc only)."""
    gc.collect()
    libc = _libc()
    if libc:
        libc.malloc_trim(0)
