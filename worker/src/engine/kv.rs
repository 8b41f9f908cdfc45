//! The shared KV cache: one buffer per layer and kind, `[slots, kv_heads, max_len, head_dim]`.
//!
//! A sequence owns a slot. Running sequences sit in slots `0..n`, so a decode step binds the first
//! `n` slots of every buffer as both `past_key_values.*` and `present.*`: ONNX Runtime appends the
//! new position in place and nothing is copied between steps. When a sequence leaves, the last
//! one moves into its slot (one copy of its valid positions, once).

use std::{ffi::c_void, ptr::NonNull};

use ort::{
    AsPointer,
    memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType},
    session::Session,
    value::{Tensor, Value},
};

use super::zeroed::ZeroedBuf;
use crate::{Error, Result};

/// KV buffers for every layer.
#[derive(Debug)]
pub(crate) struct SharedKv {
    /// `[layer * 2 + (0 key | 1 value)]`, each `slots * slot_len` floats.
    bufs: Vec<ZeroedBuf>,
    pub(crate) slots: usize,
    pub(crate) kv_heads: usize,
    pub(crate) max_len: usize,
    pub(crate) head_dim: usize,
    mem: MemoryInfo<'static>,
}

impl SharedKv {
    pub(crate) fn new(
        layers: usize,
        slots: usize,
        kv_heads: usize,
        max_len: usize,
        head_dim: usize,
    ) -> Result<Self> {
        let len = slots * kv_heads * max_len * head_dim;
        // Memory is used only as far as sequences reach (`zeroed.rs`).
        let bufs = (0..layers * 2)
            .map(|_| ZeroedBuf::new(len))
            .collect::<Result<_>>()?;
        let mem = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )?;
        Ok(Self {
            bufs,
            slots,
            kv_heads,
            max_len,
            head_dim,
            mem,
        })
    }

    fn slot_len(&self) -> usize {
        self.kv_heads * self.max_len * self.head_dim
    }

    /// Tensor aliasing slots `first..first + n` of buffer `index` (layer * 2 + kind).
    ///
    /// The same value is bound as input and output, so ONNX Runtime writes in place.
    pub(crate) fn view(
        &mut self,
        session: &Session,
        index: usize,
        first: usize,
        n: usize,
    ) -> Result<Value> {
        assert!(first + n <= self.slots, "slot range out of bounds");
        let slot = self.slot_len();
        let offset = first * slot;
        let shape = [
            n as i64,
            self.kv_heads as i64,
            self.max_len as i64,
            self.head_dim as i64,
        ];
        let data = self.bufs[index][offset..offset + n * slot].as_mut_ptr();
        // SAFETY: the pointer covers exactly `shape` floats of a buffer that lives as long as `self`,
        // and the value is dropped before `self` is touched again (one run at a time).
        unsafe { alias_f32(session, &self.mem, data.cast(), &shape) }
    }

    /// Copies the first `len` positions of slot `from` into slot `to`.
    pub(crate) fn move_slot(&mut self, from: usize, to: usize, len: usize) {
        if from == to {
            return;
        }
        let (heads, max, hd) = (self.kv_heads, self.max_len, self.head_dim);
        let slot = self.slot_len();
        for buf in &mut self.bufs {
            for h in 0..heads {
                let src = from * slot + h * max * hd;
                let dst = to * slot + h * max * hd;
                buf.copy_within(src..src + len * hd, dst);
            }
        }
    }
}

impl SharedKv {
    /// Exchanges slots `a` and `b`: the first `len_a` positions of `a` go to `b` and the first
    /// `len_b` of `b` to `a` (a sequence leaving the batch keeps its cache for the prefix cache
    /// while the last running one takes its place).
    pub(crate) fn swap_slots(&mut self, a: usize, b: usize, len_a: usize, len_b: usize) {
        if a == b {
            return;
        }
        let (heads, max, hd) = (self.kv_heads, self.max_len, self.head_dim);
        let slot = self.slot_len();
        let mut temp = vec![0f32; len_a * hd];
        for buf in &mut self.bufs {
            for h in 0..heads {
                let (pa, pb) = (a * slot + h * max * hd, b * slot + h * max * hd);
                temp.copy_from_slice(&buf[pa..pa + len_a * hd]);
                buf.copy_within(pb..pb + len_b * hd, pa);
                buf[pb..pb + len_a * hd].copy_from_slice(&temp);
            }
        }
    }
}

/// An owned ONNX Runtime tensor over memory it does not own.
///
/// `ort`'s borrowed tensors are copied when bound as inputs; a value made from the C API and
/// marked as owned is bound as is, which is what lets past and present share one buffer.
///
/// # Safety
/// `data` must point to `shape.product()` floats that outlive the returned value.
unsafe fn alias_f32(
    session: &Session,
    mem: &MemoryInfo<'_>,
    data: *mut c_void,
    shape: &[i64],
) -> Result<Value> {
    let api = ort::api();
    let count: i64 = shape.iter().product();
    let mut out: *mut ort::sys::OrtValue = std::ptr::null_mut();
    // SAFETY: arguments follow CreateTensorWithDataAsOrtValue's contract; the caller vouches for `data`.
    let status = unsafe {
        (api.CreateTensorWithDataAsOrtValue)(
            mem.ptr(),
            data,
            count as usize * size_of::<f32>(),
            shape.as_ptr(),
            shape.len(),
            ort::sys::ONNXTensorElementDataType::ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
            &mut out,
        )
    };
    check_status(status, "cannot create a KV view")?;
    let ptr = NonNull::new(out).ok_or(Error::EngineStopped)?;
    // SAFETY: `ptr` is a fresh tensor value; releasing it later does not free `data`.
    let value: Tensor<f32> = unsafe { Value::from_ptr(ptr, Some(session.allocator())) };
    Ok(value.into_dyn())
}

/// Turns the status of a raw ONNX Runtime call into the engine's error, releasing it.
pub(super) fn check_status(status: ort::sys::OrtStatusPtr, what: &str) -> Result<()> {
    if status.0.is_null() {
        return Ok(());
    }
    let api = ort::api();
    // SAFETY: a non-null status is a valid OrtStatus that we release after reading.
    let msg = unsafe {
        let msg = std::ffi::CStr::from_ptr((api.GetErrorMessage)(status.0))
            .to_string_lossy()
            .into_owned();
        (api.ReleaseStatus)(status.0);
        msg
    };
    Err(Error::Engine(format!("{what}: {msg}")))
}
