//! `Decoded::decode` for AVX2: a group of a decoded format (`kernels::decode`) unpacked into the
//! scratch with the same bit operations `avx512_packed` runs in registers, on 8 rows (32 bytes) at
//! a time, and the scales and minimums computed 8 rows per register (the K-quants' 6-bit scales
//! gathered from each row's 12 bytes). The AVX2 kernel (`avx2::decoded`) then multiplies the
//! scratch, which every tile of a batch's rows reads. For one tile (one or two rows) of Q4_K or
//! Q6_K the kernel takes each chunk from [`chunk`] in registers instead and only the scales go
//! to the scratch ([`group_scales`]): the scratch would be written and read back once for
//! nothing (`avx2::unpacks_in_registers`). Same values as the plain decoder, which the kernel
//! tests check on every ISA.
#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::{
    BLOCK, Format, ROWS,
    decode::{Decoded, U_BYTES},
};

/// Unpacks `group` (the stored bytes of one group of `format`) into `dec`, sized for it.
///
/// # Safety
/// The CPU must have AVX2 and F16C; `dec.u`, `dec.s` and `dec.m` sized for the group.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn decode(dec: &mut Decoded, format: Format, group: &[u8]) {
    let per = format.group_block_bytes();
    let sub = format.block_inputs() / BLOCK;
    let blocks = group.len() / per * sub;
    assert!(
        dec.u.len() >= blocks * U_BYTES
            && dec.s.len() >= blocks * 2 * ROWS
            && dec.m.len() >= blocks * ROWS,
        "scratch sized for the group"
    );
    for (sb, src) in group.chunks_exact(per).enumerate() {
        let p = src.as_ptr();
        for j in 0..sub {
            let b = sb * sub + j;
            for c in 0..8 {
                for h in 0..2 {
                    // SAFETY: every read lies within the stored block `src` (`per` bytes), the
                    // write within block b of `u` (sized above).
                    unsafe {
                        let u = chunk(format, p, j, c, h);
                        _mm256_storeu_si256(
                            dec.u.as_mut_ptr().add(b * U_BYTES + 64 * c + 32 * h).cast(),
                            u,
                        );
                    }
                }
            }
        }
        // SAFETY: as above, for blocks sb*sub.. of `s` and `m`.
        unsafe { block_scales(dec, format, sb, p) };
    }
}

/// The scales and minimums alone of `group` (the stored bytes of one group of `format`) into
/// `dec`, sized for it: what the kernel reads beside the chunks it unpacks itself.
///
/// # Safety
/// The CPU must have AVX2 and F16C; `dec.s` and `dec.m` sized for the group.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn group_scales(dec: &mut Decoded, format: Format, group: &[u8]) {
    let per = format.group_block_bytes();
    let blocks = group.len() / per * (format.block_inputs() / BLOCK);
    assert!(
        dec.s.len() >= blocks * 2 * ROWS && dec.m.len() >= blocks * ROWS,
        "scratch sized for the group"
    );
    for (sb, src) in group.chunks_exact(per).enumerate() {
        // SAFETY: `src` is one stored block; `s` and `m` were checked above.
        unsafe { block_scales(dec, format, sb, src.as_ptr()) };
    }
}

/// Both halves of rows of stored block `sb` (at `p`)'s scales and minimums into `dec`.
///
/// # Safety
/// AVX2, FMA and F16C; `p` one stored block of `format`; `dec.s` and `dec.m` sized past it.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn block_scales(dec: &mut Decoded, format: Format, sb: usize, p: *const u8) {
    let sub = format.block_inputs() / BLOCK;
    for h in 0..2 {
        // SAFETY: the caller's bounds, for blocks sb*sub.. of `s` and `m`.
        unsafe {
            let s = dec.s.as_mut_ptr().add(sb * sub * 2 * ROWS + 8 * h);
            let m = dec.m.as_mut_ptr().add(sb * sub * ROWS + 8 * h);
            scales(format, p, h, s, m);
        }
    }
}

