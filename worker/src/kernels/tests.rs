//! The kernels against a float64 reference of GGML's formats, on random blocks and odd shapes.

use super::{
    BLOCK, Format, Isa, Out, Packed, Prologue, Quantized, matmul_groups,
    portable::f16,
    quantize::in_turn,
    sample::{Rng, activations, ggml, pack},
};

/// `x` (`[rows, act.input_width(k)]`) quantised on this thread.
fn quantized(
    isa: Isa,
    x: &[f32],
    rows: usize,
    k: usize,
    act: Prologue<'_>,
    two_stage: bool,
) -> Quantized {
    let mut a = Quantized::default();
    a.quantize(isa, x, rows, k, act, two_stage, 1, &in_turn);
    a
}

/// GGML's dequantisation of one weight, in f64 (written as GGML's `dequantize_row_*` loops, one
/// row's block at a time, independently of `kernels::decode`).
fn dequantize(format: Format, raw: &[u8], n: usize, k: usize) -> Vec<f64> {
    let (qk, per) = (format.block_inputs(), format.ggml_block_bytes());
    let mut w = Vec::with_capacity(n * k);
    for blk in raw.chunks_exact(per).take(n * k / qk) {
        w.extend(dequantize_block(format, blk));
    }
    w
}

fn h(blk: &[u8], at: usize) -> f64 {
    f64::from(f16(blk, at))
}

/// GGML's `get_scale_min_k4`.
fn scale_min(j: usize, q: &[u8]) -> (f64, f64) {
    let (sc, m) = if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    };
    (f64::from(sc), f64::from(m))
}

