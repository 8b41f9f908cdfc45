//! AVX-512 VNNI kernels: 16 output rows per register, `vpdpbusd` on (u8 weight, i8 activation).
//!
//! For each group of 16 rows, the rows of `a` are taken up to four at a time, so a weight chunk
//! that has been loaded and unpacked serves four activation rows (batched decoding and prompts)
//! and the group's bytes stay in L1 while all rows of `a` pass.
#![cfg(target_arch = "x86_64")]

use std::{arch::x86_64::*, ops::Range};

use super::{
    BLOCK, Format, Out, Packed, Quantized, ROWS,
    quantize::{
        EXP_RANGE, EXP_TAYLOR, GELU_CUBIC, Gate, LN2_HI, LN2_LO, RESIDUAL, RowOut, SQRT_2_OVER_PI,
    },
};

/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `groups` within `w`, `a` and `out` sized to match
/// (checked by the caller).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn matmul_groups(w: &Packed<'_>, a: &Quantized, groups: Range<usize>, out: Out) {
    let kb = w.k / BLOCK;
    for g in groups {
        // SAFETY (whole body): the group lies within `w.data` (g < groups), every block read
        // below is within the group, activation reads are within row `m` of `a` (k = w.k), and
        // stores are masked to this group's valid columns of rows < out.rows.
        let wg = unsafe { w.data.as_ptr().add(g * w.group_bytes()) };
        let valid = ROWS.min(w.n - g * ROWS);
        let mask: __mmask16 = if valid == ROWS {
            0xFFFF
        } else {
            (1u16 << valid) - 1
        };
        let mut m = 0;
        let rows = a.rows();
        while m < rows {
            let take = (rows - m).min(4);
            unsafe {
                match (w.format, a.two_stage(), take) {
                    (Format::Q4_1, true, 4) => q4_1::<4, true>(wg, kb, a, m, g, mask, out),
                    (Format::Q4_1, true, 3) => q4_1::<3, true>(wg, kb, a, m, g, mask, out),
                    (Format::Q4_1, true, 2) => q4_1::<2, true>(wg, kb, a, m, g, mask, out),
                    (Format::Q4_1, true, _) => q4_1::<1, true>(wg, kb, a, m, g, mask, out),
                    (Format::Q4_1, false, 4) => q4_1::<4, false>(wg, kb, a, m, g, mask, out),
                    (Format::Q4_1, false, 3) => q4_1::<3, false>(wg, kb, a, m, g, mask, out),
                    (Format::Q4_1, false, 2) => q4_1::<2, false>(wg, kb, a, m, g, mask, out),
                    (Format::Q4_1, false, _) => q4_1::<1, false>(wg, kb, a, m, g, mask, out),
                    (Format::Q8_0, true, 4) => q8_0::<4, true>(wg, kb, a, m, g, mask, out),
                    (Format::Q8_0, true, 3) => q8_0::<3, true>(wg, kb, a, m, g, mask, out),
                    (Format::Q8_0, true, 2) => q8_0::<2, true>(wg, kb, a, m, g, mask, out),
                    (Format::Q8_0, true, _) => q8_0::<1, true>(wg, kb, a, m, g, mask, out),
                    (Format::Q8_0, false, 4) => q8_0::<4, false>(wg, kb, a, m, g, mask, out),
                    (Format::Q8_0, false, 3) => q8_0::<3, false>(wg, kb, a, m, g, mask, out),
                    (Format::Q8_0, false, 2) => q8_0::<2, false>(wg, kb, a, m, g, mask, out),
                    (Format::Q8_0, false, _) => q8_0::<1, false>(wg, kb, a, m, g, mask, out),
                    _ => unreachable!("{:?} is read by `avx512_packed`", w.format),
                }
            }
            m += take;
        }
    }
}

