//! Importing files from offline touchpoints (POS exports, call-center logs, sign-up
//! forms) through the intake.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};
use unavoce_core::import::CompiledMapping;
use unavoce_core::segment::{Rejection, RejectionCode};
use unavoce_store::StoreError;
use xxhash_rust::xxh3::xxh3_128;

use crate::pipeline::{Intake, Item, ItemBody, Submission};

/// The format of an imported file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Comma- or semicolon-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// How to import one file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The source name; also the touchpoint of rows that name none.
    pub source: String,
    pub format: FileFormat,
    pub mapping: CompiledMapping,
    /// Rows appended per durable write.
    pub rows_per_append: usize,
    /// A name for the file in quarantine entries (e.g. its file name).
    pub file_name: String,
}

/// Progress of an import, reported after every append.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportProgress {
    pub rows: u64,
    pub bytes: u64,
}

/// A row that was not imported, with its line number and quarantine entry (none for a
/// row refused outright: `subject_erased`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowError {
    pub line: u64,
    pub code: RejectionCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_id: Option<i64>,
}

/// The outcome of an import.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// Data rows read (header excluded).
    pub rows: u64,
    /// Rows stored as new events.
    pub accepted: u64,
    /// Rows already in the log (the same file imported again).
    pub duplicates: u64,
    /// Rows quarantined, with line numbers and reasons.
    pub errors: Vec<RowError>,
}

struct PendingRow {
    line: u64,
    body: ItemBody<'static>,
}

impl Intake {
    /// Imports a file read from `reader`, appending every `rows_per_append` rows.
    ///
    /// Rows without a `messageId` get one derived from the source and the row's
    /// content, so importing the same file twice stores each row once.
    pub async fn import<R: Read>(
        &self,
        reader: R,
        options: &ImportOptions,
        mut progress: impl FnMut(ImportProgress),
    ) -> Result<ImportReport, StoreError> {
        let mut counted = CountingReader::new(reader);
        let mut report = ImportReport::default();
        let mut ids = RowIds::new(&options.source);
        let mut pending: Vec<PendingRow> = Vec::with_capacity(options.rows_per_append);
        let mut rows = RowReader::new(options.format, &mut counted);
        while let Some((line, body)) = rows.next_row(&options.mapping) {
            let body = match body {
                ItemBody::Parsed(mut message) => {
                    ids.assign(&mut message);
                    ItemBody::Parsed(message)
                }
                other => other,
            };
            report.rows += 1;
            pending.push(PendingRow { line, body });
            if pending.len() >= options.rows_per_append.max(1) {
                self.flush_rows(&mut pending, options, &mut report).await?;
                progress(ImportProgress {
                    rows: report.rows,
                    bytes: rows.bytes_read(),
                });
            }
        }
        self.flush_rows(&mut pending, options, &mut report).await?;
        progress(ImportProgress {
            rows: report.rows,
            bytes: rows.bytes_read(),
        });
        Ok(report)
    }

