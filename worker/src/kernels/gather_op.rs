//! `ai.morpheus.BlockGather`, the token embeddings' lookup over a packed weight.
//!
//! Inputs: `B` uint8, a packed `N` x `K` weight (the layout `BlockMatMul` reads: a model whose
//! output head is its embedding table passes the same initializer to both), and `indices` int64
//! of any shape. Output: `Y` float `[..indices, K]`, each index's row as GGML dequantises it
//! ([`super::rows`]). Attributes: `format`, `N`, `K`, as `BlockMatMul`'s.
//!
//! An index outside `0..N` fails the run naming it (ONNX's `Gather` would count a negative one
//! from the end; a token id never is one).

use ort::{
    operator::{ComputeContext, Kernel, KernelContext, Operator, OperatorInput, OperatorOutput},
    value::TensorElementType,
};

use super::{Format, Packed, op::weight_attributes, rows::dequantize_row};

/// The `BlockGather` operator.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockGather;

impl Operator for BlockGather {
    type Kernel<'attr> = BlockGatherKernel;

    fn name(&self) -> &str {
        "BlockGather"
    }

    fn inputs(&self) -> impl IntoIterator<Item = OperatorInput> {
        [
            OperatorInput::required(TensorElementType::Uint8),
            OperatorInput::required(TensorElementType::Int64),
        ]
    }

    fn outputs(&self) -> impl IntoIterator<Item = OperatorOutput> {
        [OperatorOutput::required(TensorElementType::Float32)]
    }

    fn create_kernel<'attr>(&self, info: &KernelContext<'attr>) -> ort::Result<BlockGatherKernel> {
        let (node, format, n, k) = weight_attributes("BlockGather", info)?;
        Ok(BlockGatherKernel { node, format, n, k })
    }
}

/// One `BlockGather` node.
#[derive(Debug)]
pub struct BlockGatherKernel {
    node: String,
    format: Format,
    n: usize,
    k: usize,
}

impl Kernel for BlockGatherKernel {
    fn compute(&mut self, ctx: &ComputeContext) -> ort::Result<()> {
        let bad =
            |what: String| ort::Error::new(format!("BlockGather node `{}`: {what}", self.node));
        let b = ctx.input(0)?.ok_or_else(|| bad("missing input B".into()))?;
        let (_, bytes) = b.try_extract_tensor::<u8>()?;
        let w = Packed::new(self.format, self.n, self.k, bytes).map_err(bad)?;
        let ids = ctx
            .input(1)?
            .ok_or_else(|| bad("missing input indices".into()))?;
        let (shape, ids) = ids.try_extract_tensor::<i64>()?;
        let rows = ids
            .iter()
            .map(|&id| {
                usize::try_from(id)
                    .ok()
                    .filter(|&row| row < self.n)
                    .ok_or_else(|| bad(format!("index {id} is outside the table's 0..{}", self.n)))
            })
            .collect::<ort::Result<Vec<usize>>>()?;
        let mut out_shape = shape.to_vec();
        out_shape.push(self.k as i64);
        let mut y = ctx
            .output(0, out_shape)?
            .ok_or_else(|| bad("no output Y".into()))?;
        let (_, ys) = y.try_extract_tensor_mut::<f32>()?;
        for (row, out) in rows.into_iter().zip(ys.chunks_exact_mut(self.k)) {
            dequantize_row(&w, row, out);
        }
        Ok(())
    }
}
