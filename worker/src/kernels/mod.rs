//! Matrix-vector kernels over GGML's own quantised blocks, run as an ONNX Runtime custom operator.
//!
//! `ai.morpheus.BlockMatMul` computes `y = act(x) @ W^T` for a weight kept exactly as the GGUF
//! stores it (Q4_1: `w = d*q + m`, Q8_0: `w = d*q`, blocks of 32 along `k`), so a prepared model
//! reads the GGUF's bytes per token and nothing more: 5 bits per Q4_1 weight, where ONNX
//! Runtime's `MatMulNBits` needs either 8-bit weights or a second matmul for Q4_1's minimums.
//! The activations are quantised to int8 per block of 32 (as llama.cpp and `MatMulNBits` at
//! accuracy level 4 do) and the products run on 8-bit integer dot products.
//!
//! # Packed layout
//!
//! The converter (`worker/python/morpheus_model/blocks.py`, `pack_groups`) reorders the GGUF's
//! bytes, losslessly, so that one SIMD register holds 16 output rows: a weight of `n` rows by `k`
//! inputs is `[ceil(n/16) groups][k/32 blocks][group-block bytes]` (rows past `n` are zero):
//!
//! * Q4_1, 320 bytes: `qs[4][16][4]` (chunk `c`, row `r`, byte `j`: the low nibble is element
//!   `4c + j` of the block, the high nibble element `16 + 4c + j`, exactly GGML's nibbles), then
//!   `d[16]` and `m[16]` as f16.
//! * Q8_0, 544 bytes: `qs[8][16][4]` (chunk `s`, row `r`, byte `j`: element `4s + j` as `q + 128`),
//!   then `d[16]` as f16.
//!
//! Implementations: AVX-512 VNNI, AVX2 (two registers of 8 rows per chunk) and plain Rust, chosen
//! at start from what the CPU has ([`Isa`]); all three compute the same sums.
//!
//! With that layout a 64-byte load is four inputs of all 16 rows, and one `vpdpbusd` with four
//! broadcast int8 activations advances 16 dot products at once; each byte of the weight is
//! loaded once per token.
//!
//! `ai.morpheus.BlockGather` (`gather_op.rs`, `rows.rs`) looks rows of the same layout up, as
//! GGML dequantises them: the token embeddings, read from the GGUF's blocks (and, when the head
//! is tied to them, from the head's own bytes).

mod avx2;
mod avx2_decode;
mod avx512;
mod avx512_packed;
pub mod bench;
mod decode;
mod gather_op;
mod op;
mod portable;
mod quantize;
mod rows;
mod sample;

#[cfg(test)]
mod tests;

pub use gather_op::{BlockGather, BlockGatherKernel};
pub use op::{BlockMatMul, BlockMatMulKernel, DOMAIN, operators};
pub(crate) use quantize::{Activation, Prologue, Quantized};

/// How the operator quantises its activations (a run-time choice: the model file is the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activations {
    /// Two int8 stages per block (`Quantized`): ~15 bits, logits within ~0.01 of a float forward
    /// pass of the GGUF's weights, at two dot products per weight byte.
    #[default]
    Int8x2,
    /// One int8 stage per block, as llama.cpp and ONNX Runtime's `MatMulNBits` do: one dot
    /// product per weight byte (about a quarter faster for one stream), logits within ~2 of the
    /// float ones (cosine ~0.999), which can flip a near-tie between two tokens: SmolLM2 Q4_1
    /// then answers the demo's question in French.
    Int8,
}

impl Activations {
    /// The name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Int8x2 => "int8x2",
            Self::Int8 => "int8",
        }
    }
}

/// Inputs per quantisation block.
pub(crate) const BLOCK: usize = 32;
/// Output rows per packed group (one 512-bit register of f32 or i32).
pub(crate) const ROWS: usize = 16;

/// Q4_1 blocks are computed as `d*(q - 8) + (m + 8d)`: the int8 activations' rounding errors
/// then meet weights centred on zero instead of 0..15, which makes the result about twice as
/// close to the exact one; the `m + 8d` part takes the block's real sum, so it adds no error.
pub(crate) const Q4_1_CENTRE: i32 = 8;

