//! SQLite allocates through the process's global allocator once the store opened first
//! (its own test binary: nothing else may start SQLite before the store does).

use unavoce_store::{EventLog, SqliteLog, SqliteOptions};
use unavoce_testkit::counting::{Counting, held};

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
    let before = held();
    // SAFETY: a plain allocation from SQLite's allocator, freed below.
    let block = unsafe { rusqlite::ffi::sqlite3_malloc64(BIG as u64) };
    assert!(!block.is_null());
    let during = held();
    // The store's own threads may free a little meanwhile (the count is the process's):
    // 1 MiB of slack, against the 8 MiB that would be missing without the change.
    const SLACK: usize = 1 << 20;
    assert!(
        during + SLACK >= before + BIG,
        "SQLite's 8 MiB did not come from the global allocator ({before} → {during} bytes)"
    );
    assert!(unavoce_store::sqlite::memory_used() >= BIG as u64);
    unsafe { rusqlite::ffi::sqlite3_free(block) };
    assert!(
        held() + BIG <= during + SLACK,
        "SQLite's free did not reach it"
    );
    runtime.block_on(log.close());
}
