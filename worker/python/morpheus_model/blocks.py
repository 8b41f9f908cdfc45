"""GGML block formats mapped onto ONNX Runtime's `MatMulNBits` (block size 32), without re-quantising.

`MatMulNBits` computes `y = x @ dequant(B)^T` with, per block of 32 inputs, `w = scale * (q - zp)`.

* Q4_0 (`w = d * (q - 8)`): 4-bit, no zero-point input (the default is 8). Exact.
* Q4_1 (`w = d * q + m`): 4-bit with the nearest zero point `z = round(-m/d)` (0..15), plus the
  remainder `m + d*z`: the caller adds `blocksum(x) @ rest^T` (a tiny matmul of the input's
  per-block sums). Exact, and keeps the fast
  integer kernel (a float zero point would fall to a path ~40x slower). Or, with `fold_q4_1`,
  8-bit `(d/k) * ((k*q + c) - zp)` with `c - zp = round(k*m/d)`, k = 16 for almost every block:
  the 4-bit values and scales stay exact, the offset is off by at most d/32 (a 32nd of one
  quantisation step), and the matmul is one kernel with no correction (4 graph nodes fewer).
* Q8_0 (`w = d * q`, q int8): 8-bit with `q + 128` and zero point 128. Exact.
* Anything else (F32, F16, K-quants): dequantised, then 8-bit symmetric per block (near exact).

With the worker's own kernels (`--kernels morpheus`, the default), the weights skip all of that:
`GgmlBlocks` keeps the GGUF's blocks byte for byte (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)
and `pack_groups` only reorders them for the `ai.morpheus.BlockMatMul` operator (layouts in
`worker/src/kernels/mod.rs` and `decode.rs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants

BLOCK = 32


@dataclass
class NBits:
    """A weight of `n` outputs by `k` inputs in MatMulNBits form."""

    n: int
    k: int
    bits: int
    packed: np.ndarray  # uint8 [n, k/32, 32*bits/8]
    scales: np.ndarray  # float32 [n, k/32]
    zero_points: np.ndarray | None  # uint8, packed like MatMulNBits wants, or None for the default
    mins: np.ndarray | None  # float32 [n, k/32]: Q4_1's per-block offsets, or None

    def take_rows(self, order: np.ndarray) -> "NBits":
        """The same weight with its output rows reordered (blocks run along k, so this is exact)."""
        zp = None
        if self.zero_points is not None:
            zp = self.zero_points.reshape(self.n, -1)[order].reshape(-1)
        return NBits(
            self.n,
            self.k,
            self.bits,
            self.packed[order],
            self.scales[order],
            zp,
            None if self.mins is None else self.mins[order],
        )

    def dequantize(self) -> np.ndarray:
        """Float32 [n, k] the kernel computes with (for the reference check)."""
        kb = self.k // BLOCK
        if self.bits == 4:
            lo = self.packed & 0x0F
            hi = self.packed >> 4
            q = np.stack([lo, hi], axis=-1).reshape(self.n, kb, BLOCK).astype(np.float32)
            zp = 8.0 if self.zero_points is None else _unpack_zp4(self.zero_points, self.n, kb)
        else:
            q = self.packed.reshape(self.n, kb, BLOCK).astype(np.float32)
            zp = self.zero_points.reshape(self.n, kb, 1).astype(np.float32)
        if isinstance(zp, np.ndarray) and zp.ndim == 2:
            zp = zp[..., None]
        w = (q - zp) * self.scales[..., None]
        if self.mins is not None:
            w = w + self.mins[..., None]
        return w.reshape(self.n, self.k)


# GGML block formats BlockMatMul takes: operator name, inputs per block, bytes per block.
FORMATS = {
    Q.Q4_0: ("q4_0", 32, 18),
    Q.Q4_1: ("q4_1", 32, 20),
    Q.Q5_0: ("q5_0", 32, 22),
    Q.Q5_1: ("q5_1", 32, 24),
    Q.Q8_0: ("q8_0", 32, 34),
    Q.Q4_K: ("q4_k", 256, 144),
    Q.Q5_K: ("q5_k", 256, 176),
    Q.Q6_K: ("q6_k", 256, 210),
}


@dataclass
class GgmlBlocks:
    """A weight of `n` outputs by `k` inputs in one of `FORMATS`, kept as the GGUF's own blocks."""

    qtype: Q
    n: int
    k: int
    raw: np.ndarray  # uint8 [n, k/QK, bytes per block]

    FORMATS = {q: f[0] for q, f in FORMATS.items()}

    @property
    def format(self) -> str:
        return self.FORMATS[self.qtype]

    def take_rows(self, order: np.ndarray) -> "GgmlBlocks":
        """The same weight with its output rows reordered (blocks run along k, so this is exact)."""
        return GgmlBlocks(self.qtype, self.n, self.k, self.raw[order])

    def to_nbits(self) -> NBits:
        """The MatMulNBits form, for a fused weight whose parts differ in format."""
        return from_raw(self.qtype, self.raw, self.n, self.k)


