//! SQLite allocates through the process's global allocator once the store opened first
//! (its own test binary: nothing else may start SQLite before the store does).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use unavoce_store::{EventLog, SqliteLog, SqliteOptions};

/// The system allocator, counting the bytes it holds.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn sqlite_allocates_through_the_global_allocator() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let log = SqliteLog::open(dir.path(), SqliteOptions::default()).unwrap();
    const BIG: usize = 8 << 20;
    let before = HELD.load(Ordering::Relaxed);
    // SAFETY: a plain allocation from SQLite's allocator, freed below.
    let block = unsafe { rusqlite::ffi::sqlite3_malloc64(BIG as u64) };
    assert!(!block.is_null());
    let during = HELD.load(Ordering::Relaxed);
    assert!(
        during >= before + BIG,
        "SQLite's 8 MiB did not come from the global allocator ({before} → {during} bytes)"
    );
    assert!(unavoce_store::sqlite::memory_used() >= BIG as u64);
    unsafe { rusqlite::ffi::sqlite3_free(block) };
    assert!(HELD.load(Ordering::Relaxed) < during);
    runtime.block_on(log.close());
}