/// Chunk `c` (inputs `4c..4c + 4`) of rows `8h..8h + 8` of block `j` of the stored block at `p`
/// (see `avx512_packed`'s module docs for where each format keeps its bits).
///
/// # Safety
/// AVX2; `p` one stored block of `format`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn chunk(format: Format, p: *const u8, j: usize, c: usize, h: usize) -> __m256i {
    let low = _mm256_set1_epi8(0x0F);
    let at = 64 * c + 32 * h;
    let count = |n: usize| _mm_cvtsi32_si128(n as i32);
    // A byte mask of the bytes of `v` with `bits` set, as 0x10: the fifth bit.
    let fifth = |v: __m256i, bits: __m256i| {
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(v, bits), bits);
        _mm256_and_si256(set, _mm256_set1_epi8(0x10))
    };
    // SAFETY: the offsets below lie within the stored block (the caller's bounds).
    unsafe {
        let load = |off: usize| _mm256_loadu_si256(p.add(off).cast());
        match format {
            Format::Q4_0 | Format::Q5_0 | Format::Q5_1 => {
                let z = load(64 * (c % 4) + 32 * h);
                let nibble = if c < 4 {
                    _mm256_and_si256(z, low)
                } else {
                    _mm256_and_si256(_mm256_srli_epi16::<4>(z), low)
                };
                if format == Format::Q4_0 {
                    return nibble;
                }
                // Byte c/2 of each row's qh into its four bytes, tested against bits
                // 4(c % 2) + j.
                let qh = load(256 + 32 * h);
                let select = _mm256_add_epi8(
                    _mm256_setr_epi32(
                        0,
                        0x0404_0404,
                        0x0808_0808,
                        0x0C0C_0C0C,
                        0,
                        0x0404_0404,
                        0x0808_0808,
                        0x0C0C_0C0C,
                    ),
                    _mm256_set1_epi8((c / 2) as i8),
                );
                let bits = _mm256_set1_epi32(if c.is_multiple_of(2) {
                    0x0804_0201
                } else {
                    0x8040_2010u32 as i32
                });
                _mm256_or_si256(nibble, fifth(_mm256_shuffle_epi8(qh, select), bits))
            }
            Format::Q4_K | Format::Q5_K => {
                let z = load((j / 2) * U_BYTES + at);
                let nibble = _mm256_and_si256(_mm256_srl_epi16(z, count(4 * (j % 2))), low);
                if format == Format::Q4_K {
                    return nibble;
                }
                let qh = load(4 * U_BYTES + at);
                _mm256_or_si256(nibble, fifth(qh, _mm256_set1_epi8(1 << j)))
            }
            Format::Q6_K => {
                let (n, t) = (j / 4, j % 4);
                let z = load((2 * n + t % 2) * U_BYTES + at);
                let nibble = _mm256_and_si256(_mm256_srl_epi16(z, count(4 * (t / 2))), low);
                let qh = load((4 + n) * U_BYTES + at);
                let two = _mm256_and_si256(_mm256_srl_epi16(qh, count(2 * t)), _mm256_set1_epi8(3));
                _mm256_or_si256(nibble, _mm256_slli_epi16::<4>(two))
            }
            Format::Q4_1 | Format::Q8_0 => unreachable!("{format:?} is read packed"),
        }
    }
}