fn dequantize_block(format: Format, blk: &[u8]) -> Vec<f64> {
    let mut y = vec![0f64; format.block_inputs()];
    match format {
        Format::Q4_0 => {
            for j in 0..16 {
                y[j] = h(blk, 0) * (f64::from(blk[2 + j] & 0xF) - 8.0);
                y[j + 16] = h(blk, 0) * (f64::from(blk[2 + j] >> 4) - 8.0);
            }
        }
        Format::Q4_1 => {
            for j in 0..16 {
                y[j] = h(blk, 0) * f64::from(blk[4 + j] & 0xF) + h(blk, 2);
                y[j + 16] = h(blk, 0) * f64::from(blk[4 + j] >> 4) + h(blk, 2);
            }
        }
        Format::Q5_0 | Format::Q5_1 => {
            let one = format == Format::Q5_1;
            let at = if one { 4 } else { 2 };
            let qh = u32::from_le_bytes([blk[at], blk[at + 1], blk[at + 2], blk[at + 3]]);
            for j in 0..16 {
                let xh0 = ((qh >> j) << 4) & 0x10;
                let xh1 = (qh >> (j + 12)) & 0x10;
                let x0 = f64::from(u32::from(blk[at + 4 + j] & 0xF) | xh0);
                let x1 = f64::from(u32::from(blk[at + 4 + j] >> 4) | xh1);
                if one {
                    y[j] = h(blk, 0) * x0 + h(blk, 2);
                    y[j + 16] = h(blk, 0) * x1 + h(blk, 2);
                } else {
                    y[j] = h(blk, 0) * (x0 - 16.0);
                    y[j + 16] = h(blk, 0) * (x1 - 16.0);
                }
            }
        }
        Format::Q8_0 => {
            for j in 0..32 {
                y[j] = h(blk, 0) * f64::from(blk[2 + j] as i8);
            }
        }
        Format::Q4_K | Format::Q5_K => {
            let five = format == Format::Q5_K;
            let (d, min) = (h(blk, 0), h(blk, 2));
            let scales = &blk[4..16];
            let (qh, mut ql) = if five {
                (&blk[16..48], 48)
            } else {
                (&blk[0..0], 16)
            };
            let (mut is, mut out) = (0, 0);
            let (mut u1, mut u2) = (1u8, 2u8);
            for _ in (0..256).step_by(64) {
                let (sc, m) = scale_min(is, scales);
                let (d1, m1) = (d * sc, min * m);
                let (sc, m) = scale_min(is + 1, scales);
                let (d2, m2) = (d * sc, min * m);
                for l in 0..32 {
                    let hi = if five && qh[l] & u1 != 0 { 16.0 } else { 0.0 };
                    y[out + l] = d1 * (f64::from(blk[ql + l] & 0xF) + hi) - m1;
                }
                for l in 0..32 {
                    let hi = if five && qh[l] & u2 != 0 { 16.0 } else { 0.0 };
                    y[out + 32 + l] = d2 * (f64::from(blk[ql + l] >> 4) + hi) - m2;
                }
                out += 64;
                ql += 32;
                is += 2;
                u1 <<= 2;
                u2 <<= 2;
            }
        }
        Format::Q6_K => {
            let d = h(blk, 208);
            let sc = |i: usize| f64::from(blk[192 + i] as i8);
            for n in 0..2 {
                let (ql, qh, s, y) = (
                    &blk[64 * n..],
                    &blk[128 + 32 * n..],
                    8 * n,
                    &mut y[128 * n..],
                );
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = i32::from((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                    let q2 = i32::from((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * sc(s + is) * f64::from(q1);
                    y[l + 32] = d * sc(s + is + 2) * f64::from(q2);
                    y[l + 64] = d * sc(s + is + 4) * f64::from(q3);
                    y[l + 96] = d * sc(s + is + 6) * f64::from(q4);
                }
            }
        }
    }
    y
}

/// The term a kernel multiplies by the activations' real sum of block `b` (32 inputs) of `row`:
/// Q4_1's `m + 8d` and the decoded formats' `m` (`kernels::decode`), else 0.
fn sum_term(format: Format, raw: &[u8], row: usize, k: usize, b: usize) -> f64 {
    let (qk, per) = (format.block_inputs(), format.ggml_block_bytes());
    let blk = &raw[(row * k / qk + b * BLOCK / qk) * per..][..per];
    match format {
        Format::Q4_1 => h(blk, 2) + 8.0 * h(blk, 0),
        Format::Q5_1 => h(blk, 2) + 16.0 * h(blk, 0),
        Format::Q4_K | Format::Q5_K => {
            let (sc, m) = scale_min(b % 8, &blk[4..16]);
            let centre = if format == Format::Q5_K { 16.0 } else { 8.0 };
            centre * h(blk, 0) * sc - h(blk, 2) * m
        }
        Format::Q4_0 | Format::Q5_0 | Format::Q8_0 | Format::Q6_K => 0.0,
    }
}

/// `y = x @ W^T` in f64 with the kernels' own activation rounding: `d*(q + r/254)` for the
/// products, and the real block sums for the offsets (`sum_term`).
fn reference(format: Format, raw: &[u8], n: usize, a: &Quantized) -> Vec<f64> {
    let k = a.k();
    let kb = k / BLOCK;
    let w = dequantize(format, raw, n, k);
    let mut y = vec![0f64; a.rows() * n];
    for m in 0..a.rows() {
        for col in 0..n {
            let mut acc = 0f64;
            for b in 0..kb {
                let ab = m * kb + b;
                let term = sum_term(format, raw, col, k, b);
                for j in 0..BLOCK {
                    let i = b * BLOCK + j;
                    let r = if a.two_stage() {
                        f64::from(a.r[m * k + i]) / 254.0
                    } else {
                        0.0
                    };
                    let x = f64::from(a.d[ab]) * (f64::from(a.q[m * k + i]) + r);
                    acc += (w[col * k + i] - term) * x;
                }
                acc += term * f64::from(a.sum[ab]);
            }
            y[m * n + col] = acc;
        }
    }
    y
}

fn run(isa: Isa, format: Format, packed: &[u8], n: usize, a: &Quantized) -> Vec<f32> {
    let w = Packed::new(format, n, a.k(), packed).expect("valid packed weight");
    let mut y = vec![f32::NAN; a.rows() * n];
    let out = Out::new(&mut y, a.rows(), n);
    // Two ranges, as two threads would split it.
    let mid = w.groups() / 2;
    matmul_groups(isa, &w, a, 0..mid, out);
    matmul_groups(isa, &w, a, mid..w.groups(), out);
    y
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(*g) - w).abs() / scale;
        assert!(
            err < 2e-5,
            "{what}: y[{i}] = {g}, want {w} (error {err:e} of max)"
        );
    }
}

/// Every implementation this CPU can run.
fn isas() -> Vec<Isa> {
    let mut v = vec![Isa::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            v.push(Isa::Avx2);
        }
    }
    if Isa::detect() == Isa::Avx512Vnni {
        v.push(Isa::Avx512Vnni);
    }
    v
}

