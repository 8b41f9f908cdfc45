//! AVX-512 VNNI kernels for the decoded formats (`kernels::decode`) that read the weights' packed
//! bytes directly: each 64-byte chunk of unsigned weights is unpacked in registers right before
//! its dot products, so a token reads the GGUF's bytes once and writes nothing back. The K-quants'
//! 6-bit scales and minimums of a group are unpacked ahead ([`scales`], into the [`Decoded`]
//! scratch, 16 rows per register); Q4_0/Q5_0/Q5_1's halves are read from each block as it passes.
//! The products and sums are those of the other formats' decoded kernels (`w = s(u - centre) + m`).
//!
//! With more than four activation rows (batched decoding, prompts) each chunk would be unpacked
//! once per four rows; there the group is unpacked once into the scratch instead, with the same
//! code, and every row reads it from there.
//!
//! Unpacking a chunk (16 rows x 4 inputs) from the stored layout (`decode`'s module docs):
//!
//! * Q4_0, Q5_0, Q5_1: chunk `c` is the low (c < 4) or high nibbles of word `c % 4`; the fifth
//!   bits of inputs `4c..4c + 4` are bits `4(c % 2)..` of byte `c / 2` of each row's `qh`,
//!   broadcast to the row's four bytes (`vpshufb`) and tested into a byte mask (`vptestmb`).
//! * Q4_K: block `j` of a super-block is the low (even `j`) or high nibbles of words `(j / 2)`.
//! * Q5_K: the same, the fifth bit bit `j` of the `qh` word of the same chunk.
//! * Q6_K: block `j = 4n + t` is nibble `t / 2` of the `ql` words `2n + t % 2`, its two high bits
//!   bits `2t..2t + 2` of the `qh` words `n`.
#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::{
    BLOCK, Format, Out, Packed, Quantized, ROWS,
    avx512::{dot, store},
    decode::{Decoded, U_BYTES},
    quantize::RESIDUAL,
};

// The formats as const parameters of the kernel.
const Q4_0: u8 = 0;
const Q5_0: u8 = 1;
const Q5_1: u8 = 2;
const Q4_K: u8 = 3;
const Q5_K: u8 = 4;
const Q6_K: u8 = 5;

