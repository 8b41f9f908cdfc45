//! AVX2 kernels, for x86 CPUs without AVX-512 VNNI (Zen 2/3, most client Intel parts): the same
//! packed layout, each 64-byte chunk taken as two registers of 8 rows.
//!
//! Without `vpdpbusd`, a dot product of four bytes is `vpmaddubsw` (pairs into i16) then
//! `vpmaddwd` (pairs into i32). Q4_1 products are small enough (15 x 127) that a whole block's
//! pairs add up in i16 first (8 x 2 x 1905 < 32767), so each block needs one `vpmaddwd` per half
//! and stage. Q8_0 takes the signed weights back (`q = stored ^ 0x80`) and multiplies `|q|` by
//! `sign(q) * x`, as `vpmaddubsw` wants one operand unsigned; its pairs need i32 at once.
#![cfg(target_arch = "x86_64")]

use std::{arch::x86_64::*, ops::Range};

use super::{
    BLOCK, Format, Out, Packed, Quantized, ROWS, avx2_decode,
    decode::{Decoded, U_BYTES},
    quantize::{
        EXP_RANGE, EXP_TAYLOR, GELU_CUBIC, Gate, LN2_HI, LN2_LO, RESIDUAL, RowOut, SQRT_2_OVER_PI,
    },
};

/// # Safety
/// The CPU must have AVX2, FMA and F16C; `groups` within `w`, `a` and `out` sized to match
/// (checked by the caller).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn matmul_groups(w: &Packed<'_>, a: &Quantized, groups: Range<usize>, out: Out) {
    let kb = w.k / BLOCK;
    let mut widened: Vec<i16> = Vec::new();
    for g in groups {
        // SAFETY (whole body): the group lies within `w.data` (g < groups), every block read
        // below is within the group, activation reads are within row `m` of `a` (k = w.k), and
        // stores are limited to this group's valid columns of rows < out.rows.
        let wg = unsafe { w.data.as_ptr().add(g * w.group_bytes()) };
        let valid = ROWS.min(w.n - g * ROWS);
        let rows = a.rows();
        // Q8_0 against both stages for more than one tile of rows: the group's weights are
        // widened to i16 once, and every tile reads them widened (`q8_0_wide`'s `AHEAD`).
        let widen = w.format == Format::Q8_0 && a.two_stage() && rows > 2;
        if widen {
            widened.resize(kb * WIDE_BLOCK, 0);
            // SAFETY: the group holds kb blocks; `widened` was just sized for them.
            unsafe { widen_q8_0(wg, kb, widened.as_mut_ptr()) };
        }
        let mut m = 0;
        while m < rows {
            let take = tile_rows(rows - m, if widen { MAX_TILE } else { 2 });
            let ww = widened.as_ptr();
            let tile = unsafe {
                match (w.format, a.two_stage(), take) {
                    (Format::Q8_0, true, 3) if widen => q8_0_wide::<3, true>(wg, ww, kb, a, m),
                    (Format::Q8_0, true, 2) if widen => q8_0_wide::<2, true>(wg, ww, kb, a, m),
                    (Format::Q8_0, true, _) if widen => q8_0_wide::<1, true>(wg, ww, kb, a, m),
                    (Format::Q4_1, true, 2) => q4_1::<2, true>(wg, kb, a, m),
                    (Format::Q4_1, true, _) => q4_1::<1, true>(wg, kb, a, m),
                    (Format::Q4_1, false, 2) => q4_1::<2, false>(wg, kb, a, m),
                    (Format::Q4_1, false, _) => q4_1::<1, false>(wg, kb, a, m),
                    (Format::Q8_0, true, 2) => q8_0_wide::<2, false>(wg, ww, kb, a, m),
                    (Format::Q8_0, true, _) => q8_0_wide::<1, false>(wg, ww, kb, a, m),
                    (Format::Q8_0, false, 2) => q8_0::<2>(wg, kb, a, m),
                    (Format::Q8_0, false, _) => q8_0::<1>(wg, kb, a, m),
                    _ => unreachable!("{:?} is decoded first", w.format),
                }
            };
            for (r, row) in tile.iter().enumerate().take(take) {
                for (c, v) in row.iter().enumerate().take(valid) {
                    unsafe { *out.ptr.add((m + r) * out.n + g * ROWS + c) = *v };
                }
            }
            m += take;
        }
    }
}