/// Rows `m0..m0 + MB` of `a` times one Q4_1 group.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q4_1<const MB: usize, const R: bool>(
    wg: *const u8,
    kb: usize,
    a: &Quantized,
    m0: usize,
    g: usize,
    mask: __mmask16,
    out: Out,
) {
    let low = _mm512_set1_epi8(0x0F);
    let step = _mm512_set1_ps(1.0 / RESIDUAL);
    let mut acc = [_mm512_setzero_ps(); MB];
    let k = kb * BLOCK;
    for b in 0..kb {
        unsafe {
            let p = wg.add(b * 320);
            // Four independent sums per row (stage x nibble), so the dot products' latency
            // overlaps instead of forming one chain.
            let mut qdot = [[_mm512_setzero_si512(); 2]; MB];
            let mut rdot = [[_mm512_setzero_si512(); 2]; MB];
            for c in 0..4 {
                let z = _mm512_loadu_si512(p.add(64 * c).cast());
                let lo = _mm512_and_si512(z, low);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(z), low);
                for r in 0..MB {
                    let at = (m0 + r) * k + b * BLOCK;
                    let qa = a.q.as_ptr().add(at).cast::<i32>();
                    let ra = a.r.as_ptr().add(at).cast::<i32>();
                    qdot[r][0] = dot(qdot[r][0], lo, qa.add(c));
                    qdot[r][1] = dot(qdot[r][1], hi, qa.add(4 + c));
                    if R {
                        rdot[r][0] = dot(rdot[r][0], lo, ra.add(c));
                        rdot[r][1] = dot(rdot[r][1], hi, ra.add(4 + c));
                    }
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(256).cast()));
            let mn = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(288).cast()));
            for r in 0..MB {
                let i = (m0 + r) * kb + b;
                let steps = steps::<R>(qdot[r], rdot[r], step);
                // d * (x·(q - 8) + 8·sum) + m·sum, the centring folded into one constant per
                // activation block (`Quantized::centre_q4_1`).
                let u = _mm512_fmadd_ps(
                    steps,
                    _mm512_set1_ps(*a.d.get_unchecked(i)),
                    _mm512_set1_ps(*a.centre_q4_1.get_unchecked(i)),
                );
                acc[r] = _mm512_fmadd_ps(d, u, acc[r]);
                acc[r] = _mm512_fmadd_ps(mn, _mm512_set1_ps(*a.sum.get_unchecked(i)), acc[r]);
            }
        }
    }
    // SAFETY: rows m0..m0 + MB of `out`, this group's valid columns (the caller's bounds).
    unsafe { store(&acc, out, m0, g, mask) };
}

/// Rows `m0..m0 + MB` of `a` times one Q8_0 group.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q8_0<const MB: usize, const R: bool>(
    wg: *const u8,
    kb: usize,
    a: &Quantized,
    m0: usize,
    g: usize,
    mask: __mmask16,
    out: Out,
) {
    let step = _mm512_set1_ps(1.0 / RESIDUAL);
    let mut acc = [_mm512_setzero_ps(); MB];
    let k = kb * BLOCK;
    for b in 0..kb {
        unsafe {
            let p = wg.add(b * 544);
            let mut qdot = [[_mm512_setzero_si512(); 2]; MB];
            let mut rdot = [[_mm512_setzero_si512(); 2]; MB];
            for s in 0..8 {
                let z = _mm512_loadu_si512(p.add(64 * s).cast());
                for r in 0..MB {
                    let at = (m0 + r) * k + b * BLOCK;
                    let qa = a.q.as_ptr().add(at).cast::<i32>();
                    qdot[r][s % 2] = dot(qdot[r][s % 2], z, qa.add(s));
                    if R {
                        let ra = a.r.as_ptr().add(at).cast::<i32>();
                        rdot[r][s % 2] = dot(rdot[r][s % 2], z, ra.add(s));
                    }
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(512).cast()));
            for r in 0..MB {
                let i = (m0 + r) * kb + b;
                let steps = steps::<R>(qdot[r], rdot[r], step);
                // The weights are stored as q + 128 (unsigned for vpdpbusd): the constant
                // `Quantized::offset_q8_0` takes the 128s off.
                let u = _mm512_fmadd_ps(
                    steps,
                    _mm512_set1_ps(*a.d.get_unchecked(i)),
                    _mm512_set1_ps(*a.offset_q8_0.get_unchecked(i)),
                );
                acc[r] = _mm512_fmadd_ps(d, u, acc[r]);
            }
        }
    }
    // SAFETY: rows m0..m0 + MB of `out`, this group's valid columns (the caller's bounds).
    unsafe { store(&acc, out, m0, g, mask) };
}

/// Writes the accumulators of rows `m0..m0 + MB` into group `g`'s columns of `out`.
///
/// # Safety
/// AVX-512 F; those rows and the columns `mask` selects lie within `out`.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn store<const MB: usize>(
    acc: &[__m512; MB],
    out: Out,
    m0: usize,
    g: usize,
    mask: __mmask16,
) {
    for (r, v) in acc.iter().enumerate() {
        unsafe { _mm512_mask_storeu_ps(out.ptr.add((m0 + r) * out.n + g * ROWS), mask, *v) };
    }
}

/// `acc + dot4(w, a)` per lane: `w` 16 rows x 4 unsigned bytes, `a` four int8 activations
/// (read from `at`) broadcast to every row.
///
/// # Safety
/// AVX-512 VNNI; `at` readable for 4 bytes.
#[target_feature(enable = "avx512f,avx512vnni")]
#[inline]
pub(super) unsafe fn dot(acc: __m512i, w: __m512i, at: *const i32) -> __m512i {
    _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(unsafe { at.read_unaligned() }))
}

/// `q + r / RESIDUAL` in int8 steps, from the integer dot products of the two stages (of the
/// first alone when `R` is false), each held as two partial sums.
#[target_feature(enable = "avx512f")]
#[inline]
fn steps<const R: bool>(q: [__m512i; 2], r: [__m512i; 2], step: __m512) -> __m512 {
    let q = _mm512_cvtepi32_ps(_mm512_add_epi32(q[0], q[1]));
    if R {
        let r = _mm512_cvtepi32_ps(_mm512_add_epi32(r[0], r[1]));
        _mm512_fmadd_ps(r, step, q)
    } else {
        q
    }
}

