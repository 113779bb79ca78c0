//! Durable snapshots of the identity projection: the identity graph, every profile's
//! state and the interaction table, as of one log position, in one file — so that a
//! node starts by reading the file and replaying only the log's tail.
//!
//! The file: eight magic bytes, the format version (u32, little-endian), a [`Header`]
//! in MessagePack, then the body in sections, each its length (u64, little-endian) and
//! its bytes: the graph and the interaction table in MessagePack, both without their
//! per-event rows, each in pieces (a length and its bytes, then a zero length: written
//! in one pass, their length unknown until then); the graph's event links and the table's rows as raw rows (read
//! straight into their row stores); the number of profile states and of their chunks,
//! then the chunks of at most [`PEOPLE_PER_CHUNK`] states in MessagePack — so that a
//! start decodes the graph, the table and the states on every core while it reads the
//! file —; then a CRC-32 of
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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::identity::ProfileStates;
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use unavoce_core::Event;
use unavoce_core::analytics::{AnalyticsRules, Interaction, InteractionTable, TableParts};
use unavoce_core::identity::{
    EventLink, GraphParts, IdKey, IdentityGraph, IdentityRules, ProfileId,
};
use unavoce_core::profile::{ComputedTrait, ProfileState};
use unavoce_core::rows::{RowStore, Rows};

/// Bumped whenever the layout of the file or of a serialised type changes.
pub const FORMAT: u32 = 11;
/// Profile states per chunk of the body.
pub const PEOPLE_PER_CHUNK: usize = 8_192;
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
    /// The graph's event links (see [`IdentityGraph::from_parts`]).
    pub links: Rows<EventLink>,
    pub people: ProfileStates,
    pub table: InteractionTable,
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
    people: &ProfileStates,
    table: &InteractionTable,
) -> std::io::Result<(PathBuf, u64)> {
    std::fs::create_dir_all(dir)?;
    let partial = partial_path(dir);
    let file = File::create(&partial)?;
    let mut out = Checksummed::new(BufWriter::with_capacity(1 << 20, file));
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT.to_le_bytes())?;
    let encode = |e: rmp_serde::encode::Error| std::io::Error::other(e.to_string());
    rmp_serde::encode::write(&mut out, header).map_err(encode)?;
    // The graph and the table are large: streamed in pieces, encoded once. Each
    // identifier text is written once, later places giving its number.
    for value in [&graph as &dyn erased::Encode, &table] {
        let mut pieces = Pieces::new(&mut out);
        IdKey::written_once(|| value.encode(&mut pieces)).map_err(encode)?;
        pieces.finish()?;
    }
    for rows in [
        graph.event_links().rows().as_bytes(),
        table.raw_rows().as_bytes(),
    ] {
        out.write_all(&(rows.len() as u64).to_le_bytes())?;
        out.write_all(rows)?;
    }
    let mut section = Vec::new();
    let mut write_section = |out: &mut Checksummed<_>, value: &dyn erased::Encode| {
        section.clear();
        value.encode(&mut section).map_err(encode)?;
        out.write_all(&(section.len() as u64).to_le_bytes())?;
        out.write_all(&section)
    };
    let entries: Vec<(&ProfileId, &Box<ProfileState>)> = people.iter().collect();
    let chunks = entries.chunks(PEOPLE_PER_CHUNK);
    write_section(&mut out, &(entries.len() as u64, chunks.len() as u64))?;
    for chunk in chunks {
        write_section(&mut out, &chunk)?;
    }
    let crc = out.crc.clone().finalize();
    let bytes = out.bytes + 4;
    let mut inner = out.inner;
    inner.write_all(&crc.to_le_bytes())?;
    inner.flush()?;
    Ok((partial, bytes))
}

/// The temporary file [`write_partial`] writes in `dir`.
pub fn partial_path(dir: &Path) -> PathBuf {
    dir.join(PARTIAL)
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
    /// Bytes of the file not read yet.
    left: u64,
}

/// Opens the snapshot in `dir` and reads its header.
pub fn open(dir: &Path) -> Result<Opened, Refusal> {
    let file = match File::open(path(dir)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Refusal::Missing),
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata()?.len();
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
    let left = size.saturating_sub(input.bytes);
    Ok(Opened {
        header,
        input,
        left,
    })
}

