//! Refusing a damaged store, and telling a full disk from other failures.
//!
//! SQLite opens a truncated or overwritten database without complaint until a query
//! reaches a damaged page, and it treats a write-ahead log whose header is not valid
//! as no log at all — so the commits held there (acknowledged events) would vanish
//! without a word, and the next write would overwrite them. [`check_files`] reads both
//! headers before SQLite does, and [`quick_check`] has SQLite verify every page of the
//! database: before a migration at open, else on the writer's thread before its first
//! commit while the node starts beside it (`SqliteLog::checked`); either failing names
//! the file. A store closed cleanly and not written since (same length, inode and
//! modification time, recorded by [`record_clean_close`]) is not checked again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};
use unavoce_core::redact::Redacted;

use crate::log::StoreError;

/// What is wrong with a store's file.
#[derive(Debug)]
pub(crate) struct Damage {
    pub path: PathBuf,
    pub why: String,
}

/// The file named as `db` with `suffix` added, beside it.
fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The write-ahead log of the database at `db`.
pub(crate) fn wal_path(db: &Path) -> PathBuf {
    beside(db, "-wal")
}

/// Checks the headers of the database at `db` and of its write-ahead log, when they
/// exist, before SQLite opens them.
pub(crate) fn check_files(db: &Path) -> Result<(), Damage> {
    let wal = wal_path(db);
    let wal_bytes = read_head(&wal, WAL_HEADER)?;
    if let Some((head, len)) = &wal_bytes {
        check_wal_header(head, *len).map_err(|why| Damage {
            path: wal.clone(),
            why,
        })?;
    }
    let wal_has_frames = wal_bytes.is_some_and(|(_, len)| len > WAL_HEADER as u64);
    if let Some((head, len)) = read_head(db, DB_HEADER)? {
        check_db_header(&head, len, wal_has_frames).map_err(|why| Damage {
            path: db.to_path_buf(),
            why,
        })?;
    }
    Ok(())
}

/// The file beside the database that says this folder holds an event log: without it,
/// an `events.db` of zero bytes (truncated) or a missing one (deleted) would look like
/// a new store, and the server would start empty without a word.
pub(crate) fn marker_path(db: &Path) -> PathBuf {
    beside(db, ".created")
}

/// Refuses a database that is missing or empty where a marker says one was created.
pub(crate) fn check_not_lost(db: &Path) -> Result<(), Damage> {
    let marker = marker_path(db);
    if !marker.exists() {
        return Ok(());
    }
    let len = |path: &Path| std::fs::metadata(path).map(|m| m.len()).ok();
    let wal_frames = len(&wal_path(db)).is_some_and(|len| len > WAL_HEADER as u64);
    let why = match len(db) {
        None if !wal_frames => "it is missing",
        Some(0) if !wal_frames => "it is empty (0 bytes)",
        _ => return Ok(()),
    };
    Err(Damage {
        path: db.to_path_buf(),
        why: format!(
            "{why}, but this folder held an event log ({} says so): it was deleted or \
             truncated. Restore it from a backup; to start a new, empty store here \
             instead, remove {}",
            marker.display(),
            marker.display()
        ),
    })
}

/// Leaves the marker of [`check_not_lost`] once the database has its schema (durably:
/// the file and its folder synced).
pub(crate) fn mark_created(db: &Path) -> std::io::Result<()> {
    let marker = marker_path(db);
    if marker.exists() {
        return Ok(());
    }
    let file = std::fs::File::create(&marker)?;
    std::io::Write::write_all(
        &mut &file,
        b"Unavoce: this folder holds an event log (events.db). Do not remove this file.\n",
    )?;
    file.sync_all()?;
    if let Some(folder) = marker.parent() {
        std::fs::File::open(folder)?.sync_all()?;
    }
    Ok(())
}

/// The record a clean close leaves beside the database (see [`record_clean_close`]).
pub(crate) fn closed_path(db: &Path) -> PathBuf {
    beside(db, ".closed")
}

