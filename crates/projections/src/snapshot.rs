//! Durable snapshots of the identity projection: the identity graph, every profile's
//! state and the interaction table, as of one log position, in one file — so that a
//! node starts by reading the file and replaying only the log's tail.
//!
//! The file: eight magic bytes, the format version (u32, little-endian), a [`Header`]
//! and the body (graph, profile states, table), both in MessagePack, then a CRC-32 of
//! everything before it (u32, little-endian). It is written to a temporary file, synced
//! and renamed, so a crash leaves the previous snapshot or none.
//!
//! A snapshot is used only when it is what a replay of the same log under the same
//! rules would give up to its position: the same format, a fingerprint of the build,
//! the identity, analytics and computed-trait rules, the unmerge rules and the link
//! decisions up to its position; the log still holding its last event, unchanged; and
//! as many events at or before that position as it counted (an erasure or a retention
//! pass removed none of them since). Anything else is refused with the reason, and the
//! projection is replayed from the whole log.
//!
//! MessagePack (`rmp-serde`) because profile states hold `serde_json::Value`s, which
//! only a self-describing format reads back; it writes structs as arrays (no field
//! names), so the file stays compact, and it adds two small crates to the build.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use unavoce_core::Event;
use unavoce_core::analytics::{AnalyticsRules, InteractionTable};
use unavoce_core::identity::{GraphParts, IdKey, IdentityGraph, IdentityRules, ProfileId};
use unavoce_core::profile::{ComputedTrait, ProfileState};

/// Bumped whenever the layout of the file or of a serialised type changes.
pub const FORMAT: u32 = 3;
const MAGIC: &[u8; 8] = b"UNAVSNAP";
/// The snapshot's file in its folder.
pub const FILE: &str = "identity.snapshot";
const PARTIAL: &str = "identity.snapshot.partial";

/// What a snapshot covers, read before its body.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// The log position of the last event applied.
    pub seq: i64,
    /// A digest of that event (see [`event_digest`]).
    pub event: String,
    /// Events applied, at or before `seq` (rows of the interaction table).
    pub events: u64,
    /// See [`fingerprint`].
    pub fingerprint: String,
    pub taken_at: Timestamp,
}

/// Why a snapshot was not used.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("there is no snapshot")]
    Missing,
    #[error("it is in format {found}, this build reads format {expected}")]
    Format { found: u32, expected: u32 },
    #[error("it is damaged or truncated: {0}")]
    Damaged(String),
    #[error(
        "it was taken by another build or under other rules (identity, analytics, computed traits, unmerge rules or link decisions)"
    )]
    Foreign,
    #[error("the log no longer holds its last event (position {0}): another or a restored store")]
    PositionGone(i64),
    #[error("the log's event at its last position ({0}) is another: another or a restored store")]
    EventDiffers(i64),
    #[error(
        "events it covers were removed from the log since it was taken (it counted {snapshot}, the log holds {log}): an erasure or retention"
    )]
    Removed { snapshot: u64, log: u64 },
    #[error("the log kept growing while the snapshot was checked against it")]
    Unsettled,
    #[error("the log cannot be read: {0}")]
    Store(String),
    #[error("it cannot be read: {0}")]
    Io(#[from] std::io::Error),
}

/// What a snapshot restores.
pub struct Restored {
    pub graph: GraphParts,
    pub people: HashMap<ProfileId, ProfileState>,
    pub table: InteractionTable,
}

#[derive(serde::Serialize)]
struct BodyRef<'a> {
    graph: &'a IdentityGraph,
    people: &'a HashMap<ProfileId, ProfileState>,
    table: &'a InteractionTable,
}

#[derive(serde::Deserialize)]
struct Body {
    graph: GraphParts,
    people: HashMap<ProfileId, ProfileState>,
    table: InteractionTable,
}

/// Everything a replay's result depends on besides the log itself, as a digest: this
/// build (its executable: a new one may fold events differently), the rules, the unmerge
/// rules and the link decisions taken at or before `seq` (later ones are applied with
/// the tail).
pub fn fingerprint(
    rules: &IdentityRules,
    graph: &IdentityGraph,
    links: &BTreeMap<i64, Vec<(IdKey, IdKey, Timestamp)>>,
    seq: i64,
    computed: &[ComputedTrait],
    analytics: &AnalyticsRules,
) -> String {
    let mut hash = Sha256::new();
    let mut part = |name: &str, text: &str| {
        hash.update(name.as_bytes());
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    };
    part("format", &FORMAT.to_string());
    part("build", &build());
    part("identity", &format!("{:?}", rules.config));
    part("unmerge", &format!("{:?}", graph.unmerge_rules()));
    part(
        "links",
        &format!("{:?}", links.range(..=seq).collect::<Vec<_>>()),
    );
    part(
        "computed",
        &serde_json::to_string(computed).unwrap_or_default(),
    );
    part("analytics", &format!("{:?}", analytics.config));
    hex(&hash.finalize())
}