/// The block formats the kernels take (GGML's, bit for bit), under GGML's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub(crate) enum Format {
    /// GGML Q4_0: `w = d*(q - 8)`, `q` 4-bit.
    Q4_0,
    /// GGML Q4_1: `w = d*q + m`, `q` 4-bit unsigned.
    Q4_1,
    /// GGML Q5_0: `w = d*(q - 16)`, `q` 5-bit.
    Q5_0,
    /// GGML Q5_1: `w = d*q + m`, `q` 5-bit.
    Q5_1,
    /// GGML Q8_0: `w = d*q`, `q` 8-bit signed.
    Q8_0,
    /// GGML Q4_K: super-blocks of 256, 8 sub-blocks with 6-bit scales and minimums.
    Q4_K,
    /// GGML Q5_K: as Q4_K with a fifth bit per weight.
    Q5_K,
    /// GGML Q6_K: super-blocks of 256, 6-bit weights, 16 sub-blocks with int8 scales.
    Q6_K,
}

impl Format {
    /// Every format, in the operator's names.
    pub(crate) const ALL: [(Self, &'static str); 8] = [
        (Self::Q4_0, "q4_0"),
        (Self::Q4_1, "q4_1"),
        (Self::Q5_0, "q5_0"),
        (Self::Q5_1, "q5_1"),
        (Self::Q8_0, "q8_0"),
        (Self::Q4_K, "q4_k"),
        (Self::Q5_K, "q5_k"),
        (Self::Q6_K, "q6_k"),
    ];

    /// From the operator's `format` attribute.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    /// Bytes of one block (of [`Format::block_inputs`] inputs) of one 16-row group.
    pub(crate) const fn group_block_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 256 + 2 * 2 * ROWS,
            Self::Q8_0 => 512 + 2 * ROWS,
            _ => ROWS * self.ggml_block_bytes(),
        }
    }
}

/// A packed weight: `n` outputs by `k` inputs in the layout above.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Packed<'a> {
    pub(crate) format: Format,
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) data: &'a [u8],
}

impl<'a> Packed<'a> {
    /// Checks that `data` is exactly a packed `n` x `k` weight.
    pub(crate) fn new(format: Format, n: usize, k: usize, data: &'a [u8]) -> Result<Self, String> {
        let qk = format.block_inputs();
        if n == 0 || k == 0 || !k.is_multiple_of(qk) {
            return Err(format!(
                "{format:?} weight of {n} x {k}: needs n > 0 and k a positive multiple of {qk}"
            ));
        }
        let want = Self::groups_of(n) * (k / qk) * format.group_block_bytes();
        if data.len() != want {
            return Err(format!(
                "packed {format:?} weight of {n} x {k} must be {want} bytes, got {}",
                data.len()
            ));
        }
        Ok(Self { format, n, k, data })
    }

    fn groups_of(n: usize) -> usize {
        n.div_ceil(ROWS)
    }

    /// Number of 16-row groups.
    pub(crate) fn groups(&self) -> usize {
        Self::groups_of(self.n)
    }

    /// Bytes of one group (all its blocks).
    pub(crate) fn group_bytes(&self) -> usize {
        (self.k / self.format.block_inputs()) * self.format.group_block_bytes()
    }

    /// Asks the CPU to bring group `g` (if there is one) into its caches while the kernels work
    /// on the group before it, for the K-quants. Their kernels read each super-block's scales,
    /// stored after its weights, before the weights (`Decoded::scales`, `Decoded::decode`): a
    /// read the hardware's prefetcher, which follows a stream forwards, does not see coming, so
    /// every super-block began by waiting on memory (one thread read Q4_K at 7 GB/s against Q5_0's
    /// 24). The formats read front to back are left to the hardware: prefetching them as well
    /// only slowed Q8_0 and Q5_0 (`morpheus-worker model kernels`).
    #[inline]
    pub(crate) fn prefetch_group(&self, g: usize) {
        #[cfg(target_arch = "x86_64")]
        if matches!(self.format, Format::Q4_K | Format::Q5_K | Format::Q6_K) && g < self.groups() {
            let bytes = self.group_bytes();
            for line in self.data[g * bytes..(g + 1) * bytes].chunks(64) {
                // SAFETY: a prefetch reads nothing and cannot fault; the line is the weight's.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        line.as_ptr().cast(),
                    )
                };
            }
        }
    }
}

/// Where a kernel writes: row-major `[rows, n]` f32, shared by the threads of one matmul.
///
/// Each thread writes the columns of its own groups only, so writes never overlap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    ptr: *mut f32,
    rows: usize,
    n: usize,
}

