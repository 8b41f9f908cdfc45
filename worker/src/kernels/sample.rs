//! Random GGML weights, packed as the converter packs them (`blocks.pack_groups`), for the
//! kernels' tests and `morpheus-worker model kernels`.

use crate::engine::SplitMix64;

use super::{BLOCK, Format, ROWS};

/// Deterministic pseudo-random test data.
pub(crate) struct Rng(SplitMix64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(SplitMix64(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }

    /// A half in ±[2^-6, 2^-1): the range of real weight scales.
    fn half(&mut self) -> [u8; 2] {
        let sign = (self.next() & 1) as u16;
        let exp = 9 + (self.next() % 5) as u16;
        let frac = (self.next() & 0x3FF) as u16;
        ((sign << 15) | (exp << 10) | frac).to_le_bytes()
    }

    pub(crate) fn float(&mut self) -> f32 {
        self.0.next_f32() * 4.0 - 2.0
    }
}

/// A GGML weight: `n` rows of `k/QK` raw blocks, as the GGUF stores it: halves where GGML keeps
/// its scales, random bytes elsewhere (every bit pattern of weights, 6-bit scales and minimums).
pub(crate) fn ggml(format: Format, n: usize, k: usize, rng: &mut Rng) -> Vec<u8> {
    let per = format.ggml_block_bytes();
    let mut raw = Vec::with_capacity(n * k / format.block_inputs() * per);
    for _ in 0..n * k / format.block_inputs() {
        let mut blk: Vec<u8> = (0..per).map(|_| rng.byte()).collect();
        let halves: &[usize] = match format {
            Format::Q4_0 | Format::Q5_0 | Format::Q8_0 => &[0],
            Format::Q4_1 | Format::Q5_1 | Format::Q4_K | Format::Q5_K => &[0, 2],
            Format::Q6_K => &[208],
        };
        for &at in halves {
            blk[at..at + 2].copy_from_slice(&rng.half());
        }
        raw.extend(blk);
    }
    raw
}

/// The packed layout of `mod.rs`, built from GGML blocks (what the Python converter writes).
pub(crate) fn pack(format: Format, raw: &[u8], n: usize, k: usize) -> Vec<u8> {
    let kb = k / BLOCK;
    let groups = n.div_ceil(ROWS);
    let mut out = vec![0u8; groups * (k / format.block_inputs()) * format.group_block_bytes()];
    if format.decoded() {
        // `decode.rs`: per (group, block), the rows' bit arrays as interleaved 4-byte words,
        // then the per-row fields row after row (`Format::layout`).
        let (per, blocks) = (format.ggml_block_bytes(), k / format.block_inputs());
        let (words, fields) = format.layout().expect("a decoded format");
        for g in 0..groups {
            for b in 0..blocks {
                let mut dst = (g * blocks + b) * format.group_block_bytes();
                let blk = |r: usize| -> &[u8] {
                    let row = g * ROWS + r;
                    if row < n {
                        &raw[(row * blocks + b) * per..][..per]
                    } else {
                        &[0u8; 210][..per]
                    }
                };
                for &(lo, hi) in words {
                    for w in (lo..hi).step_by(4) {
                        for r in 0..ROWS {
                            out[dst..dst + 4].copy_from_slice(&blk(r)[w..w + 4]);
                            dst += 4;
                        }
                    }
                }
                for &(lo, hi) in fields {
                    for r in 0..ROWS {
                        out[dst..dst + hi - lo].copy_from_slice(&blk(r)[lo..hi]);
                        dst += hi - lo;
                    }
                }
            }
        }
        return out;
    }
    for g in 0..groups {
        for b in 0..kb {
            let dst = &mut out[(g * kb + b) * format.group_block_bytes()..];
            for r in 0..ROWS.min(n - g * ROWS) {
                let row = g * ROWS + r;
                match format {
                    Format::Q4_1 => {
                        let blk = &raw[(row * kb + b) * 20..][..20];
                        for c in 0..4 {
                            for j in 0..4 {
                                dst[64 * c + 4 * r + j] = blk[4 + 4 * c + j];
                            }
                        }
                        dst[256 + 2 * r..][..2].copy_from_slice(&blk[0..2]);
                        dst[288 + 2 * r..][..2].copy_from_slice(&blk[2..4]);
                    }
                    Format::Q8_0 => {
                        let blk = &raw[(row * kb + b) * 34..][..34];
                        for s in 0..8 {
                            for j in 0..4 {
                                dst[64 * s + 4 * r + j] = blk[2 + 4 * s + j] ^ 0x80;
                            }
                        }
                        dst[512 + 2 * r..][..2].copy_from_slice(&blk[0..2]);
                    }
                    other => unreachable!("{other:?} is grouped above"),
                }
            }
        }
    }
    out
}

/// Random activations in ±2.
pub(crate) fn activations(rows: usize, width: usize, rng: &mut Rng) -> Vec<f32> {
    (0..rows * width).map(|_| rng.float()).collect()
}