impl Opened {
    /// Reads the body, the per-event rows into these stores, and checks the file's
    /// checksum. This thread reads the sections and copies the rows; as many threads as
    /// there are cores decode the rest meanwhile.
    pub fn body(
        mut self,
        links: Box<dyn RowStore<EventLink>>,
        rows: Box<dyn RowStore<Interaction>>,
    ) -> Result<Restored, Refusal> {
        let mut links = Rows::new_in(links);
        let mut rows = Rows::new_in(rows);
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Section>(2 * workers);
        let queue = Mutex::new(queue);
        let decoded = Mutex::new(Decoded::default());
        let spare = Spare::default();
        let read = std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    // The queue's lock is let go before the section is decoded.
                    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    while let Ok(section) = next() {
                        // After an error the rest is only drained, so the reader
                        // never waits on a full queue.
                        let failed = decoded.lock().map(|d| d.error.is_some()).unwrap_or(true);
                        if failed {
                            continue;
                        }
                        match section.decode(&decoded) {
                            Ok(bytes) => spare.give(bytes),
                            Err(e) => {
                                let mut decoded = decoded.lock().unwrap_or_else(|e| e.into_inner());
                                decoded.error.get_or_insert(e);
                            }
                        }
                    }
                });
            }
            let read = self.read_sections(&jobs, &decoded, &spare, &mut links, &mut rows);
            drop(jobs);
            read
        });
        read?;
        let decoded = decoded.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = decoded.error {
            return Err(Refusal::Damaged(e));
        }
        let (Some(graph), Some(table), Some((count, _))) =
            (decoded.graph, decoded.table, decoded.people_count)
        else {
            return Err(Refusal::Damaged("a section is missing".into()));
        };
        if decoded.people.len() as u64 != count {
            return Err(Refusal::Damaged(format!(
                "it holds {} profile states, its body says {count}",
                decoded.people.len()
            )));
        }
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
            graph,
            links,
            people: decoded.people,
            table: InteractionTable::from_parts(table, rows).map_err(Refusal::Damaged)?,
        })
    }

    /// Reads the sections, handing each to the decoding threads.
    fn read_sections(
        &mut self,
        jobs: &std::sync::mpsc::SyncSender<Section>,
        decoded: &Mutex<Decoded>,
        spare: &Spare,
        links: &mut Rows<EventLink>,
        rows: &mut Rows<Interaction>,
    ) -> Result<(), Refusal> {
        let graph = self.pieces(spare)?;
        let _ = jobs.send(Section::Graph(graph));
        let table = self.pieces(spare)?;
        let _ = jobs.send(Section::Table(table));
        self.raw_rows(links)?;
        self.raw_rows(rows)?;
        let (count, chunks): (u64, u64) = rmp_serde::from_slice(&self.section(spare)?)
            .map_err(|e| Refusal::Damaged(e.to_string()))?;
        if chunks > count.div_ceil(PEOPLE_PER_CHUNK as u64) + 1 || count > self.left {
            return Err(Refusal::Damaged(format!(
                "{count} profile states in {chunks} chunks cannot fit in it"
            )));
        }
        {
            let mut decoded = decoded.lock().unwrap_or_else(|e| e.into_inner());
            decoded.people.reserve(usize::try_from(count).unwrap_or(0));
            decoded.people_count = Some((count, chunks));
        }
        for _ in 0..chunks {
            let chunk = self.section(spare)?;
            if jobs.send(Section::People(chunk)).is_err() {
                break;
            }
        }
        Ok(())
    }

    /// The next section's bytes, in a spare buffer when there is one.
    fn section(&mut self, spare: &Spare) -> Result<Vec<u8>, Refusal> {
        let length = self.section_length()?;
        let mut bytes = spare.take();
        bytes.reserve_exact(length);
        (&mut self.input)
            .take(length as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| Refusal::Damaged(e.to_string()))?;
        if bytes.len() != length {
            return Err(Refusal::Damaged("it ends inside a section".into()));
        }
        Ok(bytes)
    }

    /// The next section written in pieces (see [`Pieces`]), in a spare buffer when there
    /// is one.
    fn pieces(&mut self, spare: &Spare) -> Result<Vec<u8>, Refusal> {
        let mut bytes = spare.take();
        loop {
            let length = self.section_length()?;
            if length == 0 {
                return Ok(bytes);
            }
            bytes.reserve(length);
            let read = (&mut self.input)
                .take(length as u64)
                .read_to_end(&mut bytes)
                .map_err(|e| Refusal::Damaged(e.to_string()))?;
            if read != length {
                return Err(Refusal::Damaged("it ends inside a section".into()));
            }
        }
    }

    /// The next section's length (refused when longer than what is left of the file).
    fn section_length(&mut self) -> Result<usize, Refusal> {
        let mut length = [0u8; 8];
        self.input
            .read_exact(&mut length)
            .map_err(|e| Refusal::Damaged(e.to_string()))?;
        let length = u64::from_le_bytes(length);
        self.left = self.left.saturating_sub(8);
        if length > self.left {
            return Err(Refusal::Damaged(format!(
                "a section of {length} bytes is longer than the file"
            )));
        }
        self.left -= length;
        usize::try_from(length).map_err(|e| Refusal::Damaged(e.to_string()))
    }

    /// The next section, raw rows, appended to `rows` a few thousand at a time.
    fn raw_rows<T: bytemuck::Pod + Send + Sync>(
        &mut self,
        rows: &mut Rows<T>,
    ) -> Result<(), Refusal> {
        let mut left = self.section_length()?;
        let size = std::mem::size_of::<T>();
        if !left.is_multiple_of(size) {
            return Err(Refusal::Damaged(format!(
                "{left} bytes are not whole rows of {size} bytes"
            )));
        }
        rows.reserve(left / size);
        let mut piece = vec![0u8; size * 16_384];
        while left > 0 {
            let piece = &mut piece[..left.min(size * 16_384)];
            self.input
                .read_exact(piece)
                .map_err(|e| Refusal::Damaged(e.to_string()))?;
            rows.extend_from_bytes(piece).map_err(Refusal::Damaged)?;
            left -= piece.len();
        }
        Ok(())
    }
}

