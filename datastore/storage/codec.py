"""Blob compression: zstd where it pays, raw where it does not.

A blob is compressed only if that saves at least an eighth of it; a sample of the
blob's start is tried first at the fastest level, so incompressible data (media,
archives, already-compressed columns) costs one small trial, not a whole pass.
"""

from __future__ import annotations

import threading

import zstandard

RAW = 0
ZSTD = 1
# level 1: on the benchmark's CSV 175 MB/s for 0.32 of the size, level 3 113 MB/s for 0.35
LEVEL = 1
SAMPLE = 64 << 10
MIN_SIZE = 512  # below this, a frame's overhead eats what compression saves
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "c", None)
    if c is None:
        c = _local.c = zstandard.ZstdCompressor(level=LEVEL)
    return c


def _probe() -> zstandard.ZstdCompressor:
    c = getattr(_local, "p", None)
    if c is None:
        c = _local.p = zstandard.ZstdCompressor(level=1)
    return c


def encode(data: bytes | memoryview) -> tuple[int, bytes | memoryview]:
    """(codec, stored bytes) for one blob."""
    n = len(data)
    if n < MIN_SIZE:
        return RAW, data
    if n > SAMPLE and len(_probe().compress(data[:SAMPLE])) > SAMPLE * 7 // 8:
        return RAW, data
    packed = _compressor().compress(data)
    if len(packed) > n * 7 // 8:
        return RAW, data
    return ZSTD, packed


def decode(codec: int, stored: bytes, raw_length: int) -> bytes:
    """The blob's bytes; a frame that does not decode to ``raw_length`` bytes raises
    ValueError (the caller reports the blob as corrupt)."""
    if codec == RAW:
        return stored
    if codec != ZSTD:
        raise ValueError(f"unknown blob codec {codec}")
    try:
        out = zstandard.ZstdDecompressor().decompress(stored, max_output_size=raw_length)
    except zstandard.ZstdError as exc:
        raise ValueError(f"zstd frame does not decode: {exc}") from exc
    if len(out) != raw_length:
        raise ValueError(f"zstd frame holds {len(out)} bytes, not {raw_length}")
    return out