/// Four int8 activations (read from `at`) in every 32-bit lane.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn broadcast(at: *const i32) -> __m256i {
    _mm256_set1_epi32(unsafe { at.read_unaligned() })
}

/// Rows `m0..m0 + MB` of `a` times one Q4_1 group: `[row][16 outputs]`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1<const MB: usize, const R: bool>(
    wg: *const u8,
    kb: usize,
    a: &Quantized,
    m0: usize,
) -> Tile {
    let low = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let step = _mm256_set1_ps(1.0 / RESIDUAL);
    let mut acc = [[_mm256_setzero_ps(); 2]; MB];
    let k = kb * BLOCK;
    for b in 0..kb {
        unsafe {
            let p = wg.add(b * 320);
            // Per row, half (rows 0-7, 8-15) and stage: the block's pair sums, in i16.
            let mut qs = [[_mm256_setzero_si256(); 2]; MB];
            let mut rs = [[_mm256_setzero_si256(); 2]; MB];
            for c in 0..4 {
                for h in 0..2 {
                    let z = _mm256_loadu_si256(p.add(64 * c + 32 * h).cast());
                    let lo = _mm256_and_si256(z, low);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(z), low);
                    for r in 0..MB {
                        let at = (m0 + r) * k + b * BLOCK;
                        let qa = a.q.as_ptr().add(at).cast::<i32>();
                        let q = _mm256_add_epi16(
                            _mm256_maddubs_epi16(lo, broadcast(qa.add(c))),
                            _mm256_maddubs_epi16(hi, broadcast(qa.add(4 + c))),
                        );
                        qs[r][h] = _mm256_add_epi16(qs[r][h], q);
                        if R {
                            let ra = a.r.as_ptr().add(at).cast::<i32>();
                            let s = _mm256_add_epi16(
                                _mm256_maddubs_epi16(lo, broadcast(ra.add(c))),
                                _mm256_maddubs_epi16(hi, broadcast(ra.add(4 + c))),
                            );
                            rs[r][h] = _mm256_add_epi16(rs[r][h], s);
                        }
                    }
                }
            }
            let half = |at: usize| _mm256_cvtph_ps(_mm_loadu_si128(p.add(at).cast()));
            let d = [half(256), half(272)];
            let mn = [half(288), half(304)];
            for r in 0..MB {
                let i = (m0 + r) * kb + b;
                let da = _mm256_set1_ps(*a.d.get_unchecked(i));
                let centre = _mm256_set1_ps(*a.centre_q4_1.get_unchecked(i));
                let sum = _mm256_set1_ps(*a.sum.get_unchecked(i));
                for h in 0..2 {
                    let mut t = _mm256_cvtepi32_ps(_mm256_madd_epi16(qs[r][h], ones));
                    if R {
                        let res = _mm256_cvtepi32_ps(_mm256_madd_epi16(rs[r][h], ones));
                        t = _mm256_fmadd_ps(res, step, t);
                    }
                    // As the AVX-512 kernel: d * (x·q * da + centre) + m * sum.
                    let u = _mm256_fmadd_ps(t, da, centre);
                    acc[r][h] = _mm256_fmadd_ps(d[h], u, acc[r][h]);
                    acc[r][h] = _mm256_fmadd_ps(mn[h], sum, acc[r][h]);
                }
            }
        }
    }
    spill(&acc)
}

