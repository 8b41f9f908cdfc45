//! Rows of a packed weight back as floats, as GGML dequantises them: the token embeddings'
//! lookup (`ai.morpheus.BlockGather`) reads the GGUF's own blocks, as llama.cpp's `get_rows`
//! does, instead of a float copy of the whole table (Gemma 3's 262,144 x 640 table is 178 MB of
//! Q8_0 blocks and 671 MB as f32; tied to the output head, the same bytes serve both).
//!
//! A row's GGML blocks are first gathered back out of the 16-row packed layout (`mod.rs`,
//! `decode.rs`), byte for byte, then dequantised with GGML's `dequantize_row_*` arithmetic in
//! f32, in GGML's order of operations.

use super::{
    BLOCK, Format, Packed, ROWS,
    decode::{half, scale_min_k4},
};

/// Bytes `lo..hi` of a GGML block.
pub(crate) type Range = (usize, usize);

/// The largest GGML block (Q6_K's).
const MAX_BLOCK_BYTES: usize = 210;

impl Format {
    /// How a decoded format's group block is laid out (`decode.rs`): these byte ranges of each
    /// row's GGML block as 4-byte words interleaved over the 16 rows (`[word][16 rows][4]`),
    /// then these per-row fields, row after row. `None` for Q4_1 and Q8_0 (`mod.rs`).
    pub(crate) const fn layout(self) -> Option<(&'static [Range], &'static [Range])> {
        Some(match self {
            Self::Q4_0 => (&[(2, 18)], &[(0, 2)]),
            Self::Q5_0 => (&[(6, 22)], &[(2, 6), (0, 2)]),
            Self::Q5_1 => (&[(8, 24)], &[(4, 8), (0, 2), (2, 4)]),
            Self::Q4_K => (
                &[(16, 48), (48, 80), (80, 112), (112, 144)],
                &[(0, 2), (2, 4), (4, 16)],
            ),
            Self::Q5_K => (
                &[(48, 80), (80, 112), (112, 144), (144, 176), (16, 48)],
                &[(0, 2), (2, 4), (4, 16)],
            ),
            Self::Q6_K => (
                &[
                    (0, 32),
                    (32, 64),
                    (64, 96),
                    (96, 128),
                    (128, 160),
                    (160, 192),
                ],
                &[(192, 208), (208, 210)],
            ),
            Self::Q4_1 | Self::Q8_0 => return None,
        })
    }
}

/// Row `row`'s GGML block `b` (of [`Format::block_inputs`] inputs), its bytes as the GGUF holds
/// them, written into `blk` ([`Format::ggml_block_bytes`] long).
pub(crate) fn ggml_block(w: &Packed<'_>, row: usize, b: usize, blk: &mut [u8]) {
    let (g, r) = (row / ROWS, row % ROWS);
    let per = w.format.group_block_bytes();
    let src = &w.data[g * w.group_bytes() + b * per..][..per];
    match w.format.layout() {
        Some((words, fields)) => {
            let mut at = 0;
            for &(lo, hi) in words {
                for (i, word) in (lo..hi).step_by(4).enumerate() {
                    let from = at + i * 4 * ROWS + 4 * r;
                    blk[word..word + 4].copy_from_slice(&src[from..from + 4]);
                }
                at += (hi - lo) * ROWS;
            }
            for &(lo, hi) in fields {
                let from = at + r * (hi - lo);
                blk[lo..hi].copy_from_slice(&src[from..from + hi - lo]);
                at += (hi - lo) * ROWS;
            }
        }
        None if w.format == Format::Q4_1 => {
            for c in 0..4 {
                blk[4 + 4 * c..8 + 4 * c].copy_from_slice(&src[64 * c + 4 * r..][..4]);
            }
            blk[0..2].copy_from_slice(&src[256 + 2 * r..][..2]);
            blk[2..4].copy_from_slice(&src[288 + 2 * r..][..2]);
        }
        None => {
            // Q8_0: the packed bytes are `q + 128`.
            for s in 0..8 {
                for j in 0..4 {
                    blk[2 + 4 * s + j] = src[64 * s + 4 * r + j] ^ 0x80;
                }
            }
            blk[0..2].copy_from_slice(&src[512 + 2 * r..][..2]);
        }
    }
}

