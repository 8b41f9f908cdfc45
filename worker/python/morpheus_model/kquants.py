"""GGML K-quant encoders (Q4_K, Q5_K, Q6_K) in numpy, for the project's own test models.

`gguf`'s Python package decodes every GGML format but encodes only the 32-wide ones. These pick
scales by each sub-block's range (not llama.cpp's error search): the blocks are valid GGML blocks
whatever their quality, and the tests read them back through `gguf`'s own decoder.
"""

from __future__ import annotations

import numpy as np

QK_K = 256


def _f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16)


def _pack_scales(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """6-bit scales and minimums [nb, 8] -> GGML's 12 bytes (the inverse of get_scale_min_k4)."""
    q = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    q[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    q[:, 4:8] = mn[:, 0:4] | ((mn[:, 4:8] >> 4) << 6)
    q[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((mn[:, 4:8] & 0x0F) << 4)
    return q


def _scales_mins(x: np.ndarray, levels: int):
    """Per super-block d, dmin (f16) and per sub-block 6-bit scale and minimum, and the
    quantised values 0..levels for x [nb, 8, 32]."""
    lo = np.minimum(x.min(axis=-1), 0.0)
    hi = x.max(axis=-1)
    scale = (hi - lo) / levels
    d = _f16(scale.max(axis=-1) / 63.0)
    dmin = _f16((-lo).max(axis=-1) / 63.0)
    d32, dmin32 = d.astype(np.float32), dmin.astype(np.float32)
    sc = np.clip(np.rint(scale / np.where(d32 == 0, 1, d32)[:, None]), 0, 63).astype(np.uint8)
    mn = np.clip(np.rint(-lo / np.where(dmin32 == 0, 1, dmin32)[:, None]), 0, 63).astype(np.uint8)
    step = d32[:, None] * sc
    off = dmin32[:, None] * mn
    q = np.rint((x + off[..., None]) / np.where(step == 0, 1, step)[..., None])
    q = np.clip(np.where(step[..., None] == 0, 0, q), 0, levels).astype(np.uint8)
    return d, dmin, sc, mn, q


def quantize_q4_k(w: np.ndarray) -> np.ndarray:
    """GGML Q4_K bytes of a float32 [n, k] weight (k a multiple of 256): [n, k/256 * 144]."""
    n, k = w.shape
    x = w.reshape(-1, 8, 32).astype(np.float32)
    d, dmin, sc, mn, q = _scales_mins(x, 15)
    # Sub-blocks 2p (low nibbles) and 2p+1 (high) share 32 bytes.
    qs = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(-1, 128)
    out = np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2),
                          _pack_scales(sc, mn), qs], axis=1)
    return out.reshape(n, k // QK_K * 144)


def quantize_q5_k(w: np.ndarray) -> np.ndarray:
    """GGML Q5_K bytes of a float32 [n, k] weight: [n, k/256 * 176]."""
    n, k = w.shape
    x = w.reshape(-1, 8, 32).astype(np.float32)
    d, dmin, sc, mn, q = _scales_mins(x, 31)
    low = q & 0x0F
    qs = (low[:, 0::2] | (low[:, 1::2] << 4)).reshape(-1, 128)
    # Bit j of qh[l] is the fifth bit of sub-block j's element l.
    qh = np.zeros((x.shape[0], 32), dtype=np.uint8)
    for j in range(8):
        qh |= ((q[:, j] >> 4) & 1) << j
    out = np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2),
                          _pack_scales(sc, mn), qh, qs], axis=1)
    return out.reshape(n, k // QK_K * 176)


def quantize_q6_k(w: np.ndarray) -> np.ndarray:
    """GGML Q6_K bytes of a float32 [n, k] weight: [n, k/256 * 210]."""
    n, k = w.shape
    x = w.reshape(-1, 16, 16).astype(np.float32)
    amax = np.abs(x).max(axis=-1)
    scale = amax / 31.0
    d = _f16(scale.max(axis=-1) / 127.0)
    d32 = d.astype(np.float32)
    sc = np.clip(np.rint(scale / np.where(d32 == 0, 1, d32)[:, None]), -128, 127).astype(np.int8)
    step = d32[:, None] * sc
    q = np.rint(x / np.where(step == 0, 1, step)[..., None])
    q = (np.clip(np.where(step[..., None] == 0, 0, q), -32, 31) + 32).astype(np.uint8).reshape(-1, 2, 128)
    # Per half of 128: quarter t of 32 elements; ql holds the low nibbles (t = 0, 1 low, 2, 3 high
    # of bytes 0..63), qh the two high bits (t at bits 2t..2t+1 of byte l).
    t = q.reshape(-1, 2, 4, 32)
    ql = np.concatenate([t[:, :, 0] & 0x0F | ((t[:, :, 2] & 0x0F) << 4),
                         t[:, :, 1] & 0x0F | ((t[:, :, 3] & 0x0F) << 4)], axis=2).reshape(-1, 128)
    qh = ((t[:, :, 0] >> 4) | ((t[:, :, 1] >> 4) << 2) | ((t[:, :, 2] >> 4) << 4)
          | ((t[:, :, 3] >> 4) << 6)).reshape(-1, 64)
    out = np.concatenate([ql, qh, sc.view(np.uint8), d.view(np.uint8).reshape(-1, 2)], axis=1)
    return out.reshape(n, k // QK_K * 210)
