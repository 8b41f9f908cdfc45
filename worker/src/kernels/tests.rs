//! The kernels against a float64 reference of GGML's formats, on random blocks and odd shapes.

use crate::engine::SplitMix64;

use super::{
    BLOCK, Format, Isa, Out, Packed, Prologue, Quantized, ROWS, matmul_groups, portable::f16,
};

/// Deterministic pseudo-random test data.
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Self {
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

    fn float(&mut self) -> f32 {
        self.0.next_f32() * 4.0 - 2.0
    }
}

/// A GGML weight: `n` rows of `k/32` raw blocks, as the GGUF stores it.
fn ggml(format: Format, n: usize, k: usize, rng: &mut Rng) -> Vec<u8> {
    let per = match format {
        Format::Q4_1 => 20,
        Format::Q8_0 => 34,
    };
    let mut raw = Vec::with_capacity(n * k / BLOCK * per);
    for _ in 0..n * k / BLOCK {
        raw.extend(rng.half());
        if format == Format::Q4_1 {
            raw.extend(rng.half());
        }
        for _ in 0..(per - raw.len() % per) % per {
            raw.push(rng.byte());
        }
    }
    raw
}

/// The packed layout of `mod.rs`, built from GGML blocks (what the Python converter writes).
fn pack(format: Format, raw: &[u8], n: usize, k: usize) -> Vec<u8> {
    let kb = k / BLOCK;
    let groups = n.div_ceil(ROWS);
    let mut out = vec![0u8; groups * kb * format.group_block_bytes()];
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
                }
            }
        }
    }
    out
}

/// GGML's dequantisation of one weight, in f64.
fn dequantize(format: Format, raw: &[u8], n: usize, k: usize) -> Vec<f64> {
    let kb = k / BLOCK;
    let mut w = vec![0f64; n * k];
    for row in 0..n {
        for b in 0..kb {
            for j in 0..BLOCK {
                let v = match format {
                    Format::Q4_1 => {
                        let blk = &raw[(row * kb + b) * 20..][..20];
                        let q = if j < 16 {
                            blk[4 + j] & 0x0F
                        } else {
                            blk[4 + j - 16] >> 4
                        };
                        f64::from(f16(blk, 0)) * f64::from(q) + f64::from(f16(blk, 2))
                    }
                    Format::Q8_0 => {
                        let blk = &raw[(row * kb + b) * 34..][..34];
                        f64::from(f16(blk, 0)) * f64::from(blk[2 + j] as i8)
                    }
                };
                w[row * k + b * BLOCK + j] = v;
            }
        }
    }
    w
}

/// `y = x @ W^T` in f64 with the kernels' own activation rounding: `d*(q + r/254)` for the products, and
/// the real block sums for Q4_1's centred offsets `m + 8d`.
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
                for j in 0..BLOCK {
                    let i = b * BLOCK + j;
                    let r = if a.two_stage() {
                        f64::from(a.r[m * k + i]) / 254.0
                    } else {
                        0.0
                    };
                    let steps = f64::from(a.q[m * k + i]) + r;
                    let x = f64::from(a.d[ab]) * steps;
                    let wv = w[col * k + i];
                    acc += match format {
                        // d*(q - 8) on the int8 activations; m + 8d on the real block sum.
                        Format::Q4_1 => {
                            let blk = &raw[(col * kb + b) * 20..][..20];
                            let d = f64::from(f16(blk, 0));
                            (wv - f64::from(f16(blk, 2)) - 8.0 * d) * x
                        }
                        Format::Q8_0 => wv * x,
                    };
                }
                if format == Format::Q4_1 {
                    let blk = &raw[(col * kb + b) * 20..][..20];
                    let (d, m) = (f64::from(f16(blk, 0)), f64::from(f16(blk, 2)));
                    acc += (m + 8.0 * d) * f64::from(a.sum[ab]);
                }
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