// SAFETY: `Out` is only handed to threads that write disjoint column ranges (their own groups)
// of a buffer that outlives the parallel loop.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    pub(crate) fn new(buf: &mut [f32], rows: usize, n: usize) -> Self {
        assert_eq!(buf.len(), rows * n, "output buffer must be rows x n");
        Self {
            ptr: buf.as_mut_ptr(),
            rows,
            n,
        }
    }
}

/// Which implementation runs on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512 with VNNI (`vpdpbusd`): Zen 4+, Ice Lake+ / Sapphire Rapids.
    Avx512Vnni,
    /// AVX2 with FMA and F16C: Haswell+, Zen 1-3.
    Avx2,
    /// Plain Rust, for any other CPU.
    Portable,
}

/// Environment variable choosing a lesser implementation (`avx2`, `portable`), to compare them.
pub const ISA_ENV: &str = "MORPHEUS_KERNEL_ISA";

impl Isa {
    /// The best this CPU has, or the one `MORPHEUS_KERNEL_ISA` names when the CPU has it.
    pub(crate) fn select() -> Self {
        let best = Self::detect();
        let wanted = match std::env::var(ISA_ENV).ok().as_deref() {
            None | Some("") => return best,
            Some("avx512") => Self::Avx512Vnni,
            Some("avx2") => Self::Avx2,
            Some("portable") => Self::Portable,
            Some(other) => {
                tracing::warn!(target: "worker::kernels", "{ISA_ENV}={other} is not avx512, avx2 or portable: using {best:?}");
                return best;
            }
        };
        if wanted.rank() > best.rank() {
            tracing::warn!(target: "worker::kernels", "{ISA_ENV}: this CPU cannot run {wanted:?}: using {best:?}");
            return best;
        }
        wanted
    }

    fn rank(self) -> u8 {
        match self {
            Self::Portable => 0,
            Self::Avx2 => 1,
            Self::Avx512Vnni => 2,
        }
    }

    /// The best this CPU has.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                return Self::Avx512Vnni;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                return Self::Avx2;
            }
        }
        Self::Portable
    }
}

/// `out[rows, n] = a @ W^T` for the groups `groups` of `w` (all rows of `a`).
pub(crate) fn matmul_groups(
    isa: Isa,
    w: &Packed<'_>,
    a: &Quantized,
    groups: std::ops::Range<usize>,
    out: Out,
) {
    assert!(groups.end <= w.groups(), "group range past the weight");
    assert_eq!(a.k(), w.k, "activation width must match the weight");
    assert_eq!(a.rows(), out.rows, "activation rows must match the output");
    assert_eq!(out.n, w.n, "output width must match the weight");
    if w.format.decoded() {
        decode::with_scratch(|dec| {
            for g in groups {
                w.prefetch_group(g + 1);
                let valid = ROWS.min(w.n - g * ROWS);
                #[cfg(target_arch = "x86_64")]
                if isa == Isa::Avx512Vnni {
                    dec.scales(w, g);
                    // SAFETY: as below; `dec` holds group `g`'s scales (k = a.k()).
                    unsafe { avx512_packed::packed_group(w, dec, a, g, valid, out) };
                    continue;
                }
                #[cfg(target_arch = "x86_64")]
                if isa == Isa::Avx2
                    && a.rows() <= avx2::MAX_DECODED_TILE
                    && avx2::unpacks_in_registers(w.format)
                {
                    // One tile of rows: each chunk unpacked in registers, the scales alone here.
                    dec.scales_avx2(w, g);
                    // SAFETY: as below; `dec` holds group `g`'s scales (k = a.k()).
                    unsafe { avx2::packed_group(w, dec, a, g, valid, out) };
                    continue;
                }
                dec.decode(isa, w, g);
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => {
                        // SAFETY: as below.
                        unsafe { avx2::decoded_group(dec, a, g, valid, out) }
                    }
                    _ => portable::decoded_group(dec, a, g, valid, out),
                }
            }
        });
        return;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => {
            // SAFETY: `Isa::Avx512Vnni` is only chosen after detecting these features; the
            // asserts above bound every access the kernel makes.
            unsafe { avx512::matmul_groups(w, a, groups, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            // SAFETY: as above, for AVX2, FMA and F16C.
            unsafe { avx2::matmul_groups(w, a, groups, out) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx512Vnni | Isa::Avx2 => portable::matmul_groups(w, a, groups, out),
        Isa::Portable => portable::matmul_groups(w, a, groups, out),
    }
}
