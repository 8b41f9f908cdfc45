//! GGML's other block formats (Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), unpacked per 16-row group
//! into one common form the kernels multiply.
//!
//! # Stored layout
//!
//! A weight of `n` rows is `[ceil(n/16) groups][k/QK blocks][group block]` (QK = 32, or 256 for
//! the K-quants; rows past `n` are zero). A group block holds the 16 rows' GGML blocks with their
//! bytes reordered, losslessly: each run of packed weight bits (GGML's `qs`, `qh`, `ql` arrays)
//! is cut into 4-byte words and the words of the 16 rows interleaved, `[word][16 rows][4 bytes]`;
//! the per-row fields follow as GGML stores them, row after row. So unpacking a sub-block of
//! every row is a pass of byte-wise shifts and masks over contiguous bytes (vectorised), and the
//! result is already in the kernels' chunk layout (below). Per format (`w` = interleaved):
//!
//! * Q4_0: `w(qs[16])`, `d[16]`. Q5_0: `w(qs)`, `qh[16]` (u32), `d[16]`. Q5_1: as Q5_0, then `m[16]`.
//! * Q4_K: `w(qs[32p..32p+32])` for p in 0..4 (low nibbles sub-block 2p, high 2p+1), `d[16]`,
//!   `dmin[16]`, `scales[16][12]`. Q5_K: the same with `w(qh[32])` after the `qs` words.
//! * Q6_K: `w(ql[64n + 32h..][..32])` for n, h in 0..2, `w(qh[32n..][..32])` for n in 0..2,
//!   `scales[16][16]` (int8), `d[16]`.
//!
//! # Decoded form
//!
//! Before a group is multiplied its blocks are unpacked into a [`Decoded`] scratch that stays in
//! cache while every activation row passes (on AVX-512 only the K-quants' scales are, for up to
//! four rows: the weights are unpacked in registers, `avx512_packed`): per block of 32 inputs and
//! 16 rows,
//!
//! * `u[8 chunks][16 rows][4]`, the unsigned integer weights (0..63), in the chunk layout of
//!   Q8_0 (`mod.rs`), so one 64-byte load is four inputs of all 16 rows;
//! * `s[2 halves][16 rows]`, the scale of inputs 0..15 and 16..31 (they differ only in Q6_K,
//!   whose scales cover 16 inputs);
//! * `m[16 rows]`, a term multiplied by the activations' real block sum;
//!
//! so that a weight is `w = s * (u - centre) + m`, `centre` the format's middle value (8, 16 or
//! 32). The kernels compute `s * x·(u - centre)` from integer dot products (exact), and `m` (a
//! format's minimum plus `centre * s`) against the real sum, as Q4_1 is computed: the int8
//! rounding of the activations meets weights centred on zero.
//!
//! The weights and scales are exact (a scale is a half times a 6-bit integer: 17 bits, within an
//! f32); `m` of the K-quants (`centre * s - dmin * min`) is rounded once, to f32.

use std::cell::RefCell;

use super::{BLOCK, Format, Isa, Packed, ROWS};

/// Bytes of `u` per block of 32 inputs (16 rows).
pub(crate) const U_BYTES: usize = BLOCK * ROWS;

/// One group unpacked (see the module docs); kept per thread between calls.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// Blocks of 32 inputs.
    pub(crate) blocks: usize,
    /// The format's centre: `w = s * (u - centre) + m`.
    pub(crate) centre: i32,
    /// Whether a block's two halves have scales of their own (Q6_K's cover 16 inputs); else
    /// `s` holds each block's one scale twice and a kernel may add the halves up first.
    pub(crate) split: bool,
    /// `[blocks][8][16][4]` unsigned weights.
    pub(crate) u: Vec<u8>,
    /// `[blocks][2][16]` scales per half block.
    pub(crate) s: Vec<f32>,
    /// `[blocks][16]` terms against the activations' block sum.
    pub(crate) m: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Decoded> = RefCell::new(Decoded::default());
}

/// Runs `f` with this thread's scratch.
pub(crate) fn with_scratch<T>(f: impl FnOnce(&mut Decoded) -> T) -> T {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

impl Format {
    /// Inputs per GGML block: 256 for the K-quants, 32 for the others.
    pub(crate) const fn block_inputs(self) -> usize {
        match self {
            Self::Q4_K | Self::Q5_K | Self::Q6_K => 256,
            _ => BLOCK,
        }
    }

    /// Bytes of one GGML block of one row.
    pub(crate) const fn ggml_block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q4_K => 144,
            Self::Q5_K => 176,
            Self::Q6_K => 210,
        }
    }

    /// Whether the weight is unpacked into [`Decoded`] (all but Q4_1 and Q8_0, whose packed
    /// layout the kernels read directly).
    pub(crate) const fn decoded(self) -> bool {
        !matches!(self, Self::Q4_1 | Self::Q8_0)
    }

    const fn centre(self) -> i32 {
        match self {
            Self::Q4_0 | Self::Q4_1 | Self::Q4_K => 8,
            Self::Q5_0 | Self::Q5_1 | Self::Q5_K => 16,
            Self::Q6_K => 32,
            Self::Q8_0 => 128,
        }
    }
}

