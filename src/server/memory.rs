//! Giving idle memory back to the system.
//!
//! The broker binary allocates with mimalloc (see `main.rs`). Its defaults
//! suit throughput, not a host holding a million idle connections: freed
//! pages are purged lazily, during later allocations, which an idle shard
//! never makes, and arenas are committed eagerly (with transparent huge
//! pages, a touched byte can make 2 MiB resident). [`configure_allocator`]
//! turns both off before the shards start; [`release_freed`] runs the
//! pending purges of the calling thread's heap after connections park.
//! Both are harmless no-ops in effect under another global allocator
//! (tests, benches): they only touch mimalloc's own, then unused, heaps.

/// mimalloc v2 option numbers (`mi_option_e` in its `mimalloc.h`).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const ALLOW_THP: libmimalloc_sys::mi_option_t = 37;

/// Called before the first allocation (an ELF constructor in `main.rs`).
pub fn configure_allocator() {
    // SAFETY: option setters take plain integers; valid at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(ALLOW_THP, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

/// Purges the calling thread's freed pages now.
pub fn release_freed() {
    // SAFETY: collects the calling thread's own heap; no preconditions.
    unsafe { libmimalloc_sys::mi_collect(false) };
}