/// Fills `dec`'s scales and minimums (not its weights) for `group`, the stored bytes of one
/// group of a K-quant `format`: the same values `Decoded::decode` computes, 16 rows at a time.
/// (The kernel reads the other formats' scales, one half per row, straight from each block.)
///
/// # Safety
/// The CPU must have AVX-512 F and BW; `dec` sized for the group (`Decoded::size`).
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn scales(dec: &mut Decoded, format: Format, group: &[u8]) {
    let per = format.group_block_bytes();
    let sub = format.block_inputs() / BLOCK;
    assert!(
        dec.s.len() >= group.len() / per * sub * 2 * ROWS,
        "scratch sized for the group"
    );
    assert!(
        dec.m.len() >= group.len() / per * sub * ROWS,
        "scratch sized for the group"
    );
    for (sb, src) in group.chunks_exact(per).enumerate() {
        // SAFETY: `src` is one stored block of `format` (`per` bytes), every read below lies
        // within it; the writes are blocks sb*sub.. of the scratch, sized above.
        unsafe {
            let p = src.as_ptr();
            let s = dec.s.as_mut_ptr().add(sb * sub * 2 * ROWS);
            let m = dec.m.as_mut_ptr().add(sb * sub * ROWS);
            let half16 = |at: usize| _mm512_cvtph_ps(_mm256_loadu_si256(p.add(at).cast()));
            match format {
                // Read by the kernel from the block itself (`block_scales`).
                Format::Q4_0 | Format::Q5_0 | Format::Q5_1 => return,
                Format::Q4_K | Format::Q5_K => {
                    let five = format == Format::Q5_K;
                    let at = if five { 5 * U_BYTES } else { 4 * U_BYTES };
                    let (d, dmin) = (half16(at), half16(at + 2 * ROWS));
                    // Each row's 12 scale bytes, as three words per row (gathered).
                    let rows12 = _mm512_mullo_epi32(
                        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                        _mm512_set1_epi32(12),
                    );
                    let base = p.add(at + 4 * ROWS);
                    let words = [
                        _mm512_i32gather_epi32::<1>(rows12, base.cast()),
                        _mm512_i32gather_epi32::<1>(rows12, base.add(4).cast()),
                        _mm512_i32gather_epi32::<1>(rows12, base.add(8).cast()),
                    ];
                    let byte = |i: usize| {
                        _mm512_and_si512(
                            _mm512_srlv_epi32(words[i / 4], _mm512_set1_epi32(8 * (i as i32 % 4))),
                            _mm512_set1_epi32(0xFF),
                        )
                    };
                    let centre = _mm512_set1_ps(if five { 16.0 } else { 8.0 });
                    let neg_dmin = _mm512_sub_ps(_mm512_setzero_ps(), dmin);
                    let six = _mm512_set1_epi32(63);
                    let four = _mm512_set1_epi32(0x0F);
                    for j in 0..8 {
                        // GGML's `get_scale_min_k4`, lane-wise.
                        let (sc, mn) = if j < 4 {
                            (
                                _mm512_and_si512(byte(j), six),
                                _mm512_and_si512(byte(j + 4), six),
                            )
                        } else {
                            let top =
                                |x: __m512i| _mm512_slli_epi32::<4>(_mm512_srli_epi32::<6>(x));
                            (
                                _mm512_or_si512(
                                    _mm512_and_si512(byte(j + 4), four),
                                    top(byte(j - 4)),
                                ),
                                _mm512_or_si512(_mm512_srli_epi32::<4>(byte(j + 4)), top(byte(j))),
                            )
                        };
                        let scale = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
                        _mm512_storeu_ps(s.add(j * 2 * ROWS), scale);
                        _mm512_storeu_ps(s.add(j * 2 * ROWS + ROWS), scale);
                        let minimum = _mm512_mul_ps(neg_dmin, _mm512_cvtepi32_ps(mn));
                        _mm512_storeu_ps(m.add(j * ROWS), _mm512_fmadd_ps(centre, scale, minimum));
                    }
                }
                Format::Q6_K => {
                    let at = 6 * U_BYTES;
                    let d = half16(at + 16 * ROWS);
                    let rows16 = _mm512_slli_epi32::<4>(_mm512_setr_epi32(
                        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                    ));
                    for q in 0..4 {
                        let word = _mm512_i32gather_epi32::<1>(rows16, p.add(at + 4 * q).cast());
                        for b in 0..4 {
                            // Byte b of the word, sign-extended (the scales are int8).
                            let sc = _mm512_srai_epi32::<24>(_mm512_sllv_epi32(
                                word,
                                _mm512_set1_epi32(24 - 8 * b as i32),
                            ));
                            let i = 4 * q + b;
                            _mm512_storeu_ps(
                                s.add(i * ROWS),
                                _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc)),
                            );
                        }
                    }
                    for j in 0..sub {
                        _mm512_storeu_ps(m.add(j * ROWS), _mm512_setzero_ps());
                    }
                }
                Format::Q4_1 | Format::Q8_0 => unreachable!("{format:?} is read packed"),
            }
        }
    }
}

/// All rows of `a` times group `g` of `w` (a decoded format), its scales already in `dec`.
///
/// # Safety
/// AVX-512 F, BW and VNNI; `g` a group of `w`, `a` and `out` sized to match (`a.k() == w.k`),
/// `dec` holding group `g`'s scales ([`scales`]), `valid` its columns within `out`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn packed_group(
    w: &Packed<'_>,
    dec: &mut Decoded,
    a: &Quantized,
    g: usize,
    valid: usize,
    out: Out,
) {
    // SAFETY: the caller's bounds.
    unsafe {
        match w.format {
            Format::Q4_0 => one_format::<Q4_0>(w, dec, a, g, valid, out),
            Format::Q5_0 => one_format::<Q5_0>(w, dec, a, g, valid, out),
            Format::Q5_1 => one_format::<Q5_1>(w, dec, a, g, valid, out),
            Format::Q4_K => one_format::<Q4_K>(w, dec, a, g, valid, out),
            Format::Q5_K => one_format::<Q5_K>(w, dec, a, g, valid, out),
            Format::Q6_K => one_format::<Q6_K>(w, dec, a, g, valid, out),
            Format::Q4_1 | Format::Q8_0 => unreachable!("{:?} has its own kernel", w.format),
        }
    }
}

