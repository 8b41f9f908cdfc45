//! GGML's other block formats (Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), unpacked per 16-row group
//! into one common form the kernels multiply.
//!
//! These formats are stored as the GGUF's blocks, byte for byte, only grouped: a weight of `n`
//! rows is `[ceil(n/16) groups][k/QK blocks][16 rows][GGML block]` (QK = 32, or 256 for the
//! K-quants; rows past `n` are zero blocks). Before a group is multiplied, its blocks are
//! unpacked into a [`Decoded`] scratch that stays in cache while every activation row passes:
//! per block of 32 inputs and 16 rows,
//!
//! * `u[8 chunks][16 rows][4]`, the unsigned integer weights (0..63), in the chunk layout of
//!   Q8_0 (`mod.rs`), so one 64-byte load is four inputs of all 16 rows;
//! * `s[2 halves][16 rows]`, the scale of inputs 0..15 and 16..31 (they differ only in Q6_K,
//!   whose scales cover 16 inputs);
//! * `m[16 rows]`, a term multiplied by the activations' real block sum;
//!
//! so that a weight is `w = s * (u - centre) + m`, `centre` the format's middle value (8, 16 or
//! 32). The kernels compute `s * x·(u - centre)` from integer dot products (exact), and `m` (a
//! format's minimum plus `centre * s`) against the real sum, as Q4_1 is computed: the int8
//! rounding of the activations meets weights centred on zero.
//!
//! The weights and scales are exact (a scale is a half times a 6-bit integer: 17 bits, within an
//! f32); `m` of the K-quants (`centre * s - dmin * min`) is rounded once, to f32.

use std::cell::RefCell;

use super::{BLOCK, Format, Packed, ROWS};

/// Bytes of `u` per block of 32 inputs (16 rows).
pub(crate) const U_BYTES: usize = BLOCK * ROWS;

/// One group unpacked (see the module docs); kept per thread between calls.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// Blocks of 32 inputs.
    pub(crate) blocks: usize,
    /// The format's centre: `w = s * (u - centre) + m`.
    pub(crate) centre: i32,
    /// `[blocks][8][16][4]` unsigned weights.
    pub(crate) u: Vec<u8>,
    /// `[blocks][2][16]` scales per half block.
    pub(crate) s: Vec<f32>,
    /// `[blocks][16]` terms against the activations' block sum.
    pub(crate) m: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Decoded> = RefCell::new(Decoded::default());
}

/// Runs `f` with this thread's scratch.
pub(crate) fn with_scratch<T>(f: impl FnOnce(&mut Decoded) -> T) -> T {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

impl Format {
    /// Inputs per GGML block: 256 for the K-quants, 32 for the others.
    pub(crate) const fn block_inputs(self) -> usize {
        match self {
            Self::Q4_K | Self::Q5_K | Self::Q6_K => 256,
            _ => BLOCK,
        }
    }

    /// Bytes of one GGML block of one row.
    pub(crate) const fn ggml_block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q4_K => 144,
            Self::Q5_K => 176,
            Self::Q6_K => 210,
        }
    }

    /// Whether the weight is unpacked into [`Decoded`] (all but Q4_1 and Q8_0, whose packed
    /// layout the kernels read directly).
    pub(crate) const fn decoded(self) -> bool {
        !matches!(self, Self::Q4_1 | Self::Q8_0)
    }

    const fn centre(self) -> i32 {
        match self {
            Self::Q4_0 | Self::Q4_1 | Self::Q4_K => 8,
            Self::Q5_0 | Self::Q5_1 | Self::Q5_K => 16,
            Self::Q6_K => 32,
            Self::Q8_0 => 128,
        }
    }
}

impl Decoded {
    /// Unpacks group `g` of `w` (a [`Format::decoded`] format).
    pub(crate) fn decode(&mut self, w: &Packed<'_>, g: usize) {
        let blocks = w.k / BLOCK;
        self.blocks = blocks;
        self.centre = w.format.centre();
        self.u.resize(blocks * U_BYTES, 0);
        self.s.resize(blocks * 2 * ROWS, 0.0);
        self.m.resize(blocks * ROWS, 0.0);
        let group = &w.data[g * w.group_bytes()..(g + 1) * w.group_bytes()];
        let per = w.format.ggml_block_bytes();
        let sub = w.format.block_inputs() / BLOCK;
        for (sb, rows) in group.chunks_exact(ROWS * per).enumerate() {
            for (r, blk) in rows.chunks_exact(per).enumerate() {
                for j in 0..sub {
                    let b = sb * sub + j;
                    let (vals, s, m) = unpack(w.format, blk, j);
                    let u = &mut self.u[b * U_BYTES..(b + 1) * U_BYTES];
                    for (c, four) in vals.chunks_exact(4).enumerate() {
                        u[c * 4 * ROWS + 4 * r..][..4].copy_from_slice(four);
                    }
                    self.s[b * 2 * ROWS + r] = s[0];
                    self.s[b * 2 * ROWS + ROWS + r] = s[1];
                    self.m[b * ROWS + r] = m;
                }
            }
        }
    }
}