/// Rows `m0..m0 + MB` of `a` times one Q8_0 group, one int8 stage: `[row][16 outputs]`.
// Indexed loops: the register tile is `[row][half]`, the weights loaded once per half.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0<const MB: usize>(wg: *const u8, kb: usize, a: &Quantized, m0: usize) -> Tile {
    let flip = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 2]; MB];
    let k = kb * BLOCK;
    for b in 0..kb {
        unsafe {
            let p = wg.add(b * 544);
            let mut qs = [[_mm256_setzero_si256(); 2]; MB];
            for s in 0..8 {
                for h in 0..2 {
                    // Stored as q + 128: back to signed q, then |q| (unsigned) times sign(q)*x.
                    let w =
                        _mm256_xor_si256(_mm256_loadu_si256(p.add(64 * s + 32 * h).cast()), flip);
                    let magnitude = _mm256_abs_epi8(w);
                    for r in 0..MB {
                        let at = (m0 + r) * k + b * BLOCK;
                        let qa = a.q.as_ptr().add(at).cast::<i32>();
                        let x = _mm256_sign_epi8(broadcast(qa.add(s)), w);
                        let pairs = _mm256_maddubs_epi16(magnitude, x);
                        qs[r][h] = _mm256_add_epi32(qs[r][h], _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
            let d = q8_0_scales(p);
            for r in 0..MB {
                let da = _mm256_set1_ps(*a.d.get_unchecked((m0 + r) * kb + b));
                for h in 0..2 {
                    // Signed weights here: no +128 to take off.
                    let t = _mm256_cvtepi32_ps(qs[r][h]);
                    acc[r][h] = _mm256_fmadd_ps(d[h], _mm256_mul_ps(t, da), acc[r][h]);
                }
            }
        }
    }
    spill(&acc)
}

/// Rows `m0..m0 + MB` of `a` times one Q8_0 group, both stages at once: the weights widened to
/// i16 against the activations' `q * RESIDUAL + r` (`Quantized::wide`), one `vpmaddwd` per 16
/// products where the two int8 stages take two `vpmaddubsw` and two `vpmaddwd` (and their
/// signs). The sums are the same integers: a block's stays within i32 (32 x 128 x 32,385).
///
/// `AHEAD`: the group was widened ahead into `ww` ([`widen_q8_0`]), so each chunk is two loads
/// instead of a load, two widenings and an extract on the one shuffle port, which every tile of
/// a batch repeated for the same weights (`ww` is not read otherwise).
// Indexed loops: the register tile is `[row][half]`, the weights loaded once per half.
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_wide<const MB: usize, const AHEAD: bool>(
    wg: *const u8,
    ww: *const i16,
    kb: usize,
    a: &Quantized,
    m0: usize,
) -> Tile {
    // `vphaddd` of rows 0-3 and 4-7 leaves them as 0 1 4 5 | 2 3 6 7.
    let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    let mut acc = [[_mm256_setzero_ps(); 2]; MB];
    let k = kb * BLOCK;
    for b in 0..kb {
        unsafe {
            let p = wg.add(b * 544);
            // [row][rows 0-7, 8-15][their rows 0-3, 4-7]: two partial sums per output.
            let mut sums = [[[_mm256_setzero_si256(); 2]; 2]; MB];
            for s in 0..8 {
                for h in 0..2 {
                    // Four inputs of 8 rows as signed i16 (stored as q + 128).
                    let (lo, hi) = if AHEAD {
                        let at = ww.add(b * WIDE_BLOCK + (2 * s + h) * 32);
                        (
                            _mm256_loadu_si256(at.cast()),
                            _mm256_loadu_si256(at.add(16).cast()),
                        )
                    } else {
                        widen_chunk(p.add(64 * s + 32 * h))
                    };
                    for r in 0..MB {
                        let at = (m0 + r) * k + b * BLOCK + 4 * s;
                        let x = _mm256_set1_epi64x(
                            a.wide.as_ptr().add(at).cast::<i64>().read_unaligned(),
                        );
                        let sum = &mut sums[r][h];
                        sum[0] = _mm256_add_epi32(sum[0], _mm256_madd_epi16(lo, x));
                        sum[1] = _mm256_add_epi32(sum[1], _mm256_madd_epi16(hi, x));
                    }
                }
            }
            let d = q8_0_scales(p);
            for r in 0..MB {
                let da = _mm256_set1_ps(*a.d.get_unchecked((m0 + r) * kb + b) / RESIDUAL);
                for h in 0..2 {
                    let [lo, hi] = sums[r][h];
                    let t = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(lo, hi), order);
                    let t = _mm256_cvtepi32_ps(t);
                    acc[r][h] = _mm256_fmadd_ps(d[h], _mm256_mul_ps(t, da), acc[r][h]);
                }
            }
        }
    }
    spill(&acc)
}

/// The i16 weights of one widened Q8_0 group-block: 16 rows x 32 inputs.
const WIDE_BLOCK: usize = ROWS * BLOCK;

/// Widens a Q8_0 group's weights (`kb` blocks at `wg`) to signed i16 at `ww`, as [`q8_0_wide`]
/// does chunk by chunk without `AHEAD`: per block, chunk `s` and half `h`, its rows 0-3 then
/// rows 4-7 (16 values each).
///
/// # Safety
/// AVX2; `wg` a Q8_0 group of `kb` blocks, `ww` room for `kb * WIDE_BLOCK` values.
#[target_feature(enable = "avx2")]
unsafe fn widen_q8_0(wg: *const u8, kb: usize, ww: *mut i16) {
    for b in 0..kb {
        for s in 0..8 {
            for h in 0..2 {
                // SAFETY: block b's chunk lies within the group; its 32 values within `ww`.
                unsafe {
                    let (lo, hi) = widen_chunk(wg.add(b * 544 + 64 * s + 32 * h));
                    let at = ww.add(b * WIDE_BLOCK + (2 * s + h) * 32);
                    _mm256_storeu_si256(at.cast(), lo);
                    _mm256_storeu_si256(at.add(16).cast(), hi);
                }
            }
        }
    }
}

/// The 32 stored bytes at `at` (four inputs of 8 rows, each `q + 128`) as signed i16: rows 0-3,
/// then rows 4-7.
///
/// # Safety
/// AVX2; 32 bytes readable at `at`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn widen_chunk(at: *const u8) -> (__m256i, __m256i) {
    // SAFETY: the caller's 32 bytes.
    let w = unsafe { _mm256_loadu_si256(at.cast()) };
    let w = _mm256_xor_si256(w, _mm256_set1_epi8(-128));
    (
        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w)),
        _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(w)),
    )
}

