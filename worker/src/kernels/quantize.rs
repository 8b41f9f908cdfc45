//! Activations to int8 per block of 32, with the per-block sums the kernels' offsets need.

use std::sync::{Mutex, PoisonError};

use super::{BLOCK, Isa, Q4_1_CENTRE};

/// Residual steps per int8 step: `r` spans half a step in 127 steps each way.
pub(crate) const RESIDUAL: f32 = 254.0;

/// What the operator applies to its input before the matmul (its `activation` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// The input as is: `[.., k]`.
    None,
    /// `silu(gate) * up` of an input `[.., 2k]` holding gate then up (Llama's MLP), so the
    /// gate|up matmul feeds the down matmul without three graph nodes in between.
    SwiGlu,
    /// RMSNorm with a weight (the operator's third input) and `epsilon`: the layer norms before
    /// attention, the MLP and the output head, without a graph node of their own.
    RmsNorm,
    /// `gelu(gate) * up` (GELU's tanh form, as GGML's `ggml_gelu`) of an input `[.., 2k]`:
    /// Gemma's MLP.
    GeGlu,
}

impl Activation {
    /// From the operator's `activation` attribute.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "" | "none" => Some(Self::None),
            "swiglu" => Some(Self::SwiGlu),
            "rmsnorm" => Some(Self::RmsNorm),
            "geglu" => Some(Self::GeGlu),
            _ => None,
        }
    }
}

/// The gate of a gated MLP (`gate(g) * up`), as the SIMD quantisers apply it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// SwiGLU's `silu(g)`.
    Silu,
    /// GeGLU's `gelu(g)`, tanh form.
    Gelu,
}

/// An [`Activation`] with what it needs, for one run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prologue<'a> {
    /// See [`Activation::None`].
    None,
    /// See [`Activation::SwiGlu`].
    SwiGlu,
    /// See [`Activation::GeGlu`].
    GeGlu,
    /// `x / sqrt(mean(x^2) + eps) * gamma`, `gamma` `k` long.
    RmsNorm { gamma: &'a [f32], eps: f32 },
}

impl Prologue<'_> {
    /// Input width the operator takes for a weight of `k` inputs.
    pub(crate) fn input_width(self, k: usize) -> usize {
        match self {
            Self::SwiGlu | Self::GeGlu => 2 * k,
            Self::None | Self::RmsNorm { .. } => k,
        }
    }
}