    async fn flush_rows(
        &self,
        pending: &mut Vec<PendingRow>,
        options: &ImportOptions,
        report: &mut ImportReport,
    ) -> Result<(), StoreError> {
        if pending.is_empty() {
            return Ok(());
        }
        let rows: Vec<PendingRow> = std::mem::take(pending);
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        let mut delay = Duration::from_millis(20);
        loop {
            let submission = Submission {
                source: &options.source,
                received_at: Timestamp::now(),
                endpoint_type: None,
                default_touchpoint: Some(&options.source),
                envelope: None,
                items: rows
                    .iter()
                    .map(|r| Item {
                        body: r.body.clone(),
                        origin: json!({"file": options.file_name, "format": options.format, "line": r.line}),
                    })
                    .collect(),
            };
            match self.ingest(submission).await {
                Ok(outcome) => {
                    report.accepted += outcome.accepted as u64;
                    report.duplicates += outcome.duplicates as u64;
                    report
                        .errors
                        .extend(outcome.rejected.into_iter().map(|r| RowError {
                            line: lines[r.index],
                            code: r.code,
                            message: r.message,
                            quarantine_id: r.quarantine_id,
                        }));
                    return Ok(());
                }
                // The import is its own client: it waits for the writer rather than failing.
                Err(StoreError::Overloaded) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Derives stable message ids: the same row content in the same source gets the same
/// id, and the n-th identical row of a file gets its own.
struct RowIds {
    source: String,
    seen: HashMap<u128, u32>,
}

impl RowIds {
    fn new(source: &str) -> Self {
        RowIds {
            source: source.to_string(),
            seen: HashMap::new(),
        }
    }

    fn assign(&mut self, message: &mut Map<String, Value>) {
        if message.contains_key("messageId") {
            return;
        }
        let content = Value::Object(message.clone()).to_string();
        let hash = xxh3_128(format!("{}\u{1f}{}", self.source, content).as_bytes());
        let occurrence = self.seen.entry(hash).or_insert(0);
        *occurrence += 1;
        message.insert(
            "messageId".into(),
            format!("import-{hash:032x}-{occurrence}").into(),
        );
    }
}

/// Counts the bytes read and where lines end, so a row's line number can be found
/// from its byte offset (the csv crate's own line count drifts after blank lines).
struct CountingReader<R> {
    inner: R,
    bytes: u64,
    /// Newlines not yet passed by [`CountingReader::line_at`]: offset, and whether the
    /// line they end is blank.
    newlines: VecDeque<(u64, bool)>,
    blank_so_far: bool,
    lines_passed: u64,
    /// Bytes read ahead by [`CountingReader::peek`], served before the inner reader.
    peeked: Vec<u8>,
}

impl<R> CountingReader<R> {
    fn new(inner: R) -> Self {
        CountingReader {
            inner,
            bytes: 0,
            newlines: VecDeque::new(),
            blank_so_far: true,
            lines_passed: 0,
            peeked: Vec::new(),
        }
    }

    /// Copies up to `buf.len()` upcoming bytes into `buf` without consuming them.
    fn peek(&mut self, buf: &mut [u8]) -> usize
    where
        R: Read,
    {
        while self.peeked.len() < buf.len() {
            let mut chunk = vec![0u8; buf.len() - self.peeked.len()];
            match self.inner.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.peeked.extend_from_slice(&chunk[..n]),
            }
        }
        let n = self.peeked.len().min(buf.len());
        buf[..n].copy_from_slice(&self.peeked[..n]);
        n
    }

    /// The 1-based line of the record whose parse began at byte `offset`; a record
    /// never starts on a blank line, so blank lines at `offset` are passed over, nor
    /// at a newline: after a `\r\n`, the csv reader starts the next record at the
    /// `\n`. Offsets must be asked in increasing order.
    fn line_at(&mut self, offset: u64) -> u64 {
        while let Some(&(at, blank)) = self.newlines.front() {
            if at <= offset || blank {
                self.newlines.pop_front();
                self.lines_passed += 1;
            } else {
                break;
            }
        }
        self.lines_passed + 1
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = if self.peeked.is_empty() {
            self.inner.read(buf)?
        } else {
            let n = self.peeked.len().min(buf.len());
            buf[..n].copy_from_slice(&self.peeked[..n]);
            self.peeked.drain(..n);
            n
        };
        for (i, &b) in buf[..n].iter().enumerate() {
            match b {
                b'\n' => {
                    self.newlines
                        .push_back((self.bytes + i as u64, self.blank_so_far));
                    self.blank_so_far = true;
                }
                b'\r' | b' ' | b'\t' => {}
                _ => self.blank_so_far = false,
            }
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

enum RowReader<'r, R: Read> {
    Csv {
        reader: csv::Reader<&'r mut CountingReader<R>>,
        headers: Option<Vec<String>>,
        record: csv::ByteRecord,
        failed: bool,
    },
    Jsonl {
        lines: BufReader<&'r mut CountingReader<R>>,
        line: u64,
        buf: Vec<u8>,
    },
}

impl<'r, R: Read> RowReader<'r, R> {
    fn new(format: FileFormat, reader: &'r mut CountingReader<R>) -> Self {
        match format {
            FileFormat::Csv => RowReader::Csv {
                reader: csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(sniff_delimiter(reader))
                    .from_reader(reader),
                headers: None,
                record: csv::ByteRecord::new(),
                failed: false,
            },
            FileFormat::Jsonl => RowReader::Jsonl {
                lines: BufReader::new(reader),
                line: 0,
                buf: Vec::new(),
            },
        }
    }

    fn bytes_read(&mut self) -> u64 {
        match self {
            RowReader::Csv { reader, .. } => reader.position().byte(),
            RowReader::Jsonl { lines, .. } => lines.get_ref().bytes - lines.buffer().len() as u64,
        }
    }

    /// The next data row: its line number and its message or why it is unusable.
    fn next_row(&mut self, mapping: &CompiledMapping) -> Option<(u64, ItemBody<'static>)> {
        match self {
            RowReader::Csv {
                reader,
                headers,
                record,
                failed,
            } => loop {
                if *failed {
                    return None;
                }
                let line = reader.position().line();
                match reader.read_byte_record(record) {
                    Ok(false) => return None,
                    Err(e) => {
                        // The csv reader cannot resynchronise after an I/O error.
                        *failed = true;
                        return Some((
                            line,
                            unusable(
                                String::new(),
                                RejectionCode::InvalidRow,
                                format!("unreadable CSV: {e}"),
                            ),
                        ));
                    }
                    Ok(true) => {}
                }
                let line = match record.position() {
                    Some(p) => reader.get_mut().line_at(p.byte()),
                    None => line,
                };
                if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                    continue; // blank line
                }
                let Some(names) = headers else {
                    *headers = Some(header_names(record));
                    continue;
                };
                return Some((line, csv_row(names, record, mapping)));
            },
            RowReader::Jsonl { lines, line, buf } => loop {
                buf.clear();
                *line += 1;
                match lines.read_until(b'\n', buf) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) => {
                        return Some((
                            *line,
                            unusable(
                                String::new(),
                                RejectionCode::InvalidRow,
                                format!("unreadable file: {e}"),
                            ),
                        ));
                    }
                }
                let text = String::from_utf8_lossy(buf);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                return Some((*line, jsonl_row(text, mapping)));
            },
        }
    }
}

/// Picks `,`, `;` or tab, whichever the header line uses most; without reading past
/// what the reader has buffered. European tills often export with `;`.
fn sniff_delimiter<R: Read>(reader: &mut CountingReader<R>) -> u8 {
    let mut head = [0u8; 4096];
    let n = reader.peek(&mut head);
    let first_line = head[..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
    [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| first_line.iter().filter(|b| *b == d).count())
        .filter(|d| first_line.contains(d))
        .unwrap_or(b',')
}

fn header_names(record: &csv::ByteRecord) -> Vec<String> {
    record
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect()
}

fn csv_row(
    names: &[String],
    record: &csv::ByteRecord,
    mapping: &CompiledMapping,
) -> ItemBody<'static> {
    let raw = || {
        let fields: Map<String, Value> = names
            .iter()
            .zip(record.iter())
            .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned().into()))
            .collect();
        Value::Object(fields).to_string()
    };
    if record.len() != names.len() {
        return unusable(
            raw(),
            RejectionCode::InvalidRow,
            format!(
                "the row has {} fields but the header has {}",
                record.len(),
                names.len()
            ),
        );
    }
    let mut cells = Vec::with_capacity(names.len());
    for (name, value) in names.iter().zip(record.iter()) {
        match std::str::from_utf8(value) {
            Ok(text) => cells.push((name.as_str(), Value::String(text.to_string()))),
            Err(_) => {
                return unusable(
                    raw(),
                    RejectionCode::InvalidRow,
                    format!("column {name:?} is not valid UTF-8; save the file as UTF-8"),
                );
            }
        }
    }
    match mapping.map_record(cells) {
        Ok(message) => ItemBody::Parsed(message),
        Err(rejection) => ItemBody::Unusable {
            payload: raw(),
            rejection,
        },
    }
}