/// A Q8_0 group-block's 16 scales (after its 512 bytes of weights), rows 0-7 and 8-15.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn q8_0_scales(p: *const u8) -> [__m256; 2] {
    // SAFETY: the caller's block holds 544 bytes.
    unsafe {
        [
            _mm256_cvtph_ps(_mm_loadu_si128(p.add(512).cast())),
            _mm256_cvtph_ps(_mm_loadu_si128(p.add(528).cast())),
        ]
    }
}

/// All rows of `a` times one group unpacked in `dec` (`kernels::decode`).
///
/// # Safety
/// AVX2, FMA and F16C; `dec` holds a group of `a.k()` inputs, `g` and `valid` name its columns
/// within `out` (rows as `a`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn decoded_group(dec: &Decoded, a: &Quantized, g: usize, valid: usize, out: Out) {
    let rows = a.rows();
    let none = std::ptr::null();
    let mut m = 0;
    while m < rows {
        let take = (rows - m).min(MAX_DECODED_TILE);
        // SAFETY: the caller's bounds, for rows m..m + take; the scratch is read, not `none`.
        let tile = unsafe {
            match (a.two_stage(), take, dec.split) {
                (true, 2, true) => decoded::<2, true, true, SCRATCH>(dec, none, a, m),
                (true, _, true) => decoded::<1, true, true, SCRATCH>(dec, none, a, m),
                (false, 2, true) => decoded::<2, false, true, SCRATCH>(dec, none, a, m),
                (false, _, true) => decoded::<1, false, true, SCRATCH>(dec, none, a, m),
                (true, 2, false) => decoded::<2, true, false, SCRATCH>(dec, none, a, m),
                (true, _, false) => decoded::<1, true, false, SCRATCH>(dec, none, a, m),
                (false, 2, false) => decoded::<2, false, false, SCRATCH>(dec, none, a, m),
                (false, _, false) => decoded::<1, false, false, SCRATCH>(dec, none, a, m),
            }
        };
        // SAFETY: the caller's bounds.
        unsafe { store_tile(&tile, take, m, g, valid, out) };
        m += take;
    }
}