impl Decoded {
    /// Unpacks group `g` of `w` (a [`Format::decoded`] format).
    pub(crate) fn decode(&mut self, isa: Isa, w: &Packed<'_>, g: usize) {
        self.size(w);
        self.u.resize(self.blocks * U_BYTES, 0);
        let group = &w.data[g * w.group_bytes()..(g + 1) * w.group_bytes()];
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: AVX2 and F16C were detected for this `Isa`; the scratch is sized above.
                unsafe { super::avx2_decode::decode(self, w.format, group) }
            }
            // AVX-512 reads the weights packed and unpacks only their scales (`Self::scales`).
            _ => self.decode_group(w.format, group),
        }
    }

    /// Unpacks only the scales and minimums (`s`, `m`) of group `g` of `w`, on AVX2: for a single
    /// tile of rows, whose kernel unpacks the weights in registers (`avx2::packed_group`).
    ///
    /// # Panics
    /// On a CPU without AVX2 and F16C (only `Isa::Avx2` calls it).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn scales_avx2(&mut self, w: &Packed<'_>, g: usize) {
        assert!(
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c"),
            "the AVX2 scales need AVX2, FMA and F16C"
        );
        self.size(w);
        let group = &w.data[g * w.group_bytes()..(g + 1) * w.group_bytes()];
        // SAFETY: the features are checked above; `size` fitted the scratch to the group.
        unsafe { super::avx2_decode::group_scales(self, w.format, group) }
    }

    /// Unpacks only the scales and minimums (`s`, `m`) of group `g` of `w`: the AVX-512
    /// kernels read the weights packed (`kernels::avx512_packed`).
    ///
    /// # Panics
    /// On a CPU without AVX-512 F and BW (only `Isa::Avx512Vnni` calls it).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn scales(&mut self, w: &Packed<'_>, g: usize) {
        assert!(
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw"),
            "the packed scales need AVX-512 BW"
        );
        self.size(w);
        let group = &w.data[g * w.group_bytes()..(g + 1) * w.group_bytes()];
        // SAFETY: the features are checked above; `size` fitted the scratch to the group.
        unsafe { super::avx512_packed::scales(self, w.format, group) }
    }

    /// Fits the scales to a group of `w` (the weights, `u`, only where they are unpacked).
    fn size(&mut self, w: &Packed<'_>) {
        self.blocks = w.k / BLOCK;
        self.centre = w.format.centre();
        self.split = w.format == Format::Q6_K;
        self.s.resize(self.blocks * 2 * ROWS, 0.0);
        self.m.resize(self.blocks * ROWS, 0.0);
    }

    /// Every block of one group (`group`: its stored bytes).
    #[inline(always)]
    fn decode_group(&mut self, format: Format, group: &[u8]) {
        let per = format.group_block_bytes();
        let sub = format.block_inputs() / BLOCK;
        for (sb, src) in group.chunks_exact(per).enumerate() {
            let b0 = sb * sub;
            let u = &mut self.u[b0 * U_BYTES..(b0 + sub) * U_BYTES];
            let s = &mut self.s[b0 * 2 * ROWS..(b0 + sub) * 2 * ROWS];
            let m = &mut self.m[b0 * ROWS..(b0 + sub) * ROWS];
            match format {
                Format::Q4_0 | Format::Q5_0 | Format::Q5_1 => small(format, src, u, s, m),
                Format::Q4_K | Format::Q5_K => k_quant(format == Format::Q5_K, src, u, s, m),
                Format::Q6_K => {
                    q6_k(src, u, s);
                    m.fill(0.0); // no minimum; the scratch holds the last group's
                }
                Format::Q4_1 | Format::Q8_0 => unreachable!("{format:?} is read packed"),
            }
        }
    }
}

/// `dst[i] = (src[i] >> shift) & mask`, over one block's 512 bytes.
#[inline(always)]
fn bits(dst: &mut [u8], src: &[u8], shift: u32, mask: u8) {
    let (dst, src): (&mut [u8; U_BYTES], &[u8; U_BYTES]) = (
        (&mut dst[..U_BYTES]).try_into().expect("a block"),
        src[..U_BYTES].try_into().expect("a block"),
    );
    for (d, s) in dst.iter_mut().zip(src) {
        *d = (s >> shift) & mask;
    }
}

/// `dst[i] |= ((src[i] >> shift) & mask) << 4`: the high bits above the nibble.
#[inline(always)]
fn high_bits(dst: &mut [u8], src: &[u8], shift: u32, mask: u8) {
    let (dst, src): (&mut [u8; U_BYTES], &[u8; U_BYTES]) = (
        (&mut dst[..U_BYTES]).try_into().expect("a block"),
        src[..U_BYTES].try_into().expect("a block"),
    );
    for (d, s) in dst.iter_mut().zip(src) {
        *d |= ((s >> shift) & mask) << 4;
    }
}

