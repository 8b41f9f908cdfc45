//! Giving freed memory back to the kernel after a large, short-lived allocation burst.
//!
//! Loading a tokenizer parses its JSON into temporary maps several times the size of what stays:
//! Gemma 3's (262,144 tokens, 513,511 merges) leaves the process 300 MB resident right after
//! loading, of which about 200 MB is freed memory that glibc keeps in its heaps, with no later
//! allocation of that size to reuse it. `malloc_trim` returns those pages (102 MB remain).

/// Returns the allocator's free pages to the kernel (glibc's `malloc_trim(0)`; elsewhere a no-op).
pub(crate) fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks glibc's own heaps under their locks; any thread may call
    // it at any time, and no memory in use moves.
    unsafe {
        libc::malloc_trim(0);
    }
}
