//! Zeroed float buffers that take memory only where they are written: the KV cache.
//!
//! `vec![0f32; n]` is lazily backed only while the allocator hands a large request to the kernel
//! as a fresh mapping. glibc does that above a threshold it raises each time such a block is freed
//! (up to 32 MiB): after one engine stopped, the next one's layer buffers of a few MiB come from
//! the heap and are cleared page by page, so the whole cache was resident (measured on Gemma 3
//! 270M with 16 slots: 665 MB from the start). Mapping each buffer explicitly keeps "memory as
//! far as sequences reach" true whatever ran before, and gives it back whole when dropped.

use std::{
    ops::{Deref, DerefMut},
    ptr::NonNull,
    sync::Mutex,
};

use crate::{Error, Result};

/// The live buffers' mappings (address, bytes), so that [`resident_bytes`] can count their pages
/// from any thread; an entry is removed before its mapping goes.
static LIVE: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Bytes of every live buffer in memory now (`mincore`): the KV cache as far as sequences have
/// reached, which the process's resident size alone cannot tell apart from the rest.
pub fn resident_bytes() -> u64 {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut pages = Vec::new();
    let mut resident = 0u64;
    for &(addr, bytes) in live.iter() {
        pages.clear();
        pages.resize(bytes.div_ceil(PAGE), 0u8);
        // SAFETY: `addr..addr + bytes` is a live mapping (removed from `LIVE`, under this lock,
        // before it is unmapped); `pages` has a byte per page. `mincore` reads no memory.
        let rc = unsafe { libc::mincore(addr as *mut libc::c_void, bytes, pages.as_mut_ptr()) };
        if rc == 0 {
            resident += pages.iter().filter(|&&p| p & 1 != 0).count() as u64 * PAGE as u64;
        }
    }
    resident
}

/// `mincore`'s unit: the base page size (x86-64 and most of aarch64).
const PAGE: usize = 4096;

/// `len` floats, zero until written.
#[derive(Debug)]
pub(crate) struct ZeroedBuf {
    ptr: NonNull<f32>,
    len: usize,
}

// SAFETY: the buffer is plain memory owned by this value alone (as a `Vec<f32>` is).
unsafe impl Send for ZeroedBuf {}
// SAFETY: shared access only reads (`Deref`); writes need `&mut`.
unsafe impl Sync for ZeroedBuf {}

impl ZeroedBuf {
    /// A buffer of `len` zeroed floats (an anonymous private mapping; nothing is resident yet).
    pub(crate) fn new(len: usize) -> Result<Self> {
        let bytes = len
            .checked_mul(size_of::<f32>())
            .ok_or_else(|| Error::Engine(format!("a KV buffer of {len} floats is too large")))?;
        if bytes == 0 {
            return Ok(Self {
                ptr: NonNull::dangling(),
                len: 0,
            });
        }
        // SAFETY: a new private anonymous mapping, no address hint, no file.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Error::Engine(format!(
                "cannot map a KV buffer of {bytes} bytes: {}",
                std::io::Error::last_os_error()
            )));
        }
        let ptr = NonNull::new(addr.cast::<f32>())
            .ok_or_else(|| Error::Engine("mmap returned a null KV buffer".into()))?;
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((addr as usize, bytes));
        Ok(Self { ptr, len })
    }
}

impl Drop for ZeroedBuf {
    fn drop(&mut self) {
        if self.len > 0 {
            let addr = self.ptr.as_ptr() as usize;
            let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
            live.retain(|&(a, _)| a != addr);
            // SAFETY: the mapping made in `new`, of exactly this size, unmapped once (and no
            // longer listed, so no count reads it after).
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len * size_of::<f32>()) };
        }
    }
}

impl Deref for ZeroedBuf {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: `len` floats, mapped readable and zero-filled (page-aligned, so aligned for f32).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for ZeroedBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as above, writable, and `&mut self` is the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::ZeroedBuf;

    /// Pages of `buf` in memory (`mincore`: this buffer's own, whatever else the process does).
    fn resident_pages(buf: &ZeroedBuf) -> usize {
        let bytes = buf.len() * size_of::<f32>();
        let mut pages = vec![0u8; bytes.div_ceil(4096)];
        // SAFETY: the range is the buffer's own mapping (page-aligned); `pages` has a byte per page.
        let rc =
            unsafe { libc::mincore(buf.as_ptr().cast_mut().cast(), bytes, pages.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        pages.iter().filter(|&&p| p & 1 != 0).count()
    }

    #[test]
    fn a_buffer_is_zero_and_resident_only_where_written() {
        // 256 MiB, of which 4 MiB and one float are written.
        let len = 64 << 20;
        let mut buf = ZeroedBuf::new(len).expect("mapped");
        assert_eq!(buf.len(), len);
        assert_eq!(resident_pages(&buf), 0);
        buf[..1 << 20].fill(1.5);
        buf[len - 1] = 2.0;
        // Exactly the written pages; where transparent huge pages are always on, at most the
        // 2 MiB pages around them.
        let written = (4 << 20) / 4096 + 1;
        let resident = resident_pages(&buf);
        assert!(
            (written..=written + 2 * 512).contains(&resident),
            "{resident} pages resident"
        );
        assert_eq!((buf[0], buf[len - 1], buf[len - 2]), (1.5, 2.0, 0.0));
        assert!(
            buf[1 << 20..len - 1]
                .iter()
                .step_by(1024)
                .all(|&x| x == 0.0)
        );
        // The process-wide count sees at least this buffer's pages (other tests' buffers may
        // be live too).
        assert!(super::resident_bytes() >= resident as u64 * 4096);
        assert!(ZeroedBuf::new(0).expect("empty").is_empty());
        let err = ZeroedBuf::new(usize::MAX).expect_err("too large");
        assert!(err.to_string().contains("too large"), "{err}");
    }
}