/// This build: the crate's version and the executable's size and modification time.
fn build() -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}:{modified}", m.len())
        })
        .unwrap_or_default();
    format!("{}:{exe}", env!("CARGO_PKG_VERSION"))
}

/// A digest of an event as stored: its message id and message.
pub fn event_digest(event: &Event) -> String {
    let mut hash = Sha256::new();
    hash.update(event.message_id.as_bytes());
    hash.update([0]);
    hash.update(serde_json::to_vec(&event.message).unwrap_or_default());
    hex(&hash.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The snapshot's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Writes a snapshot to the temporary file in `dir` (not yet in place: see
/// [`put_in_place`]); its size in bytes. Streams: holds no copy of the state.
pub fn write_partial(
    dir: &Path,
    header: &Header,
    graph: &IdentityGraph,
    people: &HashMap<ProfileId, ProfileState>,
    table: &InteractionTable,
) -> std::io::Result<(PathBuf, u64)> {
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(PARTIAL);
    let file = File::create(&partial)?;
    let mut out = Checksummed::new(BufWriter::with_capacity(1 << 20, file));
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT.to_le_bytes())?;
    let encode = |e: rmp_serde::encode::Error| std::io::Error::other(e.to_string());
    rmp_serde::encode::write(&mut out, header).map_err(encode)?;
    rmp_serde::encode::write(
        &mut out,
        &BodyRef {
            graph,
            people,
            table,
        },
    )
    .map_err(encode)?;
    let crc = out.crc.clone().finalize();
    let bytes = out.bytes + 4;
    let mut inner = out.inner;
    inner.write_all(&crc.to_le_bytes())?;
    inner.flush()?;
    Ok((partial, bytes))
}

/// Syncs the temporary file, renames it over the snapshot and syncs the folder.
pub fn put_in_place(partial: &Path, dir: &Path) -> std::io::Result<()> {
    File::open(partial)?.sync_all()?;
    std::fs::rename(partial, path(dir))?;
    File::open(dir)?.sync_all()
}

/// Removes the snapshot in `dir` (and a temporary one); whether there was one.
pub fn remove(dir: &Path) -> std::io::Result<bool> {
    let _ = std::fs::remove_file(dir.join(PARTIAL));
    match std::fs::remove_file(path(dir)) {
        Ok(()) => {
            File::open(dir)?.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// An opened snapshot whose header was read; [`Opened::body`] reads the rest.
pub struct Opened {
    pub header: Header,
    input: Checksummed<BufReader<File>>,
}

/// Opens the snapshot in `dir` and reads its header.
pub fn open(dir: &Path) -> Result<Opened, Refusal> {
    let file = match File::open(path(dir)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Refusal::Missing),
        Err(e) => return Err(e.into()),
    };
    let mut input = Checksummed::new(BufReader::with_capacity(1 << 20, file));
    let mut magic = [0u8; 8];
    let mut format = [0u8; 4];
    input
        .read_exact(&mut magic)
        .and_then(|()| input.read_exact(&mut format))
        .map_err(|e| Refusal::Damaged(e.to_string()))?;
    if &magic != MAGIC {
        return Err(Refusal::Damaged("not a snapshot file".into()));
    }
    let format = u32::from_le_bytes(format);
    if format != FORMAT {
        return Err(Refusal::Format {
            found: format,
            expected: FORMAT,
        });
    }
    let header: Header =
        rmp_serde::decode::from_read(&mut input).map_err(|e| Refusal::Damaged(e.to_string()))?;
    Ok(Opened { header, input })
}

impl Opened {
    /// Reads the body and checks the file's checksum.
    pub fn body(mut self) -> Result<Restored, Refusal> {
        let body: Body = rmp_serde::decode::from_read(&mut self.input)
            .map_err(|e| Refusal::Damaged(e.to_string()))?;
        let computed = self.input.crc.clone().finalize();
        let mut stored = [0u8; 4];
        self.input
            .inner
            .read_exact(&mut stored)
            .map_err(|e| Refusal::Damaged(format!("no checksum: {e}")))?;
        if u32::from_le_bytes(stored) != computed {
            return Err(Refusal::Damaged("its checksum does not match".into()));
        }
        let mut rest = [0u8; 1];
        if self.input.inner.read(&mut rest)? != 0 {
            return Err(Refusal::Damaged("bytes after its checksum".into()));
        }
        Ok(Restored {
            graph: body.graph,
            people: body.people,
            table: body.table,
        })
    }
}

/// A reader or writer that keeps a CRC-32 of the bytes through it.
struct Checksummed<T> {
    inner: T,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<T> Checksummed<T> {
    fn new(inner: T) -> Self {
        Checksummed {
            inner,
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        }
    }
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Checksummed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}