fn jsonl_row(text: &str, mapping: &CompiledMapping) -> ItemBody<'static> {
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return unusable(
                text.to_string(),
                RejectionCode::NotAnObject,
                "the line is JSON but not an object".into(),
            );
        }
        Err(e) => {
            return unusable(
                text.to_string(),
                RejectionCode::InvalidJson,
                format!("not valid JSON: {e}"),
            );
        }
    };
    if mapping.has_columns() {
        let cells: Vec<(&str, Value)> = object
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        return match mapping.map_record(cells) {
            Ok(message) => ItemBody::Parsed(message),
            Err(rejection) => ItemBody::Unusable {
                payload: text.to_string(),
                rejection,
            },
        };
    }
    let mut message = object;
    mapping.apply_defaults(&mut message);
    ItemBody::Parsed(message)
}

fn unusable(payload: String, code: RejectionCode, message: String) -> ItemBody<'static> {
    ItemBody::Unusable {
        payload,
        rejection: Rejection::new(code, message),
    }
}

#[cfg(test)]
mod tests {
    use jiff::tz::TimeZone;
    use unavoce_core::import::Mapping;

    use super::*;

    /// The line of every data row of a CSV file.
    fn csv_lines(file: &[u8]) -> Vec<u64> {
        let mapping = CompiledMapping::new(Mapping::default(), TimeZone::UTC).unwrap();
        let mut counted = CountingReader::new(file);
        let mut rows = RowReader::new(FileFormat::Csv, &mut counted);
        std::iter::from_fn(|| rows.next_row(&mapping).map(|(line, _)| line)).collect()
    }