/// Four bits, one per byte, as the fifth bit (0x10) of four weights: a little-endian word.
const SPREAD: [u32; 16] = {
    let mut t = [0u32; 16];
    let mut nib = 0;
    while nib < 16 {
        let mut j = 0;
        while j < 4 {
            t[nib] |= (((nib >> j) & 1) as u32) << (8 * j + 4);
            j += 1;
        }
        nib += 1;
    }
    t
};

/// Q4_0, Q5_0, Q5_1: one block of 32 inputs.
#[inline(always)]
fn small(format: Format, src: &[u8], u: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    let qs = &src[..256];
    // Words 0..3 hold inputs 4c+j in the low nibbles and 16+4c+j in the high ones: chunks 0..3
    // and 4..7 of the decoded block.
    let (lo, hi) = u.split_at_mut(256);
    for ((l, h), q) in lo.iter_mut().zip(hi.iter_mut()).zip(qs) {
        *l = q & 0x0F;
        *h = q >> 4;
    }
    let at = if format == Format::Q4_0 {
        256
    } else {
        // Bit i of a row's qh is input i's fifth bit: spread bits 4c..4c+3 over the 4 bytes of
        // chunk c (bit 4 of each byte).
        for r in 0..ROWS {
            let qh = u32::from_le_bytes([
                src[256 + 4 * r],
                src[257 + 4 * r],
                src[258 + 4 * r],
                src[259 + 4 * r],
            ]);
            for c in 0..8 {
                let at = c * 4 * ROWS + 4 * r;
                let word: &mut [u8; 4] = (&mut u[at..at + 4]).try_into().expect("4 bytes");
                let spread = SPREAD[((qh >> (4 * c)) & 0x0F) as usize];
                *word = (u32::from_le_bytes(*word) | spread).to_le_bytes();
            }
        }
        256 + 4 * ROWS
    };
    for r in 0..ROWS {
        let d = half(src, at + 2 * r);
        s[r] = d;
        s[ROWS + r] = d;
        m[r] = if format == Format::Q5_1 {
            16.0f32.mul_add(d, half(src, at + 2 * ROWS + 2 * r))
        } else {
            0.0
        };
    }
}

/// Q4_K, Q5_K: one super-block of 256 inputs (8 blocks).
#[inline(always)]
fn k_quant(five: bool, src: &[u8], u: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    for j in 0..8 {
        let words = &src[(j / 2) * U_BYTES..];
        bits(&mut u[j * U_BYTES..], words, 4 * (j as u32 % 2), 0x0F);
        if five {
            high_bits(&mut u[j * U_BYTES..], &src[4 * U_BYTES..], j as u32, 1);
        }
    }
    let at = if five { 5 * U_BYTES } else { 4 * U_BYTES };
    let centre: f32 = if five { 16.0 } else { 8.0 };
    for r in 0..ROWS {
        let (d, dmin) = (half(src, at + 2 * r), half(src, at + 2 * ROWS + 2 * r));
        let scales = &src[at + 4 * ROWS + 12 * r..][..12];
        for j in 0..8 {
            let (sc, mn) = scale_min_k4(j, scales);
            let scale = d * f32::from(sc);
            s[j * 2 * ROWS + r] = scale;
            s[j * 2 * ROWS + ROWS + r] = scale;
            m[j * ROWS + r] = centre.mul_add(scale, -dmin * f32::from(mn));
        }
    }
}

/// Q6_K: one super-block of 256 inputs (8 blocks, a scale per 16 inputs).
#[inline(always)]
fn q6_k(src: &[u8], u: &mut [u8], s: &mut [f32]) {
    // Block j = 4n + t is quarter t of the n-th 128 inputs: the low nibbles of ql words
    // (2n + t%2) shifted by 4*(t/2), the two bits 2t of qh words n.
    for j in 0..8 {
        let (n, t) = (j / 4, j % 4);
        let ql = &src[(2 * n + t % 2) * U_BYTES..];
        let qh = &src[(4 + n) * U_BYTES..];
        bits(&mut u[j * U_BYTES..], ql, 4 * (t as u32 / 2), 0x0F);
        high_bits(&mut u[j * U_BYTES..], qh, 2 * t as u32, 3);
    }
    let at = 6 * U_BYTES;
    for r in 0..ROWS {
        let d = half(src, at + 16 * ROWS + 2 * r);
        for i in 0..16 {
            s[i * ROWS + r] = d * f32::from(src[at + 16 * r + i] as i8);
        }
    }
}

/// The 6-bit scale and minimum of sub-block `j` of a Q4_K/Q5_K block (GGML's `get_scale_min_k4`).
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The little-endian IEEE half at `p[at..at + 2]`, as f32: exact for every finite half,
/// subnormals included (the exponent is rebased by one exact multiplication, without branches, so
/// loops over rows vectorise). Infinities and NaNs, which no weight scale holds, come out finite.
#[inline(always)]
pub(crate) fn half(p: &[u8], at: usize) -> f32 {
    let h = u32::from(u16::from_le_bytes([p[at], p[at + 1]]));
    let magnitude = f32::from_bits((h & 0x7FFF) << 13) * f32::from_bits(0x7780_0000); // 2^112
    f32::from_bits(magnitude.to_bits() | ((h & 0x8000) << 16))
}