/// `rows` activation rows of width `k`, quantised per block: `x ≈ d * q`, `q` the nearest int8
/// step, and with two stages `x ≈ d * (q + r / RESIDUAL)`, `r` the rounding left over, so the
/// error is 1/508 of a step instead of 1/2. The kernels run both stages through the same
/// unpacked weights (one more `vpdpbusd` each); the logits then sit within ~1e-5 (cosine) of the
/// float ones instead of ~1e-3 (`kernels::Activations`).
///
/// Kept by the kernel between runs so decoding allocates nothing per step.
#[derive(Debug, Default)]
pub(crate) struct Quantized {
    rows: usize,
    k: usize,
    /// Whether `r` is filled (else only the first stage is computed and used).
    two_stage: bool,
    /// int8 values, `[rows, k]`.
    pub(crate) q: Vec<i8>,
    /// int8 residuals in steps of `d / RESIDUAL`, `[rows, k]`.
    pub(crate) r: Vec<i8>,
    /// Scale per block, `[rows, k/32]`.
    pub(crate) d: Vec<f32>,
    /// Sum of the block's real (unquantised) values, for Q4_1's `m` term.
    pub(crate) sum: Vec<f32>,
    /// Sum of the block's `q`, for the weights' offsets (Q4_1's centre, Q8_0's `+128`).
    pub(crate) qsum: Vec<i32>,
    /// Sum of the block's `r`, likewise.
    pub(crate) rsum: Vec<i32>,
    /// Sum of `q` per half block (16 inputs), `[rows, k/16]`: the decoded formats' centres
    /// (`kernels::decode`) are taken off per half, as Q6_K's scales cover 16 inputs.
    pub(crate) half_qsum: Vec<i32>,
    /// Sum of `r` per half block, likewise.
    pub(crate) half_rsum: Vec<i32>,
    /// Per block, `8 * (sum - d * (qsum + rsum/RESIDUAL))`: with it a Q4_1 block is
    /// `d_w * (d * x·q + centre) + m_w * sum`, where x·q is the dot product with the raw
    /// 4-bit weights. That equals `d_w * x̂·(q - 8) + (m_w + 8 d_w) * sum`: the int8 rounding
    /// errors meet weights centred on zero (see `Q4_1_CENTRE`), and the rest is exact.
    pub(crate) centre_q4_1: Vec<f32>,
    /// Per block, `d * (qsum + rsum/RESIDUAL)`: the block's quantised values summed, so that a
    /// format stored with a centre `c` takes `c` times it off `d * dot` once per block and row.
    pub(crate) quantised_sum: Vec<f32>,
    /// Per half block (16 inputs), likewise, `[rows, k/16]`: for Q6_K's scale per half.
    pub(crate) half_quantised_sum: Vec<f32>,
    /// Per block, `-128 * d * (qsum + rsum/RESIDUAL)`: takes off the `+128` of Q8_0's stored
    /// weights, so a block is `d_w * (d * x·(q + 128) + offset)`.
    pub(crate) offset_q8_0: Vec<f32>,
    /// With two stages, both in one i16, `[rows, k]`: `q * RESIDUAL + r` (at most 32,385 in
    /// magnitude), so that AVX2 takes 8-bit weights times both stages in one `vpmaddwd`.
    pub(crate) wide: Vec<i16>,
    /// A row after a gate, per part of the rows (`k` each).
    scratch: Vec<f32>,
    /// A row after RMSNorm, per part of the rows (`k` each).
    normed: Vec<f32>,
}

/// Runs `tasks` tasks, `task(0)` to `task(tasks - 1)`, perhaps on several threads at once.
pub(crate) type Parallel<'a> = &'a dyn Fn(usize, &(dyn Fn(usize) + Sync));

/// One task after the other, on the calling thread.
pub(crate) fn in_turn(tasks: usize, task: &(dyn Fn(usize) + Sync)) {
    (0..tasks).for_each(task);
}

impl Quantized {
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn k(&self) -> usize {
        self.k
    }

    pub(crate) fn two_stage(&self) -> bool {
        self.two_stage
    }

    /// Sizes the buffers for `rows` x `k` (keeps their memory when they shrink).
    pub(crate) fn reset(&mut self, rows: usize, k: usize) {
        assert!(k.is_multiple_of(BLOCK), "k must be a multiple of {BLOCK}");
        self.rows = rows;
        self.k = k;
        let kb = k / BLOCK;
        self.q.resize(rows * k, 0);
        self.r.resize(rows * k, 0);
        self.d.resize(rows * kb, 0.0);
        self.sum.resize(rows * kb, 0.0);
        self.qsum.resize(rows * kb, 0);
        self.rsum.resize(rows * kb, 0);
        self.half_qsum.resize(rows * kb * 2, 0);
        self.half_rsum.resize(rows * kb * 2, 0);
        self.centre_q4_1.resize(rows * kb, 0.0);
        self.offset_q8_0.resize(rows * kb, 0.0);
        self.quantised_sum.resize(rows * kb, 0.0);
        self.half_quantised_sum.resize(rows * kb * 2, 0.0);
    }