fn activations(rows: usize, width: usize, rng: &mut Rng) -> Vec<f32> {
    (0..rows * width).map(|_| rng.float()).collect()
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
    for format in [Format::Q4_1, Format::Q8_0] {
        for (n, k) in [(1, 32), (15, 64), (16, 32), (17, 96), (40, 128), (48, 1536)] {
            let raw = ggml(format, n, k, &mut rng);
            let packed = pack(format, &raw, n, k);
            for (rows, two_stage) in [
                (1, true),
                (2, false),
                (3, true),
                (4, true),
                (5, false),
                (9, true),
            ] {
                let x = activations(rows, k, &mut rng);
                let mut a = Quantized::default();
                a.quantize(Isa::Portable, &x, rows, k, Prologue::None, two_stage);
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
fn the_result_is_close_to_the_float_matmul() {
    // Only the int8 activations differ from a float matmul: the weights are GGML's, exactly.
    let mut rng = Rng::new(11);
    let (n, k, rows) = (64, 576, 3);
    for format in [Format::Q4_1, Format::Q8_0] {
        let raw = ggml(format, n, k, &mut rng);
        let packed = pack(format, &raw, n, k);
        let w = dequantize(format, &raw, n, k);
        let x = activations(rows, k, &mut rng);
        // Root of the summed squared error over that of the exact result.
        let relative_error = |two_stage: bool| {
            let mut a = Quantized::default();
            a.quantize(Isa::Portable, &x, rows, k, Prologue::None, two_stage);
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

#[test]
fn swiglu_is_applied_before_quantising() {
    let mut rng = Rng::new(3);
    let (rows, k) = (2, 64);
    let mut x = activations(rows, 2 * k, &mut rng);
    x[5] = -95.0; // exp(95) overflows f32: silu must still be ~0 there
    x[6] = 95.0;
    let act: Vec<f32> = (0..rows)
        .flat_map(|r| {
            let row = &x[r * 2 * k..(r + 1) * 2 * k];
            (0..k)
                .map(|i| row[i] / (1.0 + (-row[i]).exp()) * row[k + i])
                .collect::<Vec<_>>()
        })
        .collect();
    for isa in isas() {
        let mut fused = Quantized::default();
        fused.quantize(isa, &x, rows, k, Prologue::SwiGlu, true);
        let mut plain = Quantized::default();
        plain.quantize(Isa::Portable, &act, rows, k, Prologue::None, true);
        for (i, (f, p)) in fused.q.iter().zip(&plain.q).enumerate() {
            // A vector exp may land a value on the other side of a rounding boundary.
            assert!(
                (i16::from(*f) - i16::from(*p)).abs() <= 1,
                "{isa:?} q[{i}]: {f} vs {p}"
            );
        }
        for (f, p) in fused.d.iter().zip(&plain.d) {
            assert!((f - p).abs() <= 1e-6 * p.abs(), "{isa:?} scale {f} vs {p}");
        }
    }
}

#[test]
fn every_isa_quantises_alike() {
    let mut rng = Rng::new(5);
    let (rows, k) = (3, 576);
    let mut x = activations(rows, k, &mut rng);
    x[64..96].fill(0.0); // an all-zero block
    let mut want = Quantized::default();
    want.quantize(Isa::Portable, &x, rows, k, Prologue::None, true);
    for isa in isas() {
        let mut got = Quantized::default();
        got.quantize(isa, &x, rows, k, Prologue::None, true);
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
fn quantised_blocks_are_exact_for_zero_and_keep_their_sums() {
    for isa in isas() {
        let mut a = Quantized::default();
        let mut x = vec![0f32; 64];
        x[40] = -3.0;
        x[41] = 1.5;
        x[42] = 3.0 * 0.5 / 127.0; // 0.5 after scaling: ties to even, 0
        x[43] = 3.0 * 1.5 / 127.0; // 1.5: ties to even, 2
        a.quantize(isa, &x, 1, 64, Prologue::None, true);
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
}
