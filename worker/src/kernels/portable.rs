//! The kernels in plain Rust: any CPU, and the reference the SIMD ones are tested against.

use std::ops::Range;

use super::{
    BLOCK, Format, Out, Packed, Quantized, ROWS,
    decode::{Decoded, U_BYTES},
    quantize::RESIDUAL,
};

pub(super) fn matmul_groups(w: &Packed<'_>, a: &Quantized, groups: Range<usize>, out: Out) {
    let kb = w.k / BLOCK;
    let gbb = w.format.group_block_bytes();
    for g in groups {
        let group = &w.data[g * w.group_bytes()..(g + 1) * w.group_bytes()];
        let valid = ROWS.min(w.n - g * ROWS);
        for m in 0..a.rows() {
            let qa = &a.q[m * w.k..(m + 1) * w.k];
            let ra = &a.r[m * w.k..(m + 1) * w.k];
            let mut acc = [0f32; ROWS];
            for b in 0..kb {
                let p = &group[b * gbb..(b + 1) * gbb];
                let qb = &qa[b * BLOCK..(b + 1) * BLOCK];
                let rb = &ra[b * BLOCK..(b + 1) * BLOCK];
                let ab = m * kb + b;
                for (r, acc) in acc.iter_mut().enumerate() {
                    *acc += match w.format {
                        Format::Q4_1 => {
                            let (mut qdot, mut rdot) = (0i32, 0i32);
                            for c in 0..4 {
                                for j in 0..4 {
                                    let byte = p[64 * c + 4 * r + j];
                                    let (lo, hi) = (i32::from(byte & 0x0F), i32::from(byte >> 4));
                                    let (l, h) = (4 * c + j, 16 + 4 * c + j);
                                    qdot += lo * i32::from(qb[l]) + hi * i32::from(qb[h]);
                                    rdot += lo * i32::from(rb[l]) + hi * i32::from(rb[h]);
                                }
                            }
                            let d = f16(p, 256 + 2 * r);
                            let mn = f16(p, 288 + 2 * r);
                            let steps = steps(a, qdot, rdot);
                            d * steps.mul_add(a.d[ab], a.centre_q4_1[ab]) + mn * a.sum[ab]
                        }
                        Format::Q8_0 => {
                            let (mut qdot, mut rdot) = (0i32, 0i32);
                            for s in 0..8 {
                                for j in 0..4 {
                                    let byte = i32::from(p[64 * s + 4 * r + j]);
                                    qdot += byte * i32::from(qb[4 * s + j]);
                                    rdot += byte * i32::from(rb[4 * s + j]);
                                }
                            }
                            let steps = steps(a, qdot, rdot);
                            f16(p, 512 + 2 * r) * steps.mul_add(a.d[ab], a.offset_q8_0[ab])
                        }
                        other => unreachable!("{other:?} is decoded first"),
                    };
                }
            }
            for (r, v) in acc.iter().enumerate().take(valid) {
                // SAFETY: row `m` < out.rows and column `g*16 + r` < n (r < valid): in bounds,
                // and this group's columns belong to this call alone.
                unsafe { *out.ptr.add(m * out.n + g * ROWS + r) = *v };
            }
        }
    }
}

/// All rows of `a` times one group unpacked in `dec` (`kernels::decode`): per block and row,
/// `da * sum_h s_h * x·(u - centre)_h + m * sum`.
pub(super) fn decoded_group(dec: &Decoded, a: &Quantized, g: usize, valid: usize, out: Out) {
    let kb = dec.blocks;
    let k = kb * BLOCK;
    let centre = dec.centre;
    for m in 0..a.rows() {
        let mut acc = [0f32; ROWS];
        for b in 0..kb {
            let u = &dec.u[b * U_BYTES..(b + 1) * U_BYTES];
            let ab = m * kb + b;
            let at = m * k + b * BLOCK;
            for (r, acc) in acc.iter_mut().enumerate() {
                let mut t = 0f32;
                for h in 0..2 {
                    let (mut qdot, mut rdot) = (0i32, 0i32);
                    for c in 4 * h..4 * h + 4 {
                        for j in 0..4 {
                            let w = i32::from(u[c * 4 * ROWS + 4 * r + j]);
                            qdot += w * i32::from(a.q[at + 4 * c + j]);
                            rdot += w * i32::from(a.r[at + 4 * c + j]);
                        }
                    }
                    let q = qdot - centre * a.half_qsum[2 * ab + h];
                    let r_ = rdot - centre * a.half_rsum[2 * ab + h];
                    t += dec.s[b * 2 * ROWS + h * ROWS + r] * steps(a, q, r_);
                }
                *acc += t.mul_add(a.d[ab], dec.m[b * ROWS + r] * a.sum[ab]);
            }
        }
        for (r, v) in acc.iter().enumerate().take(valid) {
            // SAFETY: as in `matmul_groups`.
            unsafe { *out.ptr.add(m * out.n + g * ROWS + r) = *v };
        }
    }
}

/// `q + r / RESIDUAL` in int8 steps, from the two stages' integer dot products (`q` alone when
/// the activations were quantised in one stage).
fn steps(a: &Quantized, q: i32, r: i32) -> f32 {
    if a.two_stage() {
        (r as f32).mul_add(1.0 / RESIDUAL, q as f32)
    } else {
        q as f32
    }
}

/// The little-endian IEEE half at `p[at..at + 2]`, as f32.
pub(super) fn f16(p: &[u8], at: usize) -> f32 {
    let h = u16::from_le_bytes([p[at], p[at + 1]]);
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1F);
    let frac = f32::from(h & 0x03FF);
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}