/// What tells one state of the database file from another without reading it: its
/// length, inode and modification time (seconds and nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileState {
    len: u64,
    inode: u64,
    modified: (i64, i64),
}

impl FileState {
    fn of(path: &Path) -> std::io::Result<FileState> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(FileState {
            len: m.len(),
            inode: m.ino(),
            modified: (m.mtime(), m.mtime_nsec()),
        })
    }

    fn text(&self) -> String {
        format!(
            "len={} inode={} modified={}.{:09}\n",
            self.len, self.inode, self.modified.0, self.modified.1
        )
    }

    fn parse(text: &str) -> Option<FileState> {
        let mut fields = text.trim().split(' ');
        let mut field = |name: &str| fields.next()?.strip_prefix(name);
        let len = field("len=")?.parse().ok()?;
        let inode = field("inode=")?.parse().ok()?;
        let (seconds, nanos) = field("modified=")?.split_once('.')?;
        Some(FileState {
            len,
            inode,
            modified: (seconds.parse().ok()?, nanos.parse().ok()?),
        })
    }
}

/// Whether the write-ahead log of `db` holds nothing (or is absent).
fn wal_is_empty(db: &Path) -> bool {
    std::fs::metadata(wal_path(db)).map_or(true, |m| m.len() == 0)
}

/// Records, once a store that passed its check is closed with its write-ahead log
/// emptied into the database, the database file's state, so that the next open can
/// skip the check of every page when the file is as it was left (see
/// [`closed_cleanly`]). Whether it was recorded.
///
/// The kernel stamps a file's modification with a coarse clock (a few milliseconds a
/// tick): a write in the same tick as the close's last would leave the time unchanged.
/// So the record is written, and written again, until its own modification time is
/// later than the database's — every later write to the database then moves its time
/// past the one recorded (git's "racy clean" files, solved the same way).
pub(crate) fn record_clean_close(db: &Path) -> std::io::Result<bool> {
    let record = closed_path(db);
    if !wal_is_empty(db) {
        remove_record(&record)?;
        return Ok(false);
    }
    let state = FileState::of(db)?;
    for _ in 0..250 {
        std::fs::write(&record, state.text())?;
        if FileState::of(&record)?.modified > state.modified {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    remove_record(&record)?;
    Ok(false)
}

fn remove_record(record: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(record) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether the database at `db` is exactly as a clean close left it (see
/// [`record_clean_close`]): same length, inode and modification time, recorded after
/// its last write, and an empty write-ahead log. Such a file was checked before and
/// has not been written since — by this node or anything else — so its pages need not
/// be checked again; a file changed in any way, or left by a crash, is. A record that
/// matches is used up (one that does not can never match again): only the next clean
/// close leaves another.
pub(crate) fn closed_cleanly(db: &Path) -> bool {
    let record = closed_path(db);
    let Some(recorded) = std::fs::read_to_string(&record)
        .ok()
        .and_then(|text| FileState::parse(&text))
    else {
        return false;
    };
    let written_after = FileState::of(&record).is_ok_and(|r| r.modified > recorded.modified);
    let clean =
        written_after && wal_is_empty(db) && FileState::of(db).is_ok_and(|now| now == recorded);
    // A record that cannot be removed could outlive a crash: not trusted.
    clean && remove_record(&record).is_ok()
}

/// `PRAGMA quick_check`: every page of the database (and of its write-ahead log) read
/// and its b-tree structure verified; what it found, if anything.
fn quick_check(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let mut statement = conn.prepare("PRAGMA quick_check(5)")?;
    let found: Vec<String> = statement
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(match found.as_slice() {
        [ok] if ok == "ok" => None,
        _ => Some(found.join("\n").replace('\n', "; ")),
    })
}

/// [`quick_check`] on a connection of its own that reads the file through a memory map
/// (SQLite maps at most its first 2 GiB; the rest goes through the page cache) with a
/// small page cache, not the writer's large one: about half the time at 10 M events
/// (see BENCHMARKS.md, restart).
pub(crate) fn check_every_page(db: &Path) -> rusqlite::Result<Option<String>> {
    let conn = crate::sqlite::allocator::connection(db)?;
    super::schema::no_checkpoint_on_close(&conn)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "mmap_size", 1i64 << 40)?;
    conn.pragma_update(None, "cache_size", -2_000)?;
    quick_check(&conn)
}

/// What the check of every page found: `None` while it runs.
pub(crate) type Verdict = Option<Result<(), CheckFailed>>;

/// Why a store failed its check.
#[derive(Debug, Clone)]
pub(crate) enum CheckFailed {
    /// SQLite found damaged pages; what it said.
    Damaged(String),
    /// The check itself could not run (an I/O error, no memory): not a verdict on
    /// the file, but nothing is written to a store not checked.
    NotRun(String),
}

/// Whether SQLite found the file damaged or not a database at all.
pub(crate) fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// A failed database call as the store reports it: a full disk is
/// [`StoreError::Full`]; damage names the file.
pub(crate) fn store_error(e: &rusqlite::Error, db: &Path) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full(format!("{}: {e}", db.display())),
        _ if is_damage(e) => {
            StoreError::Storage(format!("the event log at {} is damaged: {e}", db.display()))
        }
        _ => StoreError::Storage(e.to_string()),
    }
}

/// A failure that repeats at every turn of a background loop (a checkpoint on a full
/// disk, four times a second): logged when it begins, at most once a minute while it
/// lasts, and once when it ends.
pub(crate) struct Repeating {
    what: &'static str,
    since: Option<Instant>,
    logged: Option<Instant>,
    failures: u64,
}

impl Repeating {
    /// How often a failure that lasts is logged again.
    const EVERY: Duration = Duration::from_secs(60);

    pub(crate) fn new(what: &'static str) -> Self {
        Repeating {
            what,
            since: None,
            logged: None,
            failures: 0,
        }
    }

    pub(crate) fn failed(&mut self, e: &rusqlite::Error) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        self.failures += 1;
        if self
            .logged
            .is_none_or(|at| now.duration_since(at) >= Self::EVERY)
        {
            self.logged = Some(now);
            tracing::warn!(error = %Redacted(e), failures = self.failures, "{} failed; will retry", self.what);
        }
    }

    pub(crate) fn succeeded(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                failures = self.failures,
                seconds = since.elapsed().as_secs(),
                "{} works again",
                self.what
            );
            self.logged = None;
            self.failures = 0;
        }
    }
}