    /// Quantises all rows of `x` (`[rows, act.input_width(k)]`) after `act`; with `two_stage`,
    /// the kernels use the residuals too (see the type's docs). The rows go in `parts` parts,
    /// run by `parallel` ([`in_turn`] on this thread): a batch's rows (decoding several streams,
    /// a prompt) are quantised by the threads that then share its matmul, instead of by one
    /// while the others wait.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn quantize(
        &mut self,
        isa: Isa,
        x: &[f32],
        rows: usize,
        k: usize,
        act: Prologue<'_>,
        two_stage: bool,
        parts: usize,
        parallel: Parallel<'_>,
    ) {
        self.reset(rows, k);
        self.two_stage = two_stage;
        let width = act.input_width(k);
        assert_eq!(x.len(), rows * width, "input must be rows x {width}");
        if let Prologue::RmsNorm { gamma, .. } = act {
            assert_eq!(gamma.len(), k, "the norm weight must be {k} long");
        }
        if rows == 0 {
            return;
        }
        let parts = parts.clamp(1, rows);
        self.wide.resize(if two_stage { rows * k } else { 0 }, 0);
        self.scratch.resize(parts * k, 0.0);
        self.normed.resize(parts * k, 0.0);
        let mut rest = Part {
            k,
            q: &mut self.q,
            r: &mut self.r,
            d: &mut self.d,
            sum: &mut self.sum,
            qsum: &mut self.qsum,
            rsum: &mut self.rsum,
            half_qsum: &mut self.half_qsum,
            half_rsum: &mut self.half_rsum,
            centre_q4_1: &mut self.centre_q4_1,
            quantised_sum: &mut self.quantised_sum,
            half_quantised_sum: &mut self.half_quantised_sum,
            offset_q8_0: &mut self.offset_q8_0,
            wide: &mut self.wide,
        };
        let mut buffers = self
            .scratch
            .chunks_exact_mut(k)
            .zip(self.normed.chunks_exact_mut(k));
        let mut tasks = Vec::with_capacity(parts);
        for p in 0..parts {
            let (from, to) = (p * rows / parts, (p + 1) * rows / parts);
            let part = rest.take_front(to - from);
            let (scratch, normed) = buffers.next().expect("a buffer per part");
            let x = &x[from * width..to * width];
            tasks.push(Mutex::new(Some((part, x, scratch, normed))));
        }
        parallel(parts, &|p| {
            let task = tasks[p]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some((mut part, x, scratch, normed)) = task {
                part.quantize(isa, x, act, two_stage, scratch, normed);
            }
        });
    }
}

/// One row's quantised values (`k`: `q`, `res`) and per-block figures (`k/32`: the others), as
/// the SIMD quantisers write them.
pub(super) struct RowOut<'a> {
    pub(super) q: &'a mut [i8],
    pub(super) res: &'a mut [i8],
    pub(super) d: &'a mut [f32],
    pub(super) sum: &'a mut [f32],
    pub(super) qsum: &'a mut [i32],
    pub(super) rsum: &'a mut [i32],
}

/// Rows of a [`Quantized`]'s buffers (row 0 the first of them), filled apart from its other rows.
struct Part<'a> {
    k: usize,
    q: &'a mut [i8],
    r: &'a mut [i8],
    d: &'a mut [f32],
    sum: &'a mut [f32],
    qsum: &'a mut [i32],
    rsum: &'a mut [i32],
    half_qsum: &'a mut [i32],
    half_rsum: &'a mut [i32],
    centre_q4_1: &'a mut [f32],
    quantised_sum: &'a mut [f32],
    half_quantised_sum: &'a mut [f32],
    offset_q8_0: &'a mut [f32],
    /// Empty with one stage.
    wide: &'a mut [i16],
}