/// Quantises one row (see `quantize::Part::quantize_row`): `x` is `k` wide, or `2k` (gate | up)
/// with a `gate`; `scratch` holds `k` floats.
///
/// # Safety
/// The CPU must have AVX-512 F and BW; `k` a multiple of 32; `out`'s `q` and `res` `k` long, its
/// `d`, `sum`, `qsum` and `rsum` `k/32` long; `x` and `scratch` as above (checked by the caller).
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn quantize_row(
    x: &[f32],
    gate: Option<Gate>,
    scratch: &mut [f32],
    out: RowOut<'_>,
) {
    let k = out.q.len();
    let row: &[f32] = if let Some(gate) = gate {
        let (gates, up) = x.split_at(k);
        let one = _mm512_set1_ps(1.0);
        for i in (0..k).step_by(16) {
            // SAFETY: i + 16 <= k, the length of gates, up and scratch.
            unsafe {
                let g = _mm512_loadu_ps(gates.as_ptr().add(i));
                let u = _mm512_loadu_ps(up.as_ptr().add(i));
                // Both are g * sigmoid(z): SiLU's z = g; GELU's tanh form, 0.5 g (1 + tanh(y)),
                // is g * sigmoid(2y), y = sqrt(2/pi) (g + 0.044715 g^3).
                let z = match gate {
                    Gate::Silu => g,
                    Gate::Gelu => {
                        let g2 = _mm512_mul_ps(g, g);
                        let y =
                            _mm512_mul_ps(g, _mm512_fmadd_ps(g2, _mm512_set1_ps(GELU_CUBIC), one));
                        _mm512_mul_ps(y, _mm512_set1_ps(2.0 * SQRT_2_OVER_PI))
                    }
                };
                let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), z));
                let gated = _mm512_div_ps(g, _mm512_add_ps(one, e));
                _mm512_storeu_ps(scratch.as_mut_ptr().add(i), _mm512_mul_ps(gated, u));
            }
        }
        scratch
    } else {
        x
    };
    let sign = _mm512_set1_ps(-0.0);
    for b in 0..k / BLOCK {
        // SAFETY: block b lies within `row` (k wide) and `q`; `d`, `sum`, `qsum` have k/32 entries.
        unsafe {
            let v0 = _mm512_loadu_ps(row.as_ptr().add(b * BLOCK));
            let v1 = _mm512_loadu_ps(row.as_ptr().add(b * BLOCK + 16));
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(
                _mm512_andnot_ps(sign, v0),
                _mm512_andnot_ps(sign, v1),
            ));
            let (scale, inv) = if amax > 0.0 {
                (amax / 127.0, 127.0 / amax)
            } else {
                (0.0, 0.0)
            };
            let inv = _mm512_set1_ps(inv);
            let residual = _mm512_set1_ps(RESIDUAL);
            let mut qs = _mm512_setzero_si512();
            let mut rs = _mm512_setzero_si512();
            for (h, v) in [v0, v1].into_iter().enumerate() {
                // Round to nearest even (the default rounding mode), as the portable path does.
                let t = _mm512_mul_ps(v, inv);
                let qi = _mm512_cvtps_epi32(t);
                let ri = _mm512_cvtps_epi32(_mm512_mul_ps(
                    _mm512_sub_ps(t, _mm512_cvtepi32_ps(qi)),
                    residual,
                ));
                let at = b * BLOCK + 16 * h;
                _mm_storeu_si128(out.q.as_mut_ptr().add(at).cast(), _mm512_cvtsepi32_epi8(qi));
                _mm_storeu_si128(
                    out.res.as_mut_ptr().add(at).cast(),
                    _mm512_cvtsepi32_epi8(ri),
                );
                qs = _mm512_add_epi32(qs, qi);
                rs = _mm512_add_epi32(rs, ri);
            }
            *out.d.get_unchecked_mut(b) = scale;
            *out.sum.get_unchecked_mut(b) = _mm512_reduce_add_ps(_mm512_add_ps(v0, v1));
            *out.qsum.get_unchecked_mut(b) = _mm512_reduce_add_epi32(qs);
            *out.rsum.get_unchecked_mut(b) = _mm512_reduce_add_epi32(rs);
        }
    }
}

/// `e^x` per lane, to a few ulp: `2^n * p(r)` with `x = n ln2 + r`, `|r| <= ln2/2`, and `p` the
/// degree-6 Taylor polynomial (error below 4e-7 relative).
#[target_feature(enable = "avx512f")]
fn exp(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(EXP_RANGE.0)),
        _mm512_set1_ps(EXP_RANGE.1),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    // ln 2 in two parts, so n * ln2 is subtracted without losing r's low bits.
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_TAYLOR[0]);
    for c in EXP_TAYLOR[1..].iter().copied() {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}
