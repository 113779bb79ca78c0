//! A damaged event log stops `unavoce serve` with an error naming the damaged file:
//! never a silent start on what is left (which could lose acknowledged events without a
//! word, and overwrite them at the next write). SQLite only: PostgreSQL keeps its own
//! files.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_KEY, Server, WRITE_KEY};
use serde_json::json;
use unavoce_testkit::store::{StoreKind, store_kind};

const EVENTS: usize = 4_000;

/// A data folder holding `EVENTS` acknowledged events; the server stopped with SIGTERM
/// (the WAL emptied into the database) or, with `kill`, with SIGKILL (the WAL left as
/// it was).
fn data_folder(kill: bool) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    for batch in 0..EVENTS / 100 {
        server.send_batch(
            (0..100)
                .map(|i| {
                    json!({"type": "track", "userId": format!("user-{}", i % 17),
                        "event": "Page Read", "messageId": format!("m-{batch}-{i}"),
                        "properties": {"text": "lorem ipsum dolor sit amet ".repeat(12)}})
                })
                .collect(),
        );
    }
    if kill {
        server.child.kill().unwrap();
    } else {
        let pid = server.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }
    server.child.wait().unwrap();
    data
}

/// A copy of the store's files, to damage.
fn copy_of(data: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for name in ["events.db", "events.db-wal", "events.db-shm"] {
        let from = data.join(name);
        if from.exists() {
            std::fs::copy(&from, copy.path().join(name)).unwrap();
        }
    }
    copy
}

/// Starts `unavoce serve` on `data`, which must fail: its exit status and what it said.
fn start_must_fail(data: &Path) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_unavoce"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .args(["--write-key", WRITE_KEY, "--admin-key", ADMIN_KEY])
        .env("UNAVOCE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "unavoce serve started on a damaged store: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "{:?}", output.status);
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The start failed naming `file` and saying it is damaged.
fn assert_names(said: &str, file: &Path) {
    assert!(
        said.contains(&file.display().to_string()) && said.contains("damaged"),
        "the error does not name {}: {said}",
        file.display()
    );
}

fn overwrite(file: &Path, at: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

/// Bytes that look like nothing in particular (a fixed sequence, so a failure repeats).
fn garbage(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The intact folder still starts, with every event.
fn assert_intact_start(data: &Path) {
    let server = Server::start(data);
    assert_eq!(server.admin_get("/api/stats")["events"], EVENTS);
}

#[test]
fn a_truncated_or_overwritten_database_stops_the_start_naming_the_file() {
    if store_kind() == StoreKind::Postgres {
        eprintln!("skipped: the damaged files are SQLite's");
        return;
    }
    let data = data_folder(false);
    let db_len = std::fs::metadata(data.path().join("events.db"))
        .unwrap()
        .len();
    assert!(db_len > 1 << 20, "only {db_len} bytes");

    // (a) Truncated to half.
    let copy = copy_of(data.path());
    let db = copy.path().join("events.db");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(db_len / 2)
        .unwrap();
    let said = start_must_fail(copy.path());
    assert_names(&said, &db);
    assert!(said.contains("truncated"), "{said}");
    eprintln!("(a) truncated to half: {said}");

    // (b) 64 KiB of garbage in the middle.
    let copy = copy_of(data.path());
    let db = copy.path().join("events.db");
    overwrite(&db, db_len / 2, &garbage(64 * 1024));
    let said = start_must_fail(copy.path());
    assert_names(&said, &db);
    // SQLite's check of every page said so (not a read that met a damaged page).
    assert!(said.contains("in database main"), "{said}");
    eprintln!("(b) garbage in the middle: {said}");

    // (b') Its first page overwritten.
    let copy = copy_of(data.path());
    let db = copy.path().join("events.db");
    overwrite(&db, 0, &garbage(4096));
    let said = start_must_fail(copy.path());
    assert_names(&said, &db);
    eprintln!("(b') header overwritten: {said}");

    assert_intact_start(data.path());
}

#[test]
fn a_damaged_write_ahead_log_stops_the_start_naming_the_file() {
    if store_kind() == StoreKind::Postgres {
        eprintln!("skipped: the damaged files are SQLite's");
        return;
    }
    // Killed: the last commits are in the WAL only. SQLite would take a WAL whose header
    // is damaged for no WAL at all and start without them.
    let data = data_folder(true);
    let wal = data.path().join("events.db-wal");
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(wal_len > 32, "the WAL holds {wal_len} bytes");

    // (c) The WAL's header overwritten.
    let copy = copy_of(data.path());
    let damaged = copy.path().join("events.db-wal");
    overwrite(&damaged, 0, &garbage(32));
    let said = start_must_fail(copy.path());
    assert_names(&said, &damaged);
    eprintln!("(c) WAL header overwritten: {said}");

    // (c') Only its checksum wrong (one byte of its salt changed).
    let copy = copy_of(data.path());
    let damaged = copy.path().join("events.db-wal");
    let mut head = std::fs::read(&damaged).unwrap()[..32].to_vec();
    head[17] ^= 0x01;
    overwrite(&damaged, 0, &head);
    let said = start_must_fail(copy.path());
    assert_names(&said, &damaged);

    // (c'') Truncated inside its header.
    let copy = copy_of(data.path());
    let damaged = copy.path().join("events.db-wal");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&damaged)
        .unwrap()
        .set_len(20)
        .unwrap();
    let said = start_must_fail(copy.path());
    assert_names(&said, &damaged);

    assert_intact_start(data.path());
}
