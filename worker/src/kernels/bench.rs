//! `morpheus-worker model kernels`: one matmul per block format on each implementation this CPU
//! runs, on random GGML blocks, one thread, for comparing formats and ISAs.

use std::time::Instant;

use super::{
    Format, Isa, Out, Packed, Prologue, Quantized, matmul_groups,
    quantize::in_turn,
    sample::{Rng, activations, ggml, pack},
};

/// One measurement: the best of the rounds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelTiming {
    /// Operator name of the format (`q4_k`, ...).
    pub format: &'static str,
    /// The implementation (`avx512`, `avx2`, `portable`).
    pub isa: &'static str,
    /// Activation rows (1: one decoding stream).
    pub rows: usize,
    /// Milliseconds per matmul.
    pub ms: f64,
    /// Weight bytes read per second (packed size / time), GB/s.
    pub gb_per_s: f64,
}

/// `n` x `k` weights (k a multiple of 256) times `rows` activation rows, two-stage activations,
/// for each of `formats` (by name; every format when empty) and every implementation this CPU
/// has; the best of `repeats` rounds of enough calls to take ~20 ms each.
pub fn run(
    n: usize,
    k: usize,
    rows: &[usize],
    formats: &[String],
    repeats: usize,
) -> Result<Vec<KernelTiming>, String> {
    if n == 0 || k == 0 || !k.is_multiple_of(256) {
        return Err(format!(
            "weights of {n} x {k}: n must be positive and k a positive multiple of 256"
        ));
    }
    let wanted = formats
        .iter()
        .map(|name| {
            Format::parse(name).ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|(_, name)| *name).collect();
                format!(
                    "no block format is called {name:?}; the formats are {}",
                    names.join(", ")
                )
            })
        })
        .collect::<Result<Vec<Format>, String>>()?;
    let mut isas = vec![(Isa::Portable, "portable")];
    let best = Isa::detect();
    if best != Isa::Portable {
        isas.push((Isa::Avx2, "avx2"));
    }
    if best == Isa::Avx512Vnni {
        isas.push((Isa::Avx512Vnni, "avx512"));
    }
    let mut rng = Rng::new(1);
    let mut out = Vec::new();
    for (format, name) in Format::ALL {
        if !wanted.is_empty() && !wanted.contains(&format) {
            continue;
        }
        let raw = ggml(format, n, k, &mut rng);
        let packed = pack(format, &raw, n, k);
        let w = Packed::new(format, n, k, &packed)?;
        for &r in rows {
            let x = activations(r, k, &mut rng);
            let mut a = Quantized::default();
            a.quantize(Isa::Portable, &x, r, k, Prologue::None, true, 1, &in_turn);
            let mut y = vec![0f32; r * n];
            for &(isa, isa_name) in &isas {
                let once = || {
                    let start = Instant::now();
                    matmul_groups(isa, &w, &a, 0..w.groups(), Out::new(&mut y.clone(), r, n));
                    start.elapsed().as_secs_f64()
                };
                let calls = (0.02 / once().max(1e-6)).ceil().clamp(1.0, 10_000.0) as usize;
                let mut best_s = f64::INFINITY;
                for _ in 0..repeats.max(1) {
                    let start = Instant::now();
                    for _ in 0..calls {
                        matmul_groups(isa, &w, &a, 0..w.groups(), Out::new(&mut y, r, n));
                    }
                    best_s = best_s.min(start.elapsed().as_secs_f64() / calls as f64);
                }
                out.push(KernelTiming {
                    format: name,
                    isa: isa_name,
                    rows: r,
                    ms: best_s * 1e3,
                    gb_per_s: packed.len() as f64 / best_s / 1e9,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_formats_asked_for_are_timed_and_an_unknown_one_is_named() {
        let timings = super::run(16, 256, &[1], &["q6_k".into()], 1).expect("q6_k");
        assert!(!timings.is_empty());
        assert!(timings.iter().all(|t| t.format == "q6_k"), "{timings:?}");
        let err = super::run(16, 256, &[1], &["q4_k".into(), "q9_9".into()], 1).expect_err("q9_9");
        assert!(err.contains("\"q9_9\"") && err.contains("q4_k, "), "{err}");
    }
}