/// The rows of `a` (one tile: at most [`MAX_DECODED_TILE`]) times group `g` of `w` read as
/// stored, each chunk unpacked in registers right before its products (`avx2_decode::chunk`);
/// `dec` holds the group's scales alone (`Decoded::scales_avx2`). One tile reads each chunk
/// once either way, so unpacking the group into the scratch first only wrote it and read it
/// back.
///
/// # Safety
/// AVX2, FMA and F16C; `w` of a format that [`unpacks_in_registers`], `g` one of its groups,
/// `dec` its scales, `a` of `w.k` inputs and at most [`MAX_DECODED_TILE`] rows, `out` as
/// [`decoded_group`]'s.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn packed_group(
    w: &Packed<'_>,
    dec: &Decoded,
    a: &Quantized,
    g: usize,
    valid: usize,
    out: Out,
) {
    let rows = a.rows();
    assert!(rows <= MAX_DECODED_TILE, "one tile of rows, not {rows}");
    // SAFETY: the group lies within `w.data` (g < groups).
    let wg = unsafe { w.data.as_ptr().add(g * w.group_bytes()) };
    macro_rules! by_format {
        ($mb:literal, $r:literal) => {
            match w.format {
                Format::Q4_K => decoded::<$mb, $r, false, { code(Format::Q4_K) }>(dec, wg, a, 0),
                Format::Q6_K => decoded::<$mb, $r, true, { code(Format::Q6_K) }>(dec, wg, a, 0),
                Format::Q4_0
                | Format::Q5_0
                | Format::Q5_1
                | Format::Q5_K
                | Format::Q4_1
                | Format::Q8_0 => {
                    unreachable!("{:?} is not unpacked in registers on AVX2", w.format)
                }
            }
        };
    }
    // SAFETY: the caller's bounds; `wg` is the stored group the kernel unpacks.
    let tile = unsafe {
        match (a.two_stage(), rows) {
            (true, 2) => by_format!(2, true),
            (true, _) => by_format!(1, true),
            (false, 2) => by_format!(2, false),
            (false, _) => by_format!(1, false),
        }
    };
    // SAFETY: the caller's bounds.
    unsafe { store_tile(&tile, rows, 0, g, valid, out) };
}

/// Rows `m..m + take` of `out`, columns of group `g` (its first `valid`), from `tile`.
///
/// # Safety
/// Rows `m..m + take` within `out.rows`, the group's columns within `out.n`.
#[inline]
unsafe fn store_tile(tile: &Tile, take: usize, m: usize, g: usize, valid: usize, out: Out) {
    for (r, row) in tile.iter().enumerate().take(take) {
        for (c, v) in row.iter().enumerate().take(valid) {
            // SAFETY: row m + r < out.rows, column g*16 + c < n (c < valid).
            unsafe { *out.ptr.add((m + r) * out.n + g * ROWS + c) = *v };
        }
    }
}

/// Whether a single tile takes `format`'s chunks unpacked in registers ([`packed_group`]): the
/// K-quants of Q4_K_M files, Q4_K and Q6_K, whose one row ran 0.80-0.85x and 0.95x the time
/// through the scratch (`morpheus-worker model kernels --rows 1,2 --k 2048 --n 32768`). Q5_0's
/// and Q5_1's fifth bits take a shuffle per chunk, which cost more than the scratch's store and
/// load; Q4_0 and Q5_K came out even.
pub(super) const fn unpacks_in_registers(format: Format) -> bool {
    matches!(format, Format::Q4_K | Format::Q6_K)
}

/// The rows a decoded format's tile holds.
pub(super) const MAX_DECODED_TILE: usize = 2;

/// [`decoded`]'s weights from the scratch the group was unpacked into.
const SCRATCH: u8 = u8::MAX;

