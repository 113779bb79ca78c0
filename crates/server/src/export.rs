//! A person's data, for their right of access and portability (GDPR art. 15 and 20):
//! everything held about them as JSON Lines, one record a line (`{"kind", "data"}`) —
//! their profile (identifiers, traits with sources, merge history), context card
//! (consents, cases), segments, journey runs, decisions with reasons, the messages sent
//! to them, then every event of theirs, read from the log a page at a time. The API
//! streams it; `unavoce export` writes the same lines to a file. As a ZIP
//! ([`PersonExport::write_zip`]), each kind is a file of its own (`events.jsonl`, ...).

use jiff::Timestamp;
use serde_json::{Value, json};
use unavoce_core::identity::ProfileId;
use unavoce_platform::PersonData;
use unavoce_store::{DecisionQuery, OutboxQuery, RunQuery, StoreError};

use crate::api::profile_json;

/// Events read from the log at a time.
const EVENTS_PER_PAGE: usize = 1_000;
/// Decisions, runs and messages read at a time.
const PAGE: usize = 10_000;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("profile {0} does not exist")]
    NoSuchProfile(ProfileId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the person's context card could not be built: {0}")]
    Card(String),
    #[error("cannot write the export: {0}")]
    File(String),
}

/// One person's records, produced in order: [`PersonExport::next_lines`] until `None`.
pub struct PersonExport {
    data: PersonData,
    profile: ProfileId,
    /// The records before the events, as lines.
    head: Option<Vec<Line>>,
    /// The log positions of the person's events not yet read.
    events: std::vec::IntoIter<i64>,
}

/// Every item a paged query gives, page after page: `page` reads the page after a
/// cursor, `cursor` is an item's.
async fn every<T, C, F>(
    mut page: impl FnMut(Option<C>) -> F,
    cursor: impl Fn(&T) -> C,
) -> Result<Vec<T>, StoreError>
where
    F: std::future::Future<Output = Result<Vec<T>, StoreError>>,
{
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let items = page(after).await?;
        let full = items.len() == PAGE;
        after = items.last().map(&cursor);
        all.extend(items);
        if !full {
            return Ok(all);
        }
    }
}

/// One record as a line of JSON Lines, with its kind (what a ZIP files it under).
pub struct Line {
    pub kind: &'static str,
    /// `{"kind", "data"}` and a newline.
    pub text: String,
}

fn line(kind: &'static str, data: Value) -> Line {
    let mut text = json!({"kind": kind, "data": data}).to_string();
    text.push('\n');
    Line { kind, text }
}

impl PersonExport {
    /// Starts an export of `profile` (after the projections have caught up).
    pub async fn start(data: PersonData, profile: ProfileId) -> Result<Self, ExportError> {
        data.identity.catch_up().await?;
        let (node, seqs) = (data.identity)
            .profile_with_events(profile)
            .ok_or(ExportError::NoSuchProfile(profile))?;
        let now = Timestamp::now();
        let mut head = vec![line("profile", profile_json(&data.identity, &node, true))];
        let card = data
            .context_card(profile, now)
            .await
            .map_err(|e| ExportError::Card(e.to_string()))?;
        if let Some(card) = card {
            head.push(line(
                "context_card",
                serde_json::to_value(card).unwrap_or_default(),
            ));
        }
        let segments: Vec<String> = data.identity.read_people(|_, people| {
            people.get(&profile).map_or_else(Vec::new, |state| {
                state.segments().map(str::to_string).collect()
            })
        });
        for segment in segments {
            head.push(line("segment", json!({ "segment": segment })));
        }
        let runs = every(
            |after: Option<String>| {
                let query = RunQuery {
                    profile_id: Some(profile),
                    after,
                    limit: PAGE,
                    ..RunQuery::default()
                };
                let runs = data.runs.clone();
                async move { runs.runs(query).await }
            },
            |run| run.key.clone(),
        )
        .await?;
        head.extend(
            runs.into_iter()
                .map(|run| line("journey_run", serde_json::to_value(run).unwrap_or_default())),
        );
        let decisions = every(
            |after_id: Option<i64>| {
                let query = DecisionQuery {
                    profile_ids: vec![profile],
                    after_id,
                    limit: PAGE,
                    ..DecisionQuery::default()
                };
                let decisions = data.decisions.clone();
                async move { decisions.decisions(query).await }
            },
            |decision| decision.id,
        )
        .await?;
        head.extend(decisions.into_iter().map(|decision| {
            line(
                "decision",
                serde_json::to_value(decision).unwrap_or_default(),
            )
        }));
        let entries = every(
            |after_id: Option<i64>| {
                let query = OutboxQuery {
                    profile_ids: vec![profile],
                    after_id,
                    limit: PAGE,
                    ..OutboxQuery::default()
                };
                let outbox = data.outbox.clone();
                async move { outbox.outbox(query).await }
            },
            |entry| entry.id,
        )
        .await?;
        let (facts, _) = data.identity.person(profile, now);
        for entry in entries {
            // The text sent is not kept: it is rendered again from the message and what
            // is held about the person now.
            let rendered = data
                .messages
                .render(&entry.message, &entry.channel, profile, &facts)
                .map_or_else(
                    |e| json!({"not_rendered": e.to_string()}),
                    |r| serde_json::to_value(r).unwrap_or_default(),
                );
            let mut record = serde_json::to_value(&entry).unwrap_or_default();
            record["rendered_now"] = rendered;
            head.push(line("message", record));
        }
        Ok(PersonExport {
            data,
            profile,
            head: Some(head),
            events: seqs.into_iter(),
        })
    }

    /// The person's id.
    pub fn profile(&self) -> ProfileId {
        self.profile
    }

    /// The next lines: first every record but the events, then the events a page at a
    /// time, oldest first; `None` when all are out.
    pub async fn next_lines(&mut self) -> Result<Option<Vec<Line>>, ExportError> {
        if let Some(head) = self.head.take() {
            return Ok(Some(head));
        }
        let seqs: Vec<i64> = self.events.by_ref().take(EVENTS_PER_PAGE).collect();
        if seqs.is_empty() {
            return Ok(None);
        }
        let events = self.data.log.events_at(seqs).await?;
        Ok(Some(
            events
                .into_iter()
                .map(|e| line("event", json!({"seq": e.seq, "message": e.event.message})))
                .collect(),
        ))
    }
}

impl PersonExport {
    /// Writes every record into a ZIP archive in `file`, one JSON Lines file per kind
    /// (`profile.jsonl`, `event.jsonl`, ...); records of a kind come together, so each
    /// is written once, as the records go by.
    pub async fn write_zip(mut self, file: std::fs::File) -> Result<std::fs::File, ExportError> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let mut current = "";
        while let Some(lines) = self.next_lines().await? {
            for line in lines {
                if line.kind != current {
                    zip.start_file(format!("{}.jsonl", line.kind), options)
                        .map_err(|e| zip_error(std::io::Error::other(e)))?;
                    current = line.kind;
                }
                zip.write_all(line.text.as_bytes()).map_err(zip_error)?;
            }
        }
        zip.finish()
            .map_err(|e| zip_error(std::io::Error::other(e)))?
            .into_inner()
            .map_err(|e| zip_error(e.into_error()))
    }
}

fn zip_error(e: std::io::Error) -> ExportError {
    ExportError::File(format!("the ZIP archive: {e}"))
}