#[test]
fn every_isa_matches_the_reference_on_odd_shapes() {
    let mut rng = Rng::new(7);
    for (format, _) in Format::ALL {
        let shapes: &[(usize, usize)] = if format.block_inputs() == 256 {
            &[(1, 256), (15, 512), (17, 768), (40, 256)]
        } else {
            &[(1, 32), (15, 64), (16, 32), (17, 96), (40, 128), (48, 1536)]
        };
        for &(n, k) in shapes {
            let raw = ggml(format, n, k, &mut rng);
            let packed = pack(format, &raw, n, k);
            for (rows, two_stage) in [
                (1, true),
                (1, false),
                (2, true),
                (2, false),
                (3, true),
                (4, true),
                (5, false),
                (7, true),
                (9, true),
            ] {
                let x = activations(rows, k, &mut rng);
                let a = quantized(Isa::Portable, &x, rows, k, Prologue::None, two_stage);
                let want = reference(format, &raw, n, &a);
                for isa in isas() {
                    let got = run(isa, format, &packed, n, &a);
                    let what =
                        format!("{isa:?} {format:?} {rows}x{k} @ {n}, two stages: {two_stage}");
                    assert_close(&got, &want, &what);
                }
            }
        }
    }
}

#[test]
fn the_largest_weights_times_the_largest_activations_do_not_saturate() {
    // Each format's widest products against activations all at +-127 after quantising: Q6_K's
    // weights at 63 before the centre (AVX2 adds two chunks of `vpmaddubsw` pairs in i16), and
    // Q8_0's at -128 and 127 (AVX2 multiplies them by both stages at once, `Quantized::wide`).
    let (n, k) = (17, 512);
    let one = 0x3C00u16.to_le_bytes(); // f16 1.0
    let q6_k: Vec<u8> = (0..n * k / 256)
        .flat_map(|_| [vec![0xFF; 192], vec![0x7F; 16], one.to_vec()].concat())
        .collect();
    let q8_0 = |q: u8| -> Vec<u8> {
        (0..n * k / 32)
            .flat_map(|_| [one.to_vec(), vec![q; 32]].concat())
            .collect()
    };
    for (format, raw) in [
        (Format::Q6_K, q6_k),
        (Format::Q8_0, q8_0(0x80)),
        (Format::Q8_0, q8_0(0x7F)),
    ] {
        let packed = pack(format, &raw, n, k);
        for sign in [1.0f32, -1.0] {
            // Rows all `sign`, alternating, all `sign`: three rows take AVX2's Q8_0 weights
            // widened ahead (`avx2::q8_0_wide`'s `AHEAD`), two the ones widened chunk by chunk.
            let x: Vec<f32> = (0..3 * k)
                .map(|i| {
                    if !(k..2 * k).contains(&i) || i % 2 == 0 {
                        sign
                    } else {
                        -sign
                    }
                })
                .collect();
            for (rows, two_stage) in [(3, true), (2, true), (3, false)] {
                let a = quantized(
                    Isa::Portable,
                    &x[..rows * k],
                    rows,
                    k,
                    Prologue::None,
                    two_stage,
                );
                let want = reference(format, &raw, n, &a);
                for isa in isas() {
                    let got = run(isa, format, &packed, n, &a);
                    let what = format!("{isa:?}: {format:?} at its largest, sign {sign}");
                    assert_close(&got, &want, &what);
                }
            }
        }
    }
}