/// The first bytes of a database file that say what it is.
const DB_HEADER: usize = 100;
/// The write-ahead log's header.
const WAL_HEADER: usize = 32;

/// The first `n` bytes of `path` (fewer if it is shorter) and its length; `None` when
/// it does not exist or is empty.
fn read_head(path: &Path, n: usize) -> Result<Option<(Vec<u8>, u64)>, Damage> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| Damage {
        path: path.to_path_buf(),
        why: format!("it cannot be read: {e}"),
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    let len = file.metadata().map_err(unreadable)?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut head = Vec::with_capacity(n);
    file.by_ref()
        .take(n as u64)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    Ok(Some((head, len)))
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The database header (<https://sqlite.org/fileformat.html#the_database_header>): the
/// magic string, and no fewer bytes than the pages it counts. The count is only
/// compared when the write-ahead log holds no frames: while it does, the file may
/// legitimately wait for pages a checkpoint will write.
fn check_db_header(head: &[u8], len: u64, wal_has_frames: bool) -> Result<(), String> {
    if head.len() < DB_HEADER {
        return Err(format!(
            "it is {len} bytes long, shorter than an SQLite database's header (truncated?)"
        ));
    }
    if &head[..16] != b"SQLite format 3\0" {
        return Err("it does not start with the SQLite header (overwritten?)".into());
    }
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!(
            "its header gives a page size of {page_size} bytes, which SQLite never writes (overwritten?)"
        ));
    }
    // The page count is valid when its "version valid for" equals the change counter.
    let pages = u64::from(be32(head, 28));
    if !wal_has_frames && be32(head, 92) == be32(head, 24) && pages > 0 {
        let expected = pages * page_size;
        if len < expected {
            return Err(format!(
                "it is {len} bytes long, but its header counts {pages} pages of {page_size} bytes ({expected} bytes): it was truncated"
            ));
        }
    }
    Ok(())
}