/// [`decoded`]'s weights from the stored group, unpacked chunk by chunk: a format's code.
const fn code(format: Format) -> u8 {
    format as u8
}

/// The format of a [`code`].
const fn format_of(code: u8) -> Format {
    if code == Format::Q4_K as u8 {
        Format::Q4_K
    } else {
        Format::Q6_K
    }
}

/// Rows `m0..m0 + MB` of `a` times a decoded group: `[row][16 outputs]`. The weights are at
/// most 63 and the activations at most 127 in magnitude, so two chunks of `vpmaddubsw`'s pairs
/// fit i16 together and widen to i32 once. Unless the halves have scales of their own
/// (`S`: `Decoded::split`), a block's halves are summed in i32 and scaled once.
///
/// `F`: where the weights come from: [`SCRATCH`], the group unpacked in `dec`; else the
/// [`code`] of the format of the stored group at `stored`, each chunk unpacked in registers
/// (`dec` holds its scales only).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn decoded<const MB: usize, const R: bool, const S: bool, const F: u8>(
    dec: &Decoded,
    stored: *const u8,
    a: &Quantized,
    m0: usize,
) -> Tile {
    let kb = dec.blocks;
    let k = kb * BLOCK;
    let ones = _mm256_set1_epi16(1);
    let step = _mm256_set1_ps(1.0 / RESIDUAL);
    let centre = dec.centre as f32;
    let mut acc = [[_mm256_setzero_ps(); 2]; MB];
    for b in 0..kb {
        // SAFETY: block b < dec.blocks lies within `dec`'s buffers (the scratch's weights are
        // read only with `SCRATCH`), and within the stored group at `stored` otherwise;
        // activation reads stay in rows m0..m0 + MB of `a`.
        unsafe {
            // Block b in the scratch, or the stored block holding it and b's place in it
            // (K-quants hold 8).
            let p = if F == SCRATCH {
                dec.u.as_ptr().add(b * U_BYTES)
            } else {
                std::ptr::null()
            };
            let (sp, j) = if F == SCRATCH {
                (stored, 0)
            } else {
                let format = format_of(F);
                let sub = format.block_inputs() / BLOCK;
                (stored.add(b / sub * format.group_block_bytes()), b % sub)
            };
            let weights = |c: usize, h: usize| {
                if F == SCRATCH {
                    _mm256_loadu_si256(p.add(64 * c + 32 * h).cast())
                } else {
                    avx2_decode::chunk(format_of(F), sp, j, c, h)
                }
            };
            // [row][half block][rows 0-7, 8-15]
            let mut qs = [[[_mm256_setzero_si256(); 2]; 2]; MB];
            let mut rs = [[[_mm256_setzero_si256(); 2]; 2]; MB];
            // Two chunks' pairs add up in i16 (<= 2 x 2 x 63 x 127 = 32004) before one
            // `vpmaddwd` widens them.
            for c in (0..8).step_by(2) {
                let half = if S { c / 4 } else { 0 };
                for h in 0..2 {
                    let (w0, w1) = (weights(c, h), weights(c + 1, h));
                    for r in 0..MB {
                        let at = (m0 + r) * k + b * BLOCK;
                        let qa = a.q.as_ptr().add(at).cast::<i32>();
                        let pairs = _mm256_add_epi16(
                            _mm256_maddubs_epi16(w0, broadcast(qa.add(c))),
                            _mm256_maddubs_epi16(w1, broadcast(qa.add(c + 1))),
                        );
                        let sum = &mut qs[r][half][h];
                        *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(pairs, ones));
                        if R {
                            let ra = a.r.as_ptr().add(at).cast::<i32>();
                            let pairs = _mm256_add_epi16(
                                _mm256_maddubs_epi16(w0, broadcast(ra.add(c))),
                                _mm256_maddubs_epi16(w1, broadcast(ra.add(c + 1))),
                            );
                            let sum = &mut rs[r][half][h];
                            *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(pairs, ones));
                        }
                    }
                }
            }
            let s = dec.s.as_ptr().add(b * 2 * ROWS);
            let mp = dec.m.as_ptr().add(b * ROWS);
            for r in 0..MB {
                let i = (m0 + r) * kb + b;
                let da = _mm256_set1_ps(*a.d.get_unchecked(i));
                let sum = _mm256_set1_ps(*a.sum.get_unchecked(i));
                // The centre's term of what each accumulator holds (per half, or the block's):
                // the activations' quantised sum, made once per block.
                let quantised = |half: usize| {
                    if S {
                        *a.half_quantised_sum.get_unchecked(2 * i + half)
                    } else {
                        *a.quantised_sum.get_unchecked(i)
                    }
                };
                let centred = [
                    _mm256_set1_ps(-centre * quantised(0)),
                    _mm256_set1_ps(-centre * quantised(1)),
                ];
                for h in 0..2 {
                    for half in 0..if S { 2 } else { 1 } {
                        let mut x = _mm256_cvtepi32_ps(qs[r][half][h]);
                        if R {
                            x = _mm256_fmadd_ps(_mm256_cvtepi32_ps(rs[r][half][h]), step, x);
                        }
                        let x = _mm256_fmadd_ps(x, da, centred[half]);
                        let scale = _mm256_loadu_ps(s.add(half * ROWS + 8 * h));
                        acc[r][h] = _mm256_fmadd_ps(scale, x, acc[r][h]);
                    }
                    acc[r][h] = _mm256_fmadd_ps(_mm256_loadu_ps(mp.add(8 * h)), sum, acc[r][h]);
                }
            }
        }
    }
    spill(&acc)
}