#[test]
fn the_result_is_close_to_the_float_matmul() {
    // Only the int8 activations differ from a float matmul: the weights are GGML's, exactly.
    let mut rng = Rng::new(11);
    let (n, k, rows) = (64, 768, 3);
    for (format, _) in Format::ALL {
        let raw = ggml(format, n, k, &mut rng);
        let packed = pack(format, &raw, n, k);
        let w = dequantize(format, &raw, n, k);
        let x = activations(rows, k, &mut rng);
        // Root of the summed squared error over that of the exact result.
        let relative_error = |two_stage: bool| {
            let a = quantized(Isa::Portable, &x, rows, k, Prologue::None, two_stage);
            let got = run(Isa::detect(), format, &packed, n, &a);
            let (mut err, mut norm) = (0f64, 0f64);
            for m in 0..rows {
                for col in 0..n {
                    let exact: f64 = (0..k)
                        .map(|i| w[col * k + i] * f64::from(x[m * k + i]))
                        .sum();
                    err += (f64::from(got[m * n + col]) - exact).powi(2);
                    norm += exact.powi(2);
                }
            }
            (err / norm).sqrt()
        };
        let (two, one) = (relative_error(true), relative_error(false));
        assert!(
            two < 1e-4,
            "{format:?}: two stages err {two} against the float matmul"
        );
        // One stage alone errs ~250 times more (and still well under 1%).
        assert!(
            one < 0.01 && one > 20.0 * two,
            "{format:?}: one stage {one}, two {two}"
        );
    }
}