/// Sub-block `j` (32 inputs) of one row's GGML block: the unsigned weights, the halves' scales
/// and the term against the block sum (see the module docs).
#[inline(always)]
fn unpack(format: Format, blk: &[u8], j: usize) -> ([u8; BLOCK], [f32; 2], f32) {
    let mut v = [0u8; BLOCK];
    match format {
        Format::Q4_0 => {
            let d = half(blk, 0);
            for i in 0..16 {
                v[i] = blk[2 + i] & 0x0F;
                v[16 + i] = blk[2 + i] >> 4;
            }
            (v, [d; 2], 0.0)
        }
        Format::Q5_0 | Format::Q5_1 => {
            let d = half(blk, 0);
            let (m, at) = if format == Format::Q5_1 {
                (half(blk, 2) + 16.0 * d, 4)
            } else {
                (0.0, 2)
            };
            let qh = u32::from_le_bytes([blk[at], blk[at + 1], blk[at + 2], blk[at + 3]]);
            let qs = &blk[at + 4..at + 20];
            for i in 0..16 {
                v[i] = (qs[i] & 0x0F) | ((((qh >> i) & 1) as u8) << 4);
                v[16 + i] = (qs[i] >> 4) | ((((qh >> (16 + i)) & 1) as u8) << 4);
            }
            (v, [d; 2], m)
        }
        Format::Q4_K | Format::Q5_K => {
            let (d, dmin) = (half(blk, 0), half(blk, 2));
            let (sc, mn) = scale_min_k4(j, &blk[4..16]);
            let s = d * f32::from(sc);
            let five = format == Format::Q5_K;
            let (qh, qs) = if five {
                (&blk[16..48], &blk[48..176])
            } else {
                (&blk[0..0], &blk[16..144])
            };
            // Inputs 64p..64p+63 share 32 bytes: the low nibbles are sub-block 2p, the high 2p+1.
            let bytes = &qs[32 * (j / 2)..32 * (j / 2) + 32];
            let shift = 4 * (j % 2);
            for (l, (v, q)) in v.iter_mut().zip(bytes).enumerate() {
                *v = (q >> shift) & 0x0F;
                if five {
                    *v |= ((qh[l] >> j) & 1) << 4;
                }
            }
            let centre: f32 = if five { 16.0 } else { 8.0 };
            (v, [s; 2], centre.mul_add(s, -dmin * f32::from(mn)))
        }
        Format::Q6_K => {
            let (ql, qh, scales) = (&blk[0..128], &blk[128..192], &blk[192..208]);
            let d = half(blk, 208);
            // Sub-block j = 4n + t: quarter t of the n-th 128 inputs.
            let (n, t) = (j / 4, j % 4);
            for (l, v) in v.iter_mut().enumerate() {
                let low = ql[64 * n + 32 * (t % 2) + l] >> (4 * (t / 2)) & 0x0F;
                let high = (qh[32 * n + l] >> (2 * t)) & 3;
                *v = low | (high << 4);
            }
            let scale = |h: usize| d * f32::from(scales[2 * j + h] as i8);
            (v, [scale(0), scale(1)], 0.0)
        }
        Format::Q4_1 | Format::Q8_0 => unreachable!("{format:?} is read packed, not decoded"),
    }
}

/// The 6-bit scale and minimum of sub-block `j` of a Q4_K/Q5_K block (GGML's `get_scale_min_k4`).
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The little-endian IEEE half at `p[at..at + 2]`, as f32 (bit for bit; no rounding happens).
#[inline(always)]
pub(crate) fn half(p: &[u8], at: usize) -> f32 {
    let h = u32::from(u16::from_le_bytes([p[at], p[at + 1]]));
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1F;
    let man = h & 0x03FF;
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // Subnormal: man * 2^-24, exact in f32.
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        31 => sign | 0x7F80_0000 | (man << 13),
        e => sign | ((e + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}