/// The most activation rows a kernel's tile holds.
const MAX_TILE: usize = 3;

/// A tile's outputs: `[row][16 outputs]`, its first rows used.
type Tile = [[f32; ROWS]; MAX_TILE];

/// Rows the next tile takes of `left`, at most `most`: four left go as two and two, not three
/// and one (a tile of one reads the weights for a single row).
fn tile_rows(left: usize, most: usize) -> usize {
    if left == 4 && most == 3 {
        2
    } else {
        left.min(most)
    }
}

/// The accumulators of up to [`MAX_TILE`] rows as plain arrays.
#[target_feature(enable = "avx")]
fn spill<const MB: usize>(acc: &[[__m256; 2]; MB]) -> Tile {
    let mut out = [[0f32; ROWS]; MAX_TILE];
    for (row, halves) in out.iter_mut().zip(acc) {
        for (h, v) in halves.iter().enumerate() {
            // SAFETY: 8 floats fit in row[8h..8h + 8].
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(8 * h), *v) };
        }
    }
    out
}

/// Quantises one row `x` (`k` wide, gated already) as `Part::quantize_row` does, 8 lanes at a
/// time: the same int8 steps and residuals (the same products, rounded to nearest even), the
/// block's sum in another order.
///
/// # Safety
/// The CPU must have AVX2; `k` a multiple of 32; `x` and `out`'s `q` and `res` `k` long, its
/// `d`, `sum`, `qsum` and `rsum` `k/32` long (checked by the caller).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_row(x: &[f32], out: RowOut<'_>) {
    let sign = _mm256_set1_ps(-0.0);
    let residual = _mm256_set1_ps(RESIDUAL);
    // `vpackssdw` then `vpacksswb` interleave the 128-bit lanes: this puts the bytes back.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for b in 0..out.q.len() / BLOCK {
        // SAFETY: block b lies within `x`, `q` and `res`; `d`, `sum`, `qsum`, `rsum` have k/32
        // entries (the caller's bounds).
        unsafe {
            let v: [__m256; 4] =
                std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(b * BLOCK + 8 * i)));
            let abs = |v: __m256| _mm256_andnot_ps(sign, v);
            let m = _mm256_max_ps(
                _mm256_max_ps(abs(v[0]), abs(v[1])),
                _mm256_max_ps(abs(v[2]), abs(v[3])),
            );
            let amax = hmax(m);
            let (scale, inv) = if amax > 0.0 {
                (amax / 127.0, 127.0 / amax)
            } else {
                (0.0, 0.0)
            };
            let inv = _mm256_set1_ps(inv);
            let mut qi = [_mm256_setzero_si256(); 4];
            let mut ri = [_mm256_setzero_si256(); 4];
            for i in 0..4 {
                // Round to nearest even (the default rounding mode), as the portable path does.
                let t = _mm256_mul_ps(v[i], inv);
                qi[i] = _mm256_cvtps_epi32(t);
                let left = _mm256_sub_ps(t, _mm256_cvtepi32_ps(qi[i]));
                ri[i] = _mm256_cvtps_epi32(_mm256_mul_ps(left, residual));
            }
            // Both within ±127 by construction: the packs' saturation never bites.
            let bytes = |v: [__m256i; 4]| {
                let lo = _mm256_packs_epi32(v[0], v[1]);
                let hi = _mm256_packs_epi32(v[2], v[3]);
                _mm256_permutevar8x32_epi32(_mm256_packs_epi16(lo, hi), order)
            };
            _mm256_storeu_si256(out.q.as_mut_ptr().add(b * BLOCK).cast(), bytes(qi));
            _mm256_storeu_si256(out.res.as_mut_ptr().add(b * BLOCK).cast(), bytes(ri));
            let add4 = |v: [__m256i; 4]| {
                hsum(_mm256_add_epi32(
                    _mm256_add_epi32(v[0], v[1]),
                    _mm256_add_epi32(v[2], v[3]),
                ))
            };
            let total = _mm256_add_ps(_mm256_add_ps(v[0], v[1]), _mm256_add_ps(v[2], v[3]));
            *out.d.get_unchecked_mut(b) = scale;
            *out.sum.get_unchecked_mut(b) = hsum_ps(total);
            *out.qsum.get_unchecked_mut(b) = add4(qi);
            *out.rsum.get_unchecked_mut(b) = add4(ri);
        }
    }
}