/// Quantising `x` (`[rows, 2k]`: gate | up) with the gated prologue `act` on every ISA gives the
/// plain quantisation of `glu(gate) * up`, `glu` in f64.
fn gated_prologue_is_applied_before_quantising(
    act: Prologue<'_>,
    x: &[f32],
    glu: impl Fn(f64) -> f64,
) {
    let k = x.len() / 4; // two rows
    let rows = 2;
    let want: Vec<f32> = (0..rows)
        .flat_map(|r| {
            let row = &x[r * 2 * k..(r + 1) * 2 * k];
            (0..k)
                .map(|i| (glu(f64::from(row[i])) * f64::from(row[k + i])) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    for isa in isas() {
        let fused = quantized(isa, x, rows, k, act, true);
        let plain = quantized(Isa::Portable, &want, rows, k, Prologue::None, true);
        for (i, (f, p)) in fused.q.iter().zip(&plain.q).enumerate() {
            // A vector exp may land a value on the other side of a rounding boundary.
            assert!(
                (i16::from(*f) - i16::from(*p)).abs() <= 1,
                "{isa:?} {act:?} q[{i}]: {f} vs {p}"
            );
        }
        for (f, p) in fused.d.iter().zip(&plain.d) {
            assert!(
                (f - p).abs() <= 1e-6 * p.abs(),
                "{isa:?} {act:?} scale {f} vs {p}"
            );
        }
    }
}

#[test]
fn swiglu_is_applied_before_quantising() {
    let mut x = activations(2, 2 * 64, &mut Rng::new(3));
    x[5] = -95.0; // exp(95) overflows f32: silu must still be ~0 there
    x[6] = 95.0;
    gated_prologue_is_applied_before_quantising(Prologue::SwiGlu, &x, |v| v / (1.0 + (-v).exp()));
}

#[test]
fn geglu_is_applied_before_quantising() {
    let x = activations(2, 2 * 64, &mut Rng::new(4));
    let gelu = |v: f64| {
        0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
    };
    gated_prologue_is_applied_before_quantising(Prologue::GeGlu, &x, gelu);
}

#[test]
fn every_isa_quantises_alike() {
    let mut rng = Rng::new(5);
    let (rows, k) = (3, 576);
    let mut x = activations(rows, k, &mut rng);
    x[64..96].fill(0.0); // an all-zero block
    let want = quantized(Isa::Portable, &x, rows, k, Prologue::None, true);
    for isa in isas() {
        let got = quantized(isa, &x, rows, k, Prologue::None, true);
        assert_eq!(got.q, want.q, "{isa:?}");
        assert_eq!(got.d, want.d, "{isa:?}");
        assert_eq!(got.r, want.r, "{isa:?}");
        assert_eq!(got.qsum, want.qsum, "{isa:?}");
        assert_eq!(got.rsum, want.rsum, "{isa:?}");
        for (g, w) in got.sum.iter().zip(&want.sum) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{isa:?} sum {g} vs {w}"
            );
        }
    }
}

#[test]
fn rows_quantised_in_parts_on_threads_are_the_rows_quantised_in_turn() {
    let mut rng = Rng::new(9);
    let k = 64;
    let gamma: Vec<f32> = (0..k).map(|i| 0.5 + i as f32 / 64.0).collect();
    // Each part on a thread of its own, as ONNX Runtime's pool runs them.
    let threads = |tasks: usize, task: &(dyn Fn(usize) + Sync)| {
        std::thread::scope(|s| {
            for t in 0..tasks {
                s.spawn(move || task(t));
            }
        });
    };
    for isa in isas() {
        for (act, width) in [
            (Prologue::None, k),
            (Prologue::GeGlu, 2 * k),
            (
                Prologue::RmsNorm {
                    gamma: &gamma,
                    eps: 1e-6,
                },
                k,
            ),
        ] {
            for (rows, parts, two_stage) in [(7, 2, true), (16, 3, false), (2, 8, true)] {
                let x = activations(rows, width, &mut rng);
                let want = quantized(isa, &x, rows, k, act, two_stage);
                // The buffers of a larger run before, as the kernel keeps them.
                let mut got = quantized(isa, &activations(20, width, &mut rng), 20, k, act, true);
                got.quantize(isa, &x, rows, k, act, two_stage, parts, &threads);
                let case = format!("{isa:?} {act:?} {rows} rows in {parts} parts");
                assert_eq!((got.rows(), got.two_stage()), (rows, two_stage), "{case}");
                assert_eq!(
                    (&got.q, &got.d, &got.sum),
                    (&want.q, &want.d, &want.sum),
                    "{case}"
                );
                assert_eq!(
                    (&got.qsum, &got.half_qsum),
                    (&want.qsum, &want.half_qsum),
                    "{case}"
                );
                assert_eq!(got.quantised_sum, want.quantised_sum, "{case}");
                assert_eq!(got.half_quantised_sum, want.half_quantised_sum, "{case}");
                assert_eq!(got.offset_q8_0, want.offset_q8_0, "{case}");
                assert_eq!(got.centre_q4_1, want.centre_q4_1, "{case}");
                if two_stage {
                    assert_eq!((&got.r, &got.rsum), (&want.r, &want.rsum), "{case}");
                    assert_eq!(got.half_rsum, want.half_rsum, "{case}");
                    assert_eq!(got.wide, want.wide, "{case}");
                }
            }
        }
    }
}

#[test]
fn quantised_blocks_are_exact_for_zero_and_keep_their_sums() {
    for isa in isas() {
        let mut a = Quantized::default();
        let mut x = vec![0f32; 64];
        x[40] = -3.0;
        x[41] = 1.5;
        x[42] = 3.0 * 0.5 / 127.0; // 0.5 after scaling: ties to even, 0
        x[43] = 3.0 * 1.5 / 127.0; // 1.5: ties to even, 2
        a.quantize(isa, &x, 1, 64, Prologue::None, true, 1, &in_turn);
        assert_eq!(a.d[0], 0.0, "{isa:?}");
        assert!(a.q[..32].iter().all(|&q| q == 0), "{isa:?}");
        assert_eq!(&a.q[40..44], &[-127, 64, 0, 2], "{isa:?}"); // 63.5 -> 64, even
        assert_eq!(a.qsum[1], -61, "{isa:?}");
        assert!((a.sum[1] - (-1.5 + 6.0 / 127.0)).abs() < 1e-6, "{isa:?}");
    }
}

#[test]
fn packed_weights_of_the_wrong_size_are_refused() {
    let err = Packed::new(Format::Q4_1, 17, 64, &[0; 320 * 2]).expect_err("too short");
    assert!(err.contains("must be 1280 bytes"), "{err}");
    let err = Packed::new(Format::Q8_0, 16, 48, &[0; 544]).expect_err("k not a multiple of 32");
    assert!(err.contains("multiple of 32"), "{err}");
    assert!(Packed::new(Format::Q8_0, 16, 32, &[0; 544]).is_ok());
    let err = Packed::new(Format::Q4_K, 16, 288, &[0; 144 * 16]).expect_err("k of 288");
    assert!(
        err.contains("Q4_K") && err.contains("multiple of 256"),
        "{err}"
    );
    assert!(Packed::new(Format::Q6_K, 17, 512, &[0; 210 * 16 * 2 * 2]).is_ok());
    assert!(Packed::new(Format::Q5_0, 17, 64, &[0; 22 * 16 * 2]).is_err());
}

#[test]
fn prefetching_past_the_last_group_is_a_no_op() {
    // `matmul_groups` asks for the group after each one it runs, the last one's included.
    for format in [Format::Q4_K, Format::Q6_K, Format::Q8_0] {
        let bytes = 2 * format.group_block_bytes() * 2;
        let data = vec![0u8; bytes];
        let w = Packed::new(format, 17, 2 * format.block_inputs(), &data).expect("two groups");
        for g in 0..w.groups() + 3 {
            w.prefetch_group(g);
        }
    }
}

#[test]
fn the_decoders_half_is_exact_for_every_finite_half() {
    for h in 0..=u16::MAX {
        let b = h.to_le_bytes();
        let want = f16(&b, 0);
        if want.is_finite() {
            let got = super::decode::half(&b, 0);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "half {h:#06x}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn rows_come_back_as_ggml_dequantises_them() {
    let mut rng = Rng::new(13);
    for (format, _) in Format::ALL {
        let qk = format.block_inputs();
        for (n, k) in [(1, qk), (17, 2 * qk), (40, 3 * qk)] {
            let raw = ggml(format, n, k, &mut rng);
            let packed = pack(format, &raw, n, k);
            let w = Packed::new(format, n, k, &packed).expect("packed");
            let want = dequantize(format, &raw, n, k);
            let per = format.ggml_block_bytes();
            let mut blk = vec![0u8; per];
            let mut got = vec![0f32; k];
            for row in 0..n {
                for b in 0..k / qk {
                    super::rows::ggml_block(&w, row, b, &mut blk);
                    let at = (row * (k / qk) + b) * per;
                    assert_eq!(blk, raw[at..at + per], "{format:?} row {row} block {b}");
                }
                super::rows::dequantize_row(&w, row, &mut got);
                let want = &want[row * k..(row + 1) * k];
                // Exact where GGML's arithmetic is (a half times a small integer); else within
                // f32's rounding of the row's largest value.
                let exact = matches!(format, Format::Q4_0 | Format::Q5_0 | Format::Q8_0);
                let top = want.iter().fold(0f64, |m, v| m.max(v.abs()));
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    let err = (f64::from(*g) - w).abs();
                    let tol = if exact {
                        0.0
                    } else {
                        4.0 * f64::from(f32::EPSILON) * top
                    };
                    assert!(err <= tol, "{format:?} {n}x{k} row {row} [{i}]: {g} vs {w}");
                }
            }
        }
    }
}