@dataclass
class Stacked:
    """Weights sharing an input whose formats differ (a Q4_K_M file's Q4_K Q and K beside a Q6_K V):
    one `BlockMatMul` per run of one format, their outputs concatenated."""

    parts: list[GgmlBlocks]

    @property
    def n(self) -> int:
        return sum(p.n for p in self.parts)

    @property
    def k(self) -> int:
        return self.parts[0].k


# The decoded formats' group layout (`worker/src/kernels/decode.rs`), as byte ranges of a GGML
# block: bit arrays stored as 4-byte words interleaved over the 16 rows, then per-row fields.
WORDS_FIELDS = {
    Q.Q4_0: ([(2, 18)], [(0, 2)]),
    Q.Q5_0: ([(6, 22)], [(2, 6), (0, 2)]),
    Q.Q5_1: ([(8, 24)], [(4, 8), (0, 2), (2, 4)]),
    Q.Q4_K: ([(16, 48), (48, 80), (80, 112), (112, 144)], [(0, 2), (2, 4), (4, 16)]),
    Q.Q5_K: ([(48, 80), (80, 112), (112, 144), (144, 176), (16, 48)], [(0, 2), (2, 4), (4, 16)]),
    Q.Q6_K: ([(0, 32), (32, 64), (64, 96), (96, 128), (128, 160), (160, 192)], [(192, 208), (208, 210)]),
}

# Output rows per group and bytes per (group, block) of the packed layout.
GROUP_ROWS = 16
GROUP_BLOCK_BYTES = {q: 320 if q == Q.Q4_1 else 544 if q == Q.Q8_0 else GROUP_ROWS * f[2]
                     for q, f in FORMATS.items()}