/// Row `row` (< `w.n`) of `w` into `out` (`w.k` values), as GGML dequantises it.
pub(crate) fn dequantize_row(w: &Packed<'_>, row: usize, out: &mut [f32]) {
    assert!(row < w.n, "row {row} of a weight of {} rows", w.n);
    assert_eq!(out.len(), w.k, "a row is k values");
    let qk = w.format.block_inputs();
    let mut blk = [0u8; MAX_BLOCK_BYTES];
    let blk = &mut blk[..w.format.ggml_block_bytes()];
    for (b, y) in out.chunks_exact_mut(qk).enumerate() {
        ggml_block(w, row, b, blk);
        dequantize_block(w.format, blk, y);
    }
}

/// One GGML block (`blk`) into `y` ([`Format::block_inputs`] values): GGML's
/// `dequantize_row_*`, operation for operation, in f32.
fn dequantize_block(format: Format, blk: &[u8], y: &mut [f32]) {
    const HALF: usize = BLOCK / 2;
    match format {
        Format::Q4_0 | Format::Q4_1 => {
            let d = half(blk, 0);
            let (m, qs) = if format == Format::Q4_1 {
                (half(blk, 2), &blk[4..20])
            } else {
                (0.0, &blk[2..18])
            };
            let centre = if format == Format::Q4_1 { 0 } else { 8 };
            for (j, q) in qs.iter().enumerate() {
                let (x0, x1) = (i32::from(q & 0x0F) - centre, i32::from(q >> 4) - centre);
                y[j] = x0 as f32 * d + m;
                y[j + HALF] = x1 as f32 * d + m;
            }
        }
        Format::Q5_0 | Format::Q5_1 => {
            let one = format == Format::Q5_1;
            let d = half(blk, 0);
            let (m, at, centre) = if one {
                (half(blk, 2), 4, 0)
            } else {
                (0.0, 2, 16)
            };
            let qh = u32::from_le_bytes([blk[at], blk[at + 1], blk[at + 2], blk[at + 3]]);
            for (j, q) in blk[at + 4..at + 4 + HALF].iter().enumerate() {
                let xh0 = ((qh >> j) << 4) & 0x10;
                let xh1 = (qh >> (j + 12)) & 0x10;
                let x0 = (u32::from(q & 0x0F) | xh0) as i32 - centre;
                let x1 = (u32::from(q >> 4) | xh1) as i32 - centre;
                y[j] = x0 as f32 * d + m;
                y[j + HALF] = x1 as f32 * d + m;
            }
        }
        Format::Q8_0 => {
            let d = half(blk, 0);
            for (y, q) in y.iter_mut().zip(&blk[2..34]) {
                *y = f32::from(*q as i8) * d;
            }
        }
        Format::Q4_K | Format::Q5_K => {
            let five = format == Format::Q5_K;
            let (d, min) = (half(blk, 0), half(blk, 2));
            let scales = &blk[4..16];
            let (qh, mut ql) = if five {
                (&blk[16..48], 48)
            } else {
                (&blk[0..0], 16)
            };
            let (mut u1, mut u2) = (1u8, 2u8);
            for (i, y) in y.chunks_exact_mut(64).enumerate() {
                let high = |l: usize, u: u8| if five && qh[l] & u != 0 { 16 } else { 0 };
                let (sc, mn) = scale_min_k4(2 * i, scales);
                let (d1, m1) = (d * f32::from(sc), min * f32::from(mn));
                let (sc, mn) = scale_min_k4(2 * i + 1, scales);
                let (d2, m2) = (d * f32::from(sc), min * f32::from(mn));
                for l in 0..32 {
                    y[l] = d1 * f32::from((blk[ql + l] & 0x0F) + high(l, u1)) - m1;
                    y[l + 32] = d2 * f32::from((blk[ql + l] >> 4) + high(l, u2)) - m2;
                }
                ql += 32;
                u1 <<= 2;
                u2 <<= 2;
            }
        }
        Format::Q6_K => {
            let d = half(blk, 208);
            for (n, y) in y.chunks_exact_mut(128).enumerate() {
                let (ql, qh) = (&blk[64 * n..64 * n + 64], &blk[128 + 32 * n..160 + 32 * n]);
                let sc = |i: usize| f32::from(blk[192 + 8 * n + i] as i8);
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = i32::from((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32;
                    let q2 = i32::from((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * sc(is) * q1 as f32;
                    y[l + 32] = d * sc(is + 2) * q2 as f32;
                    y[l + 64] = d * sc(is + 4) * q3 as f32;
                    y[l + 96] = d * sc(is + 6) * q4 as f32;
                }
            }
        }
    }
}