/// [`packed_group`] for one format. With more than one tile of activation rows (batched decoding,
/// prompts) the group is unpacked once into `dec.u` and every tile reads it from there: past four
/// rows that costs less than unpacking each chunk once per tile.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn one_format<const F: u8>(
    w: &Packed<'_>,
    dec: &mut Decoded,
    a: &Quantized,
    g: usize,
    valid: usize,
    out: Out,
) {
    // SAFETY: group g lies within `w.data` (the caller's bounds).
    let wg = unsafe { w.data.as_ptr().add(g * w.group_bytes()) };
    if a.rows() > TILE {
        dec.u.resize(dec.blocks * U_BYTES, 0);
        for b in 0..dec.blocks {
            // SAFETY: block b of the group; its 512 bytes of `u` lie within the resized scratch.
            unsafe {
                let blk = block::<F>(wg, b);
                let u = dec.u.as_mut_ptr().add(b * U_BYTES);
                for c in 0..8 {
                    _mm512_storeu_si512(u.add(64 * c).cast(), chunk::<F>(&blk, c));
                }
            }
        }
        // SAFETY: `dec.u` now holds the group's weights.
        unsafe { tiles::<F, true>(wg, dec, a, g, valid, out) }
    } else {
        // SAFETY: the caller's bounds.
        unsafe { tiles::<F, false>(wg, dec, a, g, valid, out) }
    }
}

/// Activation rows a kernel takes at once.
const TILE: usize = 4;

/// The activation rows [`TILE`] at a time, the weights read from `wg` or (`UNPACKED`) `dec.u`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tiles<const F: u8, const UNPACKED: bool>(
    wg: *const u8,
    dec: &Decoded,
    a: &Quantized,
    g: usize,
    valid: usize,
    out: Out,
) {
    let mask: __mmask16 = if valid == ROWS {
        0xFFFF
    } else {
        (1u16 << valid) - 1
    };
    let rows = a.rows();
    let mut m = 0;
    while m < rows {
        let take = (rows - m).min(TILE);
        // SAFETY: the caller's bounds, for rows m..m + take.
        unsafe {
            match (a.two_stage(), take) {
                (true, 4) => kernel::<4, true, F, UNPACKED>(wg, dec, a, m, g, mask, out),
                (true, 3) => kernel::<3, true, F, UNPACKED>(wg, dec, a, m, g, mask, out),
                (true, 2) => kernel::<2, true, F, UNPACKED>(wg, dec, a, m, g, mask, out),
                (true, _) => kernel::<1, true, F, UNPACKED>(wg, dec, a, m, g, mask, out),
                (false, 4) => kernel::<4, false, F, UNPACKED>(wg, dec, a, m, g, mask, out),
                (false, 3) => kernel::<3, false, F, UNPACKED>(wg, dec, a, m, g, mask, out),
                (false, 2) => kernel::<2, false, F, UNPACKED>(wg, dec, a, m, g, mask, out),
                (false, _) => kernel::<1, false, F, UNPACKED>(wg, dec, a, m, g, mask, out),
            }
        }
        m += take;
    }
}

/// Stored bytes of one block of 16 rows (32 inputs, or 256 for the K-quants).
const fn block_bytes(f: u8) -> usize {
    match f {
        Q4_0 => 18 * ROWS,
        Q5_0 => 22 * ROWS,
        Q5_1 => 24 * ROWS,
        Q4_K => 144 * ROWS,
        Q5_K => 176 * ROWS,
        _ => 210 * ROWS,
    }
}

/// Where block `b`'s weights lie and how they unpack (see the module docs).
struct Block {
    /// The 4-bit words: `qs`, or Q6_K's `ql`.
    low: *const u8,
    /// The high-bit words (Q5_K, Q6_K).
    high: *const u8,
    /// The shift that brings this block's nibble down.
    shift: __m128i,
    /// Q6_K: the shift that brings this block's two high bits down.
    high_shift: __m128i,
    /// Q5_K: this block's bit in the `qh` bytes.
    bit: __m512i,
    /// Q4_0/Q5_0/Q5_1: the 16 rows' `qh` (a row per 32-bit lane).
    qh: __m512i,
}

