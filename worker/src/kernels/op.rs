//! `ai.morpheus.BlockMatMul`, the ONNX Runtime custom operator over the kernels.
//!
//! Inputs: `A` float `[.., K]` (`[.., 2K]` with `activation = "swiglu"`), `B` uint8, the packed
//! weight (see the module docs), optional `norm_weight` float `[K]` (with `"rmsnorm"`), optional
//! `residual` float `[.., N]`, added to the result. Output: `Y` float `[.., N]`. Attributes:
//! `format` (`"q4_0"`, `"q4_1"`, `"q5_0"`, `"q5_1"`, `"q8_0"`, `"q4_k"`, `"q5_k"`, `"q6_k"`), `N`, `K`, `activation` (`"none"`, the default, `"swiglu"`,
//! `"geglu"` or `"rmsnorm"`), `epsilon` (RMSNorm's, default 1e-5).
//!
//! With the norm before and the residual add after, a Llama layer is five nodes: Q|K|V (norm),
//! attention, O (+ residual), gate|up (norm), down (SwiGLU, + residual).
//!
//! The work is split over ONNX Runtime's own intra-op threads (`KernelContext_ParallelFor`), in
//! contiguous runs of 16-row groups so each thread streams its own part of the weight.

use std::{
    cell::RefCell,
    sync::{Mutex, PoisonError},
};

use ort::{
    operator::{
        ComputeContext, Kernel, KernelContext, Operator, OperatorDomain, OperatorInput,
        OperatorOutput,
    },
    value::TensorElementType,
};

use super::{
    Activation, Activations, BlockGather, Format, Isa, Out, Packed, Prologue, Quantized,
    matmul_groups,
};

/// Runs of groups per thread: ONNX Runtime hands them out as threads come free, so a thread
/// slowed by the rest of the machine does not hold the others up (measured on SmolLM2 with two
/// threads: 8 to 64 per thread decode alike, 1 and 4 some 10% slower).
const RUNS_PER_THREAD: usize = 16;

/// The custom operator domain the converter's graphs import.
pub const DOMAIN: &str = "ai.morpheus";

/// The operator domain to register on a session whose intra-op pool has `threads` threads.
pub fn operators(threads: usize, activations: Activations) -> ort::Result<OperatorDomain> {
    OperatorDomain::new(DOMAIN)?
        .add(BlockMatMul::new(threads, activations))?
        .add(BlockGather)
}

/// The `BlockMatMul` operator (one per session; ONNX Runtime creates a kernel per node).
#[derive(Debug, Clone, Copy)]
pub struct BlockMatMul {
    threads: usize,
    isa: Isa,
    activations: Activations,
}

impl BlockMatMul {
    /// For a session with `threads` intra-op threads, on the best kernels this CPU runs.
    pub fn new(threads: usize, activations: Activations) -> Self {
        Self {
            threads: threads.max(1),
            isa: Isa::select(),
            activations,
        }
    }
}

impl Operator for BlockMatMul {
    type Kernel<'attr> = BlockMatMulKernel;

    fn name(&self) -> &str {
        "BlockMatMul"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [
            OperatorInput::required(TensorElementType::Float32),
            OperatorInput::required(TensorElementType::Uint8),
            OperatorInput::optional(TensorElementType::Float32),
            OperatorInput::optional(TensorElementType::Float32),
        ]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(TensorElementType::Float32)]
    }

    fn create_kernel<'attr>(&self, info: &KernelContext<'attr>) -> ort::Result<BlockMatMulKernel> {
        let (node, format, n, k) = weight_attributes("BlockMatMul", info)?;
        let bad = |what: String| ort::Error::new(format!("BlockMatMul node `{node}`: {what}"));
        let activation = info.get::<String>("activation").unwrap_or_default();
        let activation = Activation::parse(&activation).ok_or_else(|| {
            bad(format!(
                "unknown activation `{activation}` (none, swiglu, geglu or rmsnorm)"
            ))
        })?;
        let epsilon = info.get::<f32>("epsilon").unwrap_or(1e-5);
        if !(epsilon.is_finite() && epsilon >= 0.0) {
            return Err(bad(format!(
                "`epsilon` = {epsilon} must be finite and not negative"
            )));
        }
        Ok(BlockMatMulKernel {
            node,
            format,
            n,
            k,
            activation,
            epsilon,
            threads: self.threads,
            isa: self.isa,
            two_stage: self.activations == Activations::Int8x2,
        })
    }
}

/// A node's name and the attributes of the packed weight it reads (`format`, `N`, `K`), each
/// checked; an error names the operator `op`, the node and the attribute.
pub(super) fn weight_attributes(
    op: &str,
    info: &KernelContext<'_>,
) -> ort::Result<(String, Format, usize, usize)> {
    let node = info.node_name().unwrap_or_default();
    let bad = |what: String| ort::Error::new(format!("{op} node `{node}`: {what}"));
    let format = info
        .get::<String>("format")
        .ok_or_else(|| bad("missing the `format` attribute".into()))?;
    let format = Format::parse(&format).ok_or_else(|| {
        let names: Vec<&str> = Format::ALL.iter().map(|(_, n)| *n).collect();
        bad(format!(
            "unknown format `{format}` (one of {})",
            names.join(", ")
        ))
    })?;
    let dim = |name: &str| match info.get::<i64>(name) {
        Some(v) if v > 0 => usize::try_from(v).map_err(|_| bad(format!("`{name}` too large"))),
        Some(v) => Err(bad(format!("`{name}` = {v} must be positive"))),
        None => Err(bad(format!("missing the `{name}` attribute"))),
    };
    let (n, k) = (dim("N")?, dim("K")?);
    Ok((node, format, n, k))
}