/// The write-ahead log's header (<https://sqlite.org/fileformat.html#walformat>): magic
/// number, format version and checksum. SQLite ignores a log whose header is not valid,
/// which would silently drop every commit in it.
fn check_wal_header(head: &[u8], len: u64) -> Result<(), String> {
    if head.len() < WAL_HEADER {
        return Err(format!(
            "it is {len} bytes long, shorter than a write-ahead log's header (truncated?); SQLite would ignore it, and every commit it holds"
        ));
    }
    let magic = be32(head, 0);
    if magic & !1 != 0x377f_0682 {
        return Err(
            "it does not start with the write-ahead log's magic number (overwritten?); SQLite would ignore it, and every commit it holds"
                .into(),
        );
    }
    let word = |at: usize| {
        let bytes = [head[at], head[at + 1], head[at + 2], head[at + 3]];
        if magic & 1 == 1 {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    };
    let (mut s1, mut s2) = (0u32, 0u32);
    for at in (0..24).step_by(8) {
        s1 = s1.wrapping_add(word(at)).wrapping_add(s2);
        s2 = s2.wrapping_add(word(at + 4)).wrapping_add(s1);
    }
    if (s1, s2) != (be32(head, 24), be32(head, 28)) || be32(head, 4) != 3_007_000 {
        return Err(
            "its header's checksum or version is wrong (overwritten?); SQLite would ignore it, and every commit it holds"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL header as SQLite writes it, little-endian checksums.
    fn wal_header() -> Vec<u8> {
        let mut head = Vec::new();
        for word in [0x377f_0682u32, 3_007_000, 4096, 0, 0x1234_5678, 0x9abc_def0] {
            head.extend(word.to_be_bytes());
        }
        let word = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().unwrap());
        let (mut s1, mut s2) = (0u32, 0u32);
        for at in (0..24).step_by(8) {
            s1 = s1.wrapping_add(word(at)).wrapping_add(s2);
            s2 = s2.wrapping_add(word(at + 4)).wrapping_add(s1);
        }
        head.extend(s1.to_be_bytes());
        head.extend(s2.to_be_bytes());
        head
    }

    #[test]
    fn a_wal_header_is_checked_by_magic_version_and_checksum() {
        let good = wal_header();
        assert_eq!(check_wal_header(&good, 32), Ok(()));
        for at in [0, 5, 13, 20, 27] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            assert!(check_wal_header(&bad, 32).is_err(), "byte {at}");
        }
        assert!(check_wal_header(&good[..20], 20).is_err());
    }

    #[test]
    fn a_wal_sqlite_wrote_passes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("events.db");
        let conn = crate::sqlite::allocator::connection(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let wal = std::fs::read(wal_path(&db)).unwrap();
        assert!(wal.len() > WAL_HEADER);
        assert_eq!(
            check_wal_header(&wal[..WAL_HEADER], wal.len() as u64),
            Ok(())
        );
        assert!(check_files(&db).is_ok());
    }

    #[test]
    fn a_database_shorter_than_its_header_counts_is_truncated() {
        let mut head = b"SQLite format 3\0".to_vec();
        head.resize(DB_HEADER, 0);
        head[16..18].copy_from_slice(&4096u16.to_be_bytes());
        head[24..28].copy_from_slice(&7u32.to_be_bytes());
        head[28..32].copy_from_slice(&10u32.to_be_bytes());
        head[92..96].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(check_db_header(&head, 40_960, false), Ok(()));
        assert!(check_db_header(&head, 20_480, false).is_err());
        // Pages still in the write-ahead log: the count is not compared.
        assert_eq!(check_db_header(&head, 20_480, true), Ok(()));
        head[0] = b'X';
        assert!(check_db_header(&head, 40_960, false).is_err());
    }
}