/// The largest of 8 lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// The sum of 8 float lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// The sum of 8 integer lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s)))
}

/// `gate(g) * up` of one row `x` (`[gate | up]`, `2k` wide) into `out` (`k` long), as
/// `avx512::quantize_row` computes it: `g * sigmoid(z)`, `z = g` (SiLU) or `2y` (GELU's tanh form,
/// `y = sqrt(2/pi) (g + 0.044715 g^3)`).
///
/// # Safety
/// The CPU must have AVX2 and FMA; `k` a multiple of 8.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn gated(x: &[f32], gate: Gate, out: &mut [f32]) {
    let k = out.len();
    assert!(
        x.len() == 2 * k && k.is_multiple_of(8),
        "gate | up of 2 x {k}"
    );
    let (gates, up) = x.split_at(k);
    let one = _mm256_set1_ps(1.0);
    for i in (0..k).step_by(8) {
        // SAFETY: i + 8 <= k, the length of gates, up and out.
        unsafe {
            let g = _mm256_loadu_ps(gates.as_ptr().add(i));
            let u = _mm256_loadu_ps(up.as_ptr().add(i));
            let z = match gate {
                Gate::Silu => g,
                Gate::Gelu => {
                    let g2 = _mm256_mul_ps(g, g);
                    let y = _mm256_mul_ps(g, _mm256_fmadd_ps(g2, _mm256_set1_ps(GELU_CUBIC), one));
                    _mm256_mul_ps(y, _mm256_set1_ps(2.0 * SQRT_2_OVER_PI))
                }
            };
            let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), z));
            let gated = _mm256_div_ps(g, _mm256_add_ps(one, e));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(gated, u));
        }
    }
}

/// `e^x` per lane, as `avx512::exp` (`2^n * p(r)`, the degree-6 Taylor polynomial), `2^n` built
/// in the exponent bits: `x` is clamped to [-87, 88], so `n` stays within the normal range.
#[target_feature(enable = "avx2,fma")]
fn exp(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(EXP_RANGE.0)),
        _mm256_set1_ps(EXP_RANGE.1),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_TAYLOR[0]);
    for c in EXP_TAYLOR[1..].iter().copied() {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let two_n = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(p, _mm256_castsi256_ps(two_n))
}