impl<'a> Part<'a> {
    /// Takes its first `rows` rows off, as a part of their own.
    fn take_front(&mut self, rows: usize) -> Self {
        fn front<'a, T>(s: &mut &'a mut [T], len: usize) -> &'a mut [T] {
            let len = len.min(s.len());
            let (front, back) = std::mem::take(s).split_at_mut(len);
            *s = back;
            front
        }
        let (k, kb) = (self.k, self.k / BLOCK);
        Part {
            k,
            q: front(&mut self.q, rows * k),
            r: front(&mut self.r, rows * k),
            d: front(&mut self.d, rows * kb),
            sum: front(&mut self.sum, rows * kb),
            qsum: front(&mut self.qsum, rows * kb),
            rsum: front(&mut self.rsum, rows * kb),
            half_qsum: front(&mut self.half_qsum, rows * kb * 2),
            half_rsum: front(&mut self.half_rsum, rows * kb * 2),
            centre_q4_1: front(&mut self.centre_q4_1, rows * kb),
            quantised_sum: front(&mut self.quantised_sum, rows * kb),
            half_quantised_sum: front(&mut self.half_quantised_sum, rows * kb * 2),
            offset_q8_0: front(&mut self.offset_q8_0, rows * kb),
            wide: front(&mut self.wide, rows * k),
        }
    }

    /// Quantises its rows from `x` (as many rows, each `act.input_width(k)` wide); `scratch`
    /// and `normed` hold `k` floats.
    fn quantize(
        &mut self,
        isa: Isa,
        x: &[f32],
        act: Prologue<'_>,
        two_stage: bool,
        scratch: &mut [f32],
        normed: &mut [f32],
    ) {
        let k = self.k;
        let width = act.input_width(k);
        for (r, x) in x.chunks_exact(width).enumerate() {
            let mut x = x;
            // The SIMD paths apply a gate with their own vector `exp`; plain Rust calls libm's.
            let simd = matches!(isa, Isa::Avx512Vnni | Isa::Avx2);
            let mut swiglu = false;
            let mut gate = None;
            match act {
                Prologue::None => {}
                Prologue::SwiGlu if simd => gate = Some(Gate::Silu),
                Prologue::SwiGlu => swiglu = true,
                Prologue::GeGlu if simd => gate = Some(Gate::Gelu),
                Prologue::GeGlu => {
                    let (gate, up) = x.split_at(k);
                    for ((n, &g), &u) in normed.iter_mut().zip(gate).zip(up) {
                        *n = gelu_tanh(g) * u;
                    }
                    x = normed;
                }
                Prologue::RmsNorm { gamma, eps } => {
                    let mean = x.iter().map(|v| v * v).sum::<f32>() / k as f32;
                    let inv = 1.0 / (mean + eps).sqrt();
                    for ((n, v), g) in normed.iter_mut().zip(x).zip(gamma) {
                        *n = v * inv * g;
                    }
                    x = normed;
                }
            }
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512Vnni => {
                    // SAFETY: the features were detected for this `Isa`; every slice is sized
                    // as `quantize_row` requires (k a multiple of 32, checked by `reset`).
                    unsafe { super::avx512::quantize_row(x, gate, scratch, self.row(r)) }
                }
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => {
                    // SAFETY: the features were detected for this `Isa`; `scratch` is k long
                    // and `x` 2k long under a gate (`input_width`), k otherwise; the other
                    // slices are sized as `quantize_row` requires (k a multiple of 32).
                    unsafe {
                        let row = if let Some(gate) = gate {
                            super::avx2::gated(x, gate, scratch);
                            &*scratch
                        } else {
                            x
                        };
                        super::avx2::quantize_row(row, self.row(r))
                    }
                }
                _ => self.quantize_row(r, x, swiglu, scratch),
            }
            self.sums(r, two_stage);
        }
    }

    /// What a SIMD quantiser writes of row `r`.
    fn row(&mut self, r: usize) -> RowOut<'_> {
        let (k, kb) = (self.k, self.k / BLOCK);
        RowOut {
            q: &mut self.q[r * k..(r + 1) * k],
            res: &mut self.r[r * k..(r + 1) * k],
            d: &mut self.d[r * kb..(r + 1) * kb],
            sum: &mut self.sum[r * kb..(r + 1) * kb],
            qsum: &mut self.qsum[r * kb..(r + 1) * kb],
            rsum: &mut self.rsum[r * kb..(r + 1) * kb],
        }
    }

    /// Row `r`'s sums and offsets (and `wide`) from its quantised values.
    fn sums(&mut self, r: usize, two_stage: bool) {
        let k = self.k;
        let kb = k / BLOCK;
        if two_stage {
            let row = r * k..(r + 1) * k;
            for ((w, &q), &res) in self.wide[row.clone()]
                .iter_mut()
                .zip(&self.q[row.clone()])
                .zip(&self.r[row])
            {
                *w = i16::from(q) * RESIDUAL as i16 + i16::from(res);
            }
        }
        let half = BLOCK / 2;
        for i in r * kb * 2..(r + 1) * kb * 2 {
            let q = &self.q[i * half..(i + 1) * half];
            self.half_qsum[i] = q.iter().map(|&v| i32::from(v)).sum();
            self.half_rsum[i] = if two_stage {
                let res = &self.r[i * half..(i + 1) * half];
                res.iter().map(|&v| i32::from(v)).sum()
            } else {
                0
            };
            self.half_quantised_sum[i] =
                self.d[i / 2] * (self.half_qsum[i] as f32 + self.half_rsum[i] as f32 / RESIDUAL);
        }
        let centre = Q4_1_CENTRE as f32;
        for i in r * kb..(r + 1) * kb {
            let res = if two_stage {
                self.rsum[i] as f32 / RESIDUAL
            } else {
                0.0
            };
            let quantised_sum = self.d[i] * (self.qsum[i] as f32 + res);
            self.centre_q4_1[i] = centre * (self.sum[i] - quantised_sum);
            self.offset_q8_0[i] = -128.0 * quantised_sum;
            self.quantised_sum[i] = quantised_sum;
        }
    }

    /// Quantises row `r` from `x` (one input row: `k` wide, `2k` with `swiglu`), in plain Rust.
    #[inline(always)]
    fn quantize_row(&mut self, r: usize, x: &[f32], swiglu: bool, scratch: &mut [f32]) {
        let k = self.k;
        let kb = k / BLOCK;
        let row: &[f32] = if swiglu {
            let (gate, up) = x.split_at(k);
            for ((s, &g), &u) in scratch.iter_mut().zip(gate).zip(up) {
                *s = g / (1.0 + (-g).exp()) * u;
            }
            scratch
        } else {
            x
        };
        let q = &mut self.q[r * k..(r + 1) * k];
        let res = &mut self.r[r * k..(r + 1) * k];
        for b in 0..kb {
            let xs = &row[b * BLOCK..(b + 1) * BLOCK];
            let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let sum: f32 = xs.iter().sum();
            let (d, inv) = if amax > 0.0 {
                (amax / 127.0, 127.0 / amax)
            } else {
                (0.0, 0.0)
            };
            let (mut qsum, mut rsum) = (0i32, 0i32);
            for j in b * BLOCK..(b + 1) * BLOCK {
                // |t| <= 127 by construction, and t - q is within half a step.
                let t = row[j] * inv;
                let qv = t.round_ties_even();
                let rv = ((t - qv) * RESIDUAL).round_ties_even();
                q[j] = qv.clamp(-127.0, 127.0) as i8;
                res[j] = rv.clamp(-127.0, 127.0) as i8;
                qsum += i32::from(q[j]);
                rsum += i32::from(res[j]);
            }
            let i = r * kb + b;
            self.d[i] = d;
            self.sum[i] = sum;
            self.qsum[i] = qsum;
            self.rsum[i] = rsum;
        }
    }
}

/// `sqrt(2/pi)`, of GELU's tanh form.
pub(crate) const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic's coefficient in GELU's tanh form.
pub(crate) const GELU_CUBIC: f32 = 0.044_715;

/// GELU's tanh form: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x.mul_add(GELU_CUBIC * x * x, x)).tanh())
}

/// The SIMD `exp`s (`avx512::exp`, `avx2::exp`): `e^x = 2^n * p(r)`, `x = n ln2 + r`,
/// `|r| <= ln2/2`, `p` the degree-6 Taylor polynomial (error below 4e-7 relative), its
/// coefficients from the highest power down; ln 2 in two parts, so `n * ln2` is subtracted
/// without losing `r`'s low bits.
pub(crate) const EXP_TAYLOR: [f32; 7] = [
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];
/// The high part of ln 2 (see [`EXP_TAYLOR`]).
pub(crate) const LN2_HI: f32 = 0.693_145_75;
/// The low part of ln 2.
pub(crate) const LN2_LO: f32 = 1.428_606_8e-6;
/// The range the SIMD `exp`s clamp their input to (beyond it f32 under- or overflows).
pub(crate) const EXP_RANGE: (f32, f32) = (-87.0, 88.0);
