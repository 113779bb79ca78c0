//! SQLite's memory through the process's global allocator.
//!
//! Left alone, SQLite allocates with the C library's `malloc`, beside the allocator
//! the rest of the process uses: two heaps, each keeping what it freed. Under a long
//! ingestion the C heap held about 65 MiB more than SQLite used, and that grew (the
//! soak in BENCHMARKS.md). Routing SQLite's allocations through Rust's global allocator
//! leaves one heap, the one the binary chose for this work.
//!
//! SQLite takes these methods only before it initialises (before the first connection
//! in the process), and changing them while another thread initialises it mixes two
//! allocators (an abort, seen in the tests run in parallel): so every connection the
//! store opens goes through [`connection`] (or routes first), code elsewhere calls
//! `sqlite::prepare_sqlite` before its own, and [`route_to_global_allocator`] does
//! nothing after its first call (the others wait for it).

use std::alloc::{Layout, alloc, dealloc, realloc};
use std::ffi::{c_int, c_void};
use std::sync::Once;

use rusqlite::ffi;

/// Bytes before each block, holding the block's whole size; 16 keeps the block aligned
/// to 16 bytes (SQLite needs 8).
pub(crate) const HEADER: usize = 16;
const ALIGN: usize = 16;

static ROUTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether SQLite allocates through the global allocator (see [`route_to_global_allocator`]).
pub(crate) fn routed() -> bool {
    ROUTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Has SQLite allocate through the global allocator, if SQLite has not started yet in
/// this process (otherwise it keeps the C library's `malloc`, which works as well).
pub(crate) fn route_to_global_allocator() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(x_malloc),
            xFree: Some(x_free),
            xRealloc: Some(x_realloc),
            xSize: Some(x_size),
            xRoundup: Some(x_roundup),
            xInit: Some(x_init),
            xShutdown: Some(x_shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: SQLite copies the structure before returning; the functions it
        // points to live as long as the process.
        let code = unsafe {
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_MALLOC,
                &methods as *const ffi::sqlite3_mem_methods,
            )
        };
        ROUTED.store(code == ffi::SQLITE_OK, std::sync::atomic::Ordering::Relaxed);
        if code != ffi::SQLITE_OK {
            tracing::debug!(
                code,
                "SQLite had started before the store opened; it keeps the C library's allocator"
            );
        }
    });
}

/// A connection to the database at `path`, SQLite's allocator routed first: every
/// connection the store opens comes here (tests too), so that no thread initialises
/// SQLite while another is routing it (a block from one allocator freed by the other
/// aborts the process).
pub(crate) fn connection(
    path: impl AsRef<std::path::Path>,
) -> rusqlite::Result<rusqlite::Connection> {
    route_to_global_allocator();
    rusqlite::Connection::open(path)
}

fn layout(total: usize) -> Option<Layout> {
    Layout::from_size_align(total, ALIGN).ok()
}

/// The whole block (header included) of a pointer SQLite holds, and its size.
///
/// # Safety
/// `p` must come from [`x_malloc`] or [`x_realloc`] and not be freed.
unsafe fn block(p: *mut c_void) -> (*mut u8, usize) {
    // SAFETY: every pointer handed to SQLite is HEADER bytes into a block whose first
    // bytes hold its total size.
    unsafe {
        let base = p.cast::<u8>().sub(HEADER);
        (base, base.cast::<usize>().read())
    }
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    let Some(layout) = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(HEADER))
        .and_then(layout)
    else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout is never zero-sized (it includes the header).
    unsafe {
        let base = alloc(layout);
        if base.is_null() {
            return std::ptr::null_mut();
        }
        base.cast::<usize>().write(layout.size());
        base.add(HEADER).cast()
    }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: SQLite frees only what it was given, once.
    unsafe {
        let (base, total) = block(p);
        if let Some(layout) = layout(total) {
            dealloc(base, layout);
        }
    }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    if p.is_null() {
        // SAFETY: as for a fresh allocation.
        return unsafe { x_malloc(n) };
    }
    let Some(total) = usize::try_from(n).ok().and_then(|n| n.checked_add(HEADER)) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `p` is a live block of ours; on failure it stays valid, as SQLite expects.
    unsafe {
        let (base, old) = block(p);
        let Some(old_layout) = layout(old) else {
            return std::ptr::null_mut();
        };
        if layout(total).is_none() {
            return std::ptr::null_mut();
        }
        let grown = realloc(base, old_layout, total);
        if grown.is_null() {
            return std::ptr::null_mut();
        }
        grown.cast::<usize>().write(total);
        grown.add(HEADER).cast()
    }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    if p.is_null() {
        return 0;
    }
    // SAFETY: `p` is a live block of ours.
    let (_, total) = unsafe { block(p) };
    c_int::try_from(total - HEADER).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    n.checked_add(7).map_or(n, |n| n & !7)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the first `n` bytes at `p` are all 7.
    unsafe fn all_sevens(p: *mut c_void, n: usize) -> bool {
        // SAFETY: the caller passes a live block of at least `n` bytes.
        unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n) }
            .iter()
            .all(|&b| b == 7)
    }

    #[test]
    fn blocks_keep_their_size_and_contents_through_growth() {
        // SAFETY: the methods are used as SQLite uses them.
        unsafe {
            let p = x_malloc(100);
            assert!(!p.is_null());
            assert_eq!(p as usize % 8, 0);
            assert_eq!(x_size(p), 100);
            std::ptr::write_bytes(p.cast::<u8>(), 7, 100);
            let q = x_realloc(p, 10_000);
            assert_eq!(x_size(q), 10_000);
            assert!(all_sevens(q, 100));
            let r = x_realloc(q, 50);
            assert_eq!(x_size(r), 50);
            assert!(all_sevens(r, 50));
            x_free(r);
            assert!(x_malloc(-1).is_null());
            assert_eq!(x_roundup(13), 16);
            x_free(std::ptr::null_mut());
        }
    }
}