/// Buffers the decoding threads are done with, for the next sections: memory already
/// in use is reused, not asked of the system again (fresh pages cost the kernel's
/// zeroing, most of a start's time before).
#[derive(Default)]
struct Spare(Mutex<Vec<Vec<u8>>>);

impl Spare {
    /// Buffers kept at most.
    const KEPT: usize = 8;
    /// The largest buffer kept (a chunk of profile states is about 10 MB; the graph's
    /// section, hundreds at 10 M events, is let go).
    const LARGEST: usize = 64 << 20;

    fn take(&self) -> Vec<u8> {
        let mut bytes = self
            .0
            .lock()
            .map(|mut s| s.pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        bytes.clear();
        bytes
    }

    fn give(&self, bytes: Vec<u8>) {
        if bytes.capacity() > Self::LARGEST {
            return;
        }
        if let Ok(mut spare) = self.0.lock()
            && spare.len() < Self::KEPT
        {
            spare.push(bytes);
        }
    }
}

/// A section of the body, to decode.
enum Section {
    Graph(Vec<u8>),
    Table(Vec<u8>),
    People(Vec<u8>),
}

/// What the decoding threads made of the sections.
#[derive(Default)]
struct Decoded {
    graph: Option<GraphParts>,
    table: Option<TableParts>,
    /// Profile states, and chunks, the body holds.
    people_count: Option<(u64, u64)>,
    people: ProfileStates,
    error: Option<String>,
}

impl Section {
    /// Decodes the section into `into`, giving back its buffer.
    fn decode(self, into: &Mutex<Decoded>) -> Result<Vec<u8>, String> {
        let lock = || into.lock().unwrap_or_else(|e| e.into_inner());
        match self {
            Section::Graph(bytes) => {
                // Each identifier text written once, read back shared by every place
                // that keeps it, as the graph built event by event holds it.
                let graph = IdKey::read_once(|| rmp_serde::from_slice(&bytes))
                    .map_err(|e| e.to_string())?;
                lock().graph = Some(graph);
                Ok(bytes)
            }
            Section::Table(bytes) => {
                let table: TableParts = rmp_serde::from_slice(&bytes).map_err(|e| e.to_string())?;
                lock().table = Some(table);
                Ok(bytes)
            }
            Section::People(bytes) => {
                let chunk: Vec<(ProfileId, Box<ProfileState>)> =
                    rmp_serde::from_slice(&bytes).map_err(|e| e.to_string())?;
                let mut decoded = lock();
                for (id, state) in chunk {
                    if decoded.people.insert(id, state).is_some() {
                        return Err(format!("profile {id} is in it twice"));
                    }
                }
                Ok(bytes)
            }
        }
    }
}

/// A value written as a section (object-safe `Serialize` into MessagePack).
mod erased {
    pub trait Encode {
        fn encode(&self, out: &mut dyn std::io::Write) -> Result<(), rmp_serde::encode::Error>;
    }