/// # Safety
/// AVX-512 F; `wg` a group of format `F` with more than `b` blocks of 32 inputs.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block<const F: u8>(wg: *const u8, b: usize) -> Block {
    let (sb, j) = if matches!(F, Q4_K | Q5_K | Q6_K) {
        (b / 8, b % 8)
    } else {
        (b, 0)
    };
    // SAFETY: every pointer is within block sb of the group (the caller's bounds).
    unsafe {
        let base = wg.add(sb * block_bytes(F));
        let count = |n: usize| _mm_cvtsi32_si128(n as i32);
        match F {
            Q4_0 | Q5_0 | Q5_1 => Block {
                low: base,
                high: base,
                shift: count(0),
                high_shift: count(0),
                bit: _mm512_setzero_si512(),
                qh: if F == Q4_0 {
                    _mm512_setzero_si512()
                } else {
                    _mm512_loadu_si512(base.add(256).cast())
                },
            },
            Q4_K | Q5_K => Block {
                low: base.add((j / 2) * U_BYTES),
                high: base.add(4 * U_BYTES),
                shift: count(4 * (j % 2)),
                high_shift: count(0),
                bit: _mm512_set1_epi8(1 << j),
                qh: _mm512_setzero_si512(),
            },
            _ => {
                let (n, t) = (j / 4, j % 4);
                Block {
                    low: base.add((2 * n + t % 2) * U_BYTES),
                    high: base.add((4 + n) * U_BYTES),
                    shift: count(4 * (t / 2)),
                    high_shift: count(2 * t),
                    bit: _mm512_setzero_si512(),
                    qh: _mm512_setzero_si512(),
                }
            }
        }
    }
}

/// Chunk `c` (inputs `4c..4c + 4` of all 16 rows) of a block's unsigned weights.
///
/// # Safety
/// AVX-512 F and BW; `blk` from [`block`] over a valid group.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn chunk<const F: u8>(blk: &Block, c: usize) -> __m512i {
    let low = _mm512_set1_epi8(0x0F);
    // SAFETY: the chunk's words lie within the block (`block`'s bounds).
    unsafe {
        match F {
            Q4_0 | Q5_0 | Q5_1 => {
                let z = _mm512_loadu_si512(blk.low.add(64 * (c % 4)).cast());
                let nibble = if c < 4 {
                    _mm512_and_si512(z, low)
                } else {
                    _mm512_and_si512(_mm512_srli_epi16::<4>(z), low)
                };
                if F == Q4_0 {
                    return nibble;
                }
                // Byte c/2 of each row's qh into all four of the row's bytes, then byte j of
                // the row tested against bit 4(c % 2) + j: the fifth bits of inputs 4c + j.
                let select = _mm512_add_epi8(
                    _mm512_broadcast_i32x4(_mm_setr_epi32(
                        0,
                        0x0404_0404,
                        0x0808_0808,
                        0x0C0C_0C0C,
                    )),
                    _mm512_set1_epi8((c / 2) as i8),
                );
                let bits = _mm512_set1_epi32(if c.is_multiple_of(2) {
                    0x0804_0201
                } else {
                    0x8040_2010u32 as i32
                });
                let fifth = _mm512_test_epi8_mask(_mm512_shuffle_epi8(blk.qh, select), bits);
                _mm512_mask_add_epi8(nibble, fifth, nibble, _mm512_set1_epi8(16))
            }
            Q4_K | Q5_K => {
                let z = _mm512_loadu_si512(blk.low.add(64 * c).cast());
                let nibble = _mm512_and_si512(_mm512_srl_epi16(z, blk.shift), low);
                if F == Q4_K {
                    return nibble;
                }
                let qh = _mm512_loadu_si512(blk.high.add(64 * c).cast());
                let fifth = _mm512_test_epi8_mask(qh, blk.bit);
                _mm512_mask_add_epi8(nibble, fifth, nibble, _mm512_set1_epi8(16))
            }
            _ => {
                let z = _mm512_loadu_si512(blk.low.add(64 * c).cast());
                let nibble = _mm512_and_si512(_mm512_srl_epi16(z, blk.shift), low);
                let qh = _mm512_loadu_si512(blk.high.add(64 * c).cast());
                let two =
                    _mm512_and_si512(_mm512_srl_epi16(qh, blk.high_shift), _mm512_set1_epi8(3));
                _mm512_or_si512(nibble, _mm512_slli_epi16::<4>(two))
            }
        }
    }
}

/// Block `b`'s scales per half and its term against the activations' sum: Q4_0/Q5_0/Q5_1's from
/// the block (a half per row; Q5_1's `m + 16d`), the K-quants' from `dec` ([`scales`]).
///
/// # Safety
/// AVX-512 F; block `b` within the group at `wg` and, for the K-quants, within `dec`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block_scales<const F: u8>(
    wg: *const u8,
    dec: &Decoded,
    b: usize,
) -> ([__m512; 2], __m512) {
    // SAFETY: the caller's bounds.
    unsafe {
        if matches!(F, Q4_0 | Q5_0 | Q5_1) {
            let p = wg.add(b * block_bytes(F) + if F == Q4_0 { 256 } else { 320 });
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
            let mn = if F == Q5_1 {
                let min = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(2 * ROWS).cast()));
                _mm512_fmadd_ps(_mm512_set1_ps(16.0), d, min)
            } else {
                _mm512_setzero_ps()
            };
            ([d, d], mn)
        } else {
            let s = dec.s.as_ptr().add(b * 2 * ROWS);
            let mn = _mm512_loadu_ps(dec.m.as_ptr().add(b * ROWS));
            ([_mm512_loadu_ps(s), _mm512_loadu_ps(s.add(ROWS))], mn)
        }
    }
}