def ggml_blocks(qtype: Q, data: np.ndarray, n: int, k: int) -> GgmlBlocks | None:
    """`data` as `GgmlBlocks` when the worker's kernels take its format, else None."""
    if qtype not in FORMATS:
        return None
    _, qk, per = FORMATS[qtype]
    if k % qk:
        raise ValueError(f"{qtype.name} weight: input width {k} is not a multiple of {qk}")
    raw = np.ascontiguousarray(data).view(np.uint8).reshape(n, k // qk, per)
    return GgmlBlocks(qtype, n, k, raw)


def pack_groups(w: GgmlBlocks) -> np.ndarray:
    """uint8 [ceil(n/16), k/32, group-block bytes]: the layout `BlockMatMul` streams.

    Q4_1: per (group, block) `qs[4 chunks][16 rows][4 bytes]` (chunk c holds GGML's bytes 4c..4c+3 of
    each row: elements 4c+j in the low nibbles, 16+4c+j in the high ones), then `d[16]`, `m[16]` f16.
    Q8_0: `qs[8][16][4]` as `q + 128`, then `d[16]` f16. The other formats (`WORDS_FIELDS`): each
    bit array of the 16 rows' GGML blocks as 4-byte words, `[word][16 rows][4]`, then each per-row
    field row after row (`decode.rs` unpacks them). Rows past `n` are zero. Lossless.
    """
    g = -(-w.n // GROUP_ROWS)
    kb = w.raw.shape[1]
    raw = w.raw
    if g * GROUP_ROWS != w.n:
        raw = np.concatenate([raw, np.zeros((g * GROUP_ROWS - w.n, kb, raw.shape[2]), dtype=np.uint8)])
    rows = raw.reshape(g, GROUP_ROWS, kb, raw.shape[2])

    def per_row(field: np.ndarray) -> np.ndarray:
        # [g, 16, kb, b] -> [g, kb, 16 * b]: one value per row, rows consecutive
        return field.transpose(0, 2, 1, 3).reshape(g, kb, -1)

    if w.qtype in WORDS_FIELDS:
        words, fields = WORDS_FIELDS[w.qtype]
        parts = [rows[..., lo:hi].reshape(g, GROUP_ROWS, kb, (hi - lo) // 4, 4).transpose(0, 2, 3, 1, 4)
                 .reshape(g, kb, -1) for lo, hi in words]
        parts += [per_row(rows[..., lo:hi]) for lo, hi in fields]
        out = np.ascontiguousarray(np.concatenate(parts, axis=-1))
        assert out.shape[-1] == GROUP_BLOCK_BYTES[w.qtype]
        return out
    if w.qtype == Q.Q4_1:
        qs = rows[..., 4:20].reshape(g, GROUP_ROWS, kb, 4, 4).transpose(0, 2, 3, 1, 4).reshape(g, kb, 256)
        parts = [qs, per_row(rows[..., 0:2]), per_row(rows[..., 2:4])]
    else:
        q = rows[..., 2:34] ^ np.uint8(0x80)  # int8 q -> q + 128
        qs = q.reshape(g, GROUP_ROWS, kb, 8, 4).transpose(0, 2, 3, 1, 4).reshape(g, kb, 512)
        parts = [qs, per_row(rows[..., 0:2])]
    out = np.ascontiguousarray(np.concatenate(parts, axis=-1))
    assert out.shape[-1] == GROUP_BLOCK_BYTES[w.qtype]
    return out


def _unpack_zp4(zp: np.ndarray, n: int, kb: int) -> np.ndarray:
    per_row = (kb + 1) // 2
    z = zp.reshape(n, per_row)
    both = np.stack([z & 0x0F, z >> 4], axis=-1).reshape(n, per_row * 2)[:, :kb]
    return both.astype(np.float32)


def _pack4(q: np.ndarray) -> np.ndarray:
    """q uint8 [n, kb, 32] in 0..15 -> [n, kb, 16], element 2i in the low nibble of byte i."""
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


def _pack_zp4(z: np.ndarray) -> np.ndarray:
    """Zero points uint8 [n, kb] in 0..15 -> MatMulNBits' packing (two per byte, rows padded)."""
    n, kb = z.shape
    if kb % 2:
        z = np.concatenate([z, np.zeros((n, 1), dtype=np.uint8)], axis=1)
    return (z[:, 0::2] | (z[:, 1::2] << 4)).astype(np.uint8).reshape(-1)


def from_raw(qtype: Q, data: np.ndarray, n: int, k: int) -> NBits:
    """Map one GGUF weight (rows n, cols k) onto MatMulNBits."""
    if k % BLOCK:
        raise ValueError(f"input width {k} is not a multiple of {BLOCK}")
    kb = k // BLOCK
    raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    if qtype == Q.Q4_1:
        b = raw.reshape(n, kb, 20)
        d = b[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        m = b[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
        qs = b[..., 4:20]
        # GGML packs element j in the low nibble and j+16 in the high nibble of byte j.
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
        # d*q + m = d*(q - z) + (m + d*z): the nearest zero point z centres the 4-bit weights (int8
        # activations then err less), and `mins` keeps the small remainder, so it stays exact.
        z = np.clip(np.rint(-m / np.where(d == 0, 1, d)), 0, 15).astype(np.uint8)
        z = np.where(d == 0, 0, z).astype(np.uint8)
        rest = (m.astype(np.float64) + d.astype(np.float64) * z).astype(np.float32)
        return NBits(n, k, 4, _pack4(q), d, _pack_zp4(z), rest)
    if qtype == Q.Q4_0:
        b = raw.reshape(n, kb, 18)
        d = b[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        qs = b[..., 2:18]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
        return NBits(n, k, 4, _pack4(q), d, None, None)
    if qtype == Q.Q8_0:
        b = raw.reshape(n, kb, 34)
        d = b[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        q = (b[..., 2:34].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
        return NBits(n, k, 8, q, d, np.full(n * kb, 128, dtype=np.uint8), None)
    return quantize8(dequantize_raw(qtype, data, n, k))


def fold_q4_1(w: NBits) -> NBits:
    """A Q4_1 weight (4-bit + `mins`) as one 8-bit MatMulNBits weight with zero points.

    Per block, `w = d*q + m = (d/k) * (k*q + t)` with `t = round(k*m/d)`, stored as `q8 = k*q + c`
    and zero point `zp = c - t` (`c` in [0, 255 - 15k], `zp` in [0, 255]). `k` is the largest of
    16, 8, 4, 2, 1 that fits (16 unless a block lies far from zero), so the scale `d/k` is exact
    and the only change is the offset, by at most `d/(2k)`. Blocks with `d = 0` (constant) are
    exact: scale `m`, every `q8` 1, zero point 0.
    """
    if w.bits != 4 or w.mins is None:
        raise ValueError("fold_q4_1 takes a 4-bit weight with Q4_1 minimums")
    kb = w.k // BLOCK
    q = np.stack([w.packed & 0x0F, w.packed >> 4], axis=-1).reshape(w.n, kb, BLOCK).astype(np.int64)
    d = w.scales.astype(np.float64)
    z = 0.0 if w.zero_points is None else _unpack_zp4(w.zero_points, w.n, kb).astype(np.float64)
    m = w.mins.astype(np.float64) - d * z  # back to Q4_1's own w = d*q + m
    flat = d == 0
    ratio = np.where(flat, 0.0, m / np.where(flat, 1.0, d))
    k = np.ones(d.shape, dtype=np.int64)
    for cand in (2, 4, 8, 16):
        t = np.rint(ratio * cand)
        k = np.where((t >= -255) & (t <= 255 - 15 * cand), cand, k)
    t = np.rint(ratio * k).astype(np.int64)
    if np.any((t < -255) | (t > 255 - 15 * k)):
        raise ValueError("a Q4_1 block's minimum is too far from zero for 8-bit folding")
    c = np.clip(t, 0, 255 - 15 * k)
    zp = c - t
    q8 = k[..., None] * q + c[..., None]
    scales = (d / k).astype(np.float32)
    # Constant blocks: w = m exactly.
    q8 = np.where(flat[..., None], np.where(m[..., None] != 0, 1, 0), q8)
    zp = np.where(flat, 0, zp)
    scales = np.where(flat, m, scales).astype(np.float32)
    return NBits(w.n, w.k, 8, q8.astype(np.uint8), scales, zp.astype(np.uint8).reshape(-1), None)


def quantize8(w: np.ndarray) -> NBits:
    """Symmetric 8-bit per block of 32 (for weights stored in formats MatMulNBits cannot take as is)."""
    n, k = w.shape
    kb = k // BLOCK
    blocks = w.reshape(n, kb, BLOCK).astype(np.float32)
    amax = np.abs(blocks).max(axis=-1)
    d = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(blocks / d[..., None]), -127, 127).astype(np.int16) + 128
    return NBits(n, k, 8, q.astype(np.uint8), d, np.full(n * kb, 128, dtype=np.uint8), None)


def dequantize_raw(qtype: Q, data: np.ndarray, n: int, k: int) -> np.ndarray:
    """Float32 [n, k] of any GGML type, as llama.cpp would see it."""
    if qtype == Q.F32:
        return np.asarray(data, dtype=np.float32).reshape(n, k)
    if qtype == Q.F16:
        return np.asarray(data).view(np.float16).astype(np.float32).reshape(n, k)
    return quants.dequantize(np.asarray(data), qtype).astype(np.float32).reshape(n, k)


def concat_rows(parts: list[NBits | GgmlBlocks]) -> NBits | GgmlBlocks | Stacked:
    """Stack weights that share an input (Q|K|V, gate|up) into one matmul (GGML blocks of
    different formats: one per run of a format, `Stacked`)."""
    if all(isinstance(p, GgmlBlocks) for p in parts):
        if len({p.k for p in parts}) != 1:
            raise ValueError("cannot fuse weights of different input widths")
        runs: list[GgmlBlocks] = []
        for p in parts:
            if runs and runs[-1].qtype == p.qtype:
                last = runs[-1]
                runs[-1] = GgmlBlocks(p.qtype, last.n + p.n, p.k, np.concatenate([last.raw, p.raw]))
            else:
                runs.append(p)
        return runs[0] if len(runs) == 1 else Stacked(runs)
    parts = [p.to_nbits() if isinstance(p, GgmlBlocks) else p for p in parts]
    bits = {p.bits for p in parts}
    k = {p.k for p in parts}
    if len(bits) != 1 or len(k) != 1:
        raise ValueError("cannot fuse weights of different formats")
    has_mins = [p.mins is not None for p in parts]
    has_zp = [p.zero_points is not None for p in parts]
    if len(set(has_mins)) != 1 or len(set(has_zp)) != 1:
        raise ValueError("cannot fuse weights of different formats")
    return NBits(
        sum(p.n for p in parts),
        parts[0].k,
        parts[0].bits,
        np.concatenate([p.packed for p in parts]),
        np.concatenate([p.scales for p in parts]),
        None if not has_zp[0] else np.concatenate([p.zero_points for p in parts]),
        None if not has_mins[0] else np.concatenate([p.mins for p in parts]),
    )