    impl<T: serde::Serialize + ?Sized> Encode for T {
        fn encode(&self, mut out: &mut dyn std::io::Write) -> Result<(), rmp_serde::encode::Error> {
            rmp_serde::encode::write(&mut out, self)
        }
    }
}

/// Writes a section of unknown length in pieces, each its length (u64, little-endian)
/// and its bytes, then a zero length: streamed in one pass (read back by
/// [`Opened::pieces`]).
struct Pieces<'a, W: Write> {
    out: &'a mut W,
    piece: Vec<u8>,
}

impl<'a, W: Write> Pieces<'a, W> {
    /// The bytes of a piece at most (but one write's).
    const PIECE: usize = 8 << 20;

    fn new(out: &'a mut W) -> Self {
        Pieces {
            out,
            piece: Vec::with_capacity(Self::PIECE),
        }
    }

    fn write_piece(&mut self) -> std::io::Result<()> {
        if !self.piece.is_empty() {
            self.out
                .write_all(&(self.piece.len() as u64).to_le_bytes())?;
            self.out.write_all(&self.piece)?;
            self.piece.clear();
        }
        Ok(())
    }

    /// Writes the last piece and the zero length that ends the section.
    fn finish(mut self) -> std::io::Result<()> {
        self.write_piece()?;
        self.out.write_all(&0u64.to_le_bytes())
    }
}

impl<W: Write> Write for Pieces<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.piece.extend_from_slice(buf);
        if self.piece.len() >= Self::PIECE {
            self.write_piece()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use unavoce_core::EventType;
    use unavoce_core::profile::default_computed_traits;

    fn event(
        event_type: EventType,
        name: Option<&str>,
        at: &str,
        message: serde_json::Value,
    ) -> Event {
        let serde_json::Value::Object(message) = message else {
            unreachable!("a message is an object")
        };
        Event {
            message_id: format!("m-{at}"),
            event_type,
            user_id: None,
            anonymous_id: None,
            name: name.map(str::to_string),
            timestamp: at.parse().unwrap(),
            received_at: at.parse().unwrap(),
            touchpoint: None,
            channel: Some("email".into()),
            source: "test".into(),
            message,
        }
    }

    /// More people than one chunk holds, with traits and per-hour engagement (their
    /// binary forms): the body's chunks, decoded on several threads, give them back.
    #[test]
    fn profile_states_in_many_chunks_read_back_the_same() {
        let computed = default_computed_traits();
        let people: ProfileStates = (0..(2 * PEOPLE_PER_CHUNK + 17) as i64)
            .map(|i| {
                let identify = event(
                    EventType::Identify,
                    None,
                    "2026-05-04T09:00:00Z",
                    json!({"traits": {"first_name": format!("P{i}"), "tier": i % 4}}),
                );
                let hour = format!("2026-05-0{}T{:02}:15:00Z", 4 + i % 3, i % 24);
                let opened = event(EventType::Track, Some("Email Opened"), &hour, json!({}));
                (
                    ProfileId(i + 1),
                    Box::new(ProfileState::fold([&identify, &opened], &computed)),
                )
            })
            .collect();
        let graph = IdentityGraph::new(IdentityRules::default_rules(), Vec::new());
        let header = Header {
            seq: 1,
            event: "e".into(),
            events: 0,
            fingerprint: "f".into(),
            taken_at: Timestamp::UNIX_EPOCH,
        };
        let dir = tempfile::tempdir().unwrap();
        let (partial, _) = write_partial(
            dir.path(),
            &header,
            &graph,
            &people,
            &InteractionTable::default(),
        )
        .unwrap();
        put_in_place(&partial, dir.path()).unwrap();
        let opened = open(dir.path()).unwrap();
        assert_eq!(opened.header, header);
        let restored = opened
            .body(Box::new(Vec::new()), Box::new(Vec::new()))
            .unwrap();
        assert_eq!(restored.people.len(), people.len());
        assert!(restored.people == people, "the states read back differ");
        let someone = &restored.people[&ProfileId(30)];
        assert_eq!(someone.display_name().as_deref(), Some("P29"));
    }
}