/// Rows `m0..m0 + MB` of `a` times one group of format `F`, read packed (or from `dec.u` where
/// [`one_format`] unpacked it): per block,
/// `da * (s0 * t0 + s1 * t1) + m * sum` as `avx512::decoded` computes it.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const MB: usize, const R: bool, const F: u8, const UNPACKED: bool>(
    wg: *const u8,
    dec: &Decoded,
    a: &Quantized,
    m0: usize,
    g: usize,
    mask: __mmask16,
    out: Out,
) {
    let kb = dec.blocks;
    let k = kb * BLOCK;
    let step = _mm512_set1_ps(1.0 / RESIDUAL);
    let centre = dec.centre as f32;
    let mut acc = [_mm512_setzero_ps(); MB];
    for b in 0..kb {
        // SAFETY: block b < dec.blocks lies within the group and `dec`'s buffers; activation
        // reads stay in rows m0..m0 + MB of `a` (k inputs each).
        unsafe {
            let blk = block::<F>(wg, b);
            let mut qdot = [[_mm512_setzero_si512(); 2]; MB];
            let mut rdot = [[_mm512_setzero_si512(); 2]; MB];
            for c in 0..8 {
                let z = if UNPACKED {
                    _mm512_loadu_si512(dec.u.as_ptr().add(b * U_BYTES + 64 * c).cast())
                } else {
                    chunk::<F>(&blk, c)
                };
                for r in 0..MB {
                    let at = (m0 + r) * k + b * BLOCK;
                    qdot[r][c / 4] =
                        dot(qdot[r][c / 4], z, a.q.as_ptr().add(at).cast::<i32>().add(c));
                    if R {
                        rdot[r][c / 4] =
                            dot(rdot[r][c / 4], z, a.r.as_ptr().add(at).cast::<i32>().add(c));
                    }
                }
            }
            let (scale, mn) = block_scales::<F>(wg, dec, b);
            for r in 0..MB {
                let i = (m0 + r) * kb + b;
                // Per scale: `d * dot - centre * quantised_sum` (the activations' sum, made once
                // per block), then times the scale into the accumulator.
                let d = _mm512_set1_ps(*a.d.get_unchecked(i));
                if F == Q6_K {
                    // A scale per half (Q6_K's cover 16 inputs): each half on its own.
                    for h in 0..2 {
                        let mut x = _mm512_cvtepi32_ps(qdot[r][h]);
                        if R {
                            x = _mm512_fmadd_ps(_mm512_cvtepi32_ps(rdot[r][h]), step, x);
                        }
                        let sum = *a.half_quantised_sum.get_unchecked(2 * i + h);
                        let x = _mm512_fmadd_ps(x, d, _mm512_set1_ps(-centre * sum));
                        acc[r] = _mm512_fmadd_ps(scale[h], x, acc[r]);
                    }
                } else {
                    // One scale for the block: the halves' integer sums add up first.
                    let mut x = _mm512_cvtepi32_ps(_mm512_add_epi32(qdot[r][0], qdot[r][1]));
                    if R {
                        let res = _mm512_add_epi32(rdot[r][0], rdot[r][1]);
                        x = _mm512_fmadd_ps(_mm512_cvtepi32_ps(res), step, x);
                    }
                    let sum = *a.quantised_sum.get_unchecked(i);
                    let x = _mm512_fmadd_ps(x, d, _mm512_set1_ps(-centre * sum));
                    acc[r] = _mm512_fmadd_ps(scale[0], x, acc[r]);
                }
                acc[r] = _mm512_fmadd_ps(mn, _mm512_set1_ps(*a.sum.get_unchecked(i)), acc[r]);
            }
        }
    }
    // SAFETY: rows m0..m0 + MB of `out`, this group's valid columns (the caller's bounds).
    unsafe { store(&acc, out, m0, g, mask) };
}