thread_local! {
    /// The quantised activations, one set per thread for every `BlockMatMul` node it runs: a
    /// session runs its nodes one at a time on the thread that called it, and buffers sized for
    /// the largest run (a prompt's piece) kept per node held 45 MB of Gemma 3's 81 nodes.
    static ACTIVATIONS: RefCell<Quantized> = RefCell::new(Quantized::default());
}

/// One `BlockMatMul` node: its attributes.
#[derive(Debug)]
pub struct BlockMatMulKernel {
    node: String,
    format: Format,
    n: usize,
    k: usize,
    activation: Activation,
    epsilon: f32,
    threads: usize,
    isa: Isa,
    two_stage: bool,
}

impl Kernel for BlockMatMulKernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let bad =
            |what: String| ort::Error::new(format!("BlockMatMul node `{}`: {what}", self.node));
        let x = ctx.input(0)?.ok_or_else(|| bad("missing input A".into()))?;
        let (shape, xs) = x.try_extract_tensor::<f32>()?;
        let optional = |i: usize| -> ort::Result<_> {
            if ctx.num_inputs()? > i {
                ctx.input(i)
            } else {
                Ok(None)
            }
        };
        let gamma = optional(2)?;
        let prologue = match (self.activation, &gamma) {
            (Activation::None, _) => Prologue::None,
            (Activation::SwiGlu, _) => Prologue::SwiGlu,
            (Activation::GeGlu, _) => Prologue::GeGlu,
            (Activation::RmsNorm, Some(g)) => {
                let (_, gamma) = g.try_extract_tensor::<f32>()?;
                if gamma.len() != self.k {
                    return Err(bad(format!(
                        "norm_weight has {} values, K is {}",
                        gamma.len(),
                        self.k
                    )));
                }
                Prologue::RmsNorm {
                    gamma,
                    eps: self.epsilon,
                }
            }
            (Activation::RmsNorm, None) => {
                return Err(bad("rmsnorm needs input norm_weight".into()));
            }
        };
        let width = prologue.input_width(self.k);
        if shape.last().copied() != Some(width as i64) {
            return Err(bad(format!(
                "input A is {shape:?}, its last dimension must be {width}"
            )));
        }
        let rows = xs.len() / width;
        let b = ctx.input(1)?.ok_or_else(|| bad("missing input B".into()))?;
        let (_, bytes) = b.try_extract_tensor::<u8>()?;
        let w = Packed::new(self.format, self.n, self.k, bytes).map_err(bad)?;
        let residual = optional(3)?;
        let residual = match &residual {
            Some(r) => {
                let (_, values) = r.try_extract_tensor::<f32>()?;
                if values.len() != rows * self.n {
                    return Err(bad(format!(
                        "residual has {} values, the output {} x {}",
                        values.len(),
                        rows,
                        self.n
                    )));
                }
                Some(values)
            }
            None => None,
        };

        let mut out_shape = shape.to_vec();
        if let Some(last) = out_shape.last_mut() {
            *last = self.n as i64;
        }
        let mut y = ctx
            .output(0, out_shape)?
            .ok_or_else(|| bad("no output Y".into()))?;
        let (_, ys) = y.try_extract_tensor_mut::<f32>()?;
        if rows == 0 {
            return Ok(());
        }
        let out = Out::new(ys, rows, self.n);
        let groups = w.groups();
        let runs = groups.min(self.threads * RUNS_PER_THREAD);
        ACTIVATIONS.with_borrow_mut(|a| -> ort::Result<()> {
            // Several rows (streams, a prompt's tokens) are quantised by all the threads.
            let failed = Mutex::new(None);
            let parallel = |tasks: usize, task: &(dyn Fn(usize) + Sync)| {
                if tasks == 1 {
                    task(0);
                } else if let Err(e) = ctx.par_for(tasks, 0, task) {
                    *failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                }
            };
            let (k, two_stage) = (self.k, self.two_stage);
            a.quantize(
                self.isa,
                xs,
                rows,
                k,
                prologue,
                two_stage,
                self.threads,
                &parallel,
            );
            if let Some(e) = failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
                return Err(e);
            }
            let (isa, a) = (self.isa, &*a);
            if self.threads == 1 || runs <= 1 {
                matmul_groups(isa, &w, a, 0..groups, out);
            } else {
                ctx.par_for(runs, 0, |run| {
                    let range = run * groups / runs..(run + 1) * groups / runs;
                    matmul_groups(isa, &w, a, range, out);
                })?;
            }
            Ok(())
        })?;
        if let Some(residual) = residual {
            for (y, r) in ys.iter_mut().zip(residual) {
                *y += r;
            }
        }
        Ok(())
    }
}