/// Rows `8h..8h + 8` of the scales (`s`, `[blocks][2][16]`) and minimums (`m`, `[blocks][16]`)
/// of the stored block at `p`, written from `s` and `m` (already offset by `8h`).
///
/// # Safety
/// AVX2, FMA and F16C; `p` one stored block of `format`; `s` and `m` writable for its blocks.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn scales(format: Format, p: *const u8, h: usize, s: *mut f32, m: *mut f32) {
    // SAFETY: the caller's bounds.
    unsafe {
        let half8 = |at: usize| _mm256_cvtph_ps(_mm_loadu_si128(p.add(at + 16 * h).cast()));
        let rows = _mm256_add_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(8 * h as i32),
        );
        match format {
            Format::Q4_0 | Format::Q5_0 | Format::Q5_1 => {
                let at = if format == Format::Q4_0 { 256 } else { 320 };
                let d = half8(at);
                _mm256_storeu_ps(s, d);
                _mm256_storeu_ps(s.add(ROWS), d);
                let mn = if format == Format::Q5_1 {
                    _mm256_fmadd_ps(_mm256_set1_ps(16.0), d, half8(at + 2 * ROWS))
                } else {
                    _mm256_setzero_ps()
                };
                _mm256_storeu_ps(m, mn);
            }
            Format::Q4_K | Format::Q5_K => {
                let five = format == Format::Q5_K;
                let at = if five { 5 * U_BYTES } else { 4 * U_BYTES };
                let (d, dmin) = (half8(at), half8(at + 2 * ROWS));
                let offsets = _mm256_mullo_epi32(rows, _mm256_set1_epi32(12));
                let base = p.add(at + 4 * ROWS);
                let words = [
                    _mm256_i32gather_epi32::<1>(base.cast(), offsets),
                    _mm256_i32gather_epi32::<1>(base.add(4).cast(), offsets),
                    _mm256_i32gather_epi32::<1>(base.add(8).cast(), offsets),
                ];
                let byte = |i: usize| {
                    _mm256_and_si256(
                        _mm256_srlv_epi32(words[i / 4], _mm256_set1_epi32(8 * (i as i32 % 4))),
                        _mm256_set1_epi32(0xFF),
                    )
                };
                let centre = _mm256_set1_ps(if five { 16.0 } else { 8.0 });
                let neg_dmin = _mm256_sub_ps(_mm256_setzero_ps(), dmin);
                let (six, four) = (_mm256_set1_epi32(63), _mm256_set1_epi32(0x0F));
                for j in 0..8 {
                    // GGML's `get_scale_min_k4`, lane-wise.
                    let (sc, mn) = if j < 4 {
                        (
                            _mm256_and_si256(byte(j), six),
                            _mm256_and_si256(byte(j + 4), six),
                        )
                    } else {
                        let top = |x: __m256i| _mm256_slli_epi32::<4>(_mm256_srli_epi32::<6>(x));
                        (
                            _mm256_or_si256(_mm256_and_si256(byte(j + 4), four), top(byte(j - 4))),
                            _mm256_or_si256(_mm256_srli_epi32::<4>(byte(j + 4)), top(byte(j))),
                        )
                    };
                    let scale = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc));
                    _mm256_storeu_ps(s.add(j * 2 * ROWS), scale);
                    _mm256_storeu_ps(s.add(j * 2 * ROWS + ROWS), scale);
                    let minimum = _mm256_mul_ps(neg_dmin, _mm256_cvtepi32_ps(mn));
                    _mm256_storeu_ps(m.add(j * ROWS), _mm256_fmadd_ps(centre, scale, minimum));
                }
            }
            Format::Q6_K => {
                let at = 6 * U_BYTES;
                let d = half8(at + 16 * ROWS);
                let offsets = _mm256_slli_epi32::<4>(rows);
                for q in 0..4 {
                    let word = _mm256_i32gather_epi32::<1>(p.add(at + 4 * q).cast(), offsets);
                    for b in 0..4 {
                        // Byte b of the word, sign-extended (the scales are int8).
                        let sc = _mm256_srai_epi32::<24>(_mm256_sllv_epi32(
                            word,
                            _mm256_set1_epi32(24 - 8 * b as i32),
                        ));
                        let i = 4 * q + b;
                        _mm256_storeu_ps(s.add(i * ROWS), _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc)));
                    }
                }
                for j in 0..8 {
                    _mm256_storeu_ps(m.add(j * ROWS), _mm256_setzero_ps());
                }
            }
            Format::Q4_1 | Format::Q8_0 => unreachable!("{format:?} is read packed"),
        }
    }
}