    #[test]
    fn rows_after_crlf_line_ends_are_reported_at_their_own_line() {
        assert_eq!(csv_lines(b"a;b\r\nu1;x\r\n\r\nu2;y\r\n;z\r\n"), [2, 4, 5]);
        assert_eq!(csv_lines(b"a;b\nu1;x\n\nu2;y\n;z\n"), [2, 4, 5]);
        // Found by the import_rows fuzz target (fuzz/regressions/import_rows): CRLF,
        // a blank line, a quoted field over two lines, a lone CR splitting line 8.
        let found = b"user\x00userId;event;properties.total;traits.phone;zip;qty;timeStamp\r\n\
            u1;Order Completed;19,90;3331234567;00123;2;2024-05-01T09:30:00\r\n\r\n\
            u2;Order Completed;5;;;1;2024-05-02\r\n;;;;;Id\tname\t;\r\n\
            u3;\"Qcity\nu1\tuoted;event\"\"\";1_0Ada\tRoma00;;;x;\nu2\tGracbad\re\n\n";
        assert_eq!(csv_lines(found), [2, 4, 5, 6, 8, 8]);
    }

    /// Found by the import_rows fuzz target (fuzz/regressions/import_rows): a header
    /// named `timestam` and 145 dots nested the row's message deeper than the log can
    /// read back; every message of the file reads back now.
    #[test]
    fn a_files_rows_make_messages_the_log_can_read_back() {
        let found: Vec<u8> = [
            b"userId;event;properties.total;traits.pho".as_slice(),
            b"ne;zip;qty;timestam.....................".as_slice(),
            b"........................................".as_slice(),
            b"........................................".as_slice(),
            b"........................................".as_slice(),
            b"....\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85\x85.........p".as_slice(),
            b"\r\nu1;Ordfr Completed;19,90;3331234567;00".as_slice(),
            b"123;2;2024-05-01T09:30:00\r\n\x05\nu2;Order Co".as_slice(),
            b"mpl\x04user\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94".as_slice(),
            b"\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94".as_slice(),
            b"\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\x94\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff-\xff\r\n20;;;;;;r\r\nu3".as_slice(),
            b";\"Quoted;event\"\"\";1_000;;;x;bad\r\n".as_slice(),
        ]
        .concat();
        let mapping = CompiledMapping::new(Mapping::default(), TimeZone::UTC).unwrap();
        let mut counted = CountingReader::new(&found[..]);
        let mut rows = RowReader::new(FileFormat::Csv, &mut counted);
        let mut messages = 0;
        while let Some((_, body)) = rows.next_row(&mapping) {
            if let ItemBody::Parsed(message) = body {
                let text = Value::Object(message).to_string();
                assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
                messages += 1;
            }
        }
        assert_eq!(messages, 3);
    }
}
