//! The shapes of the JSON the handlers read and answer, for the OpenAPI document.
//!
//! Most handlers build their answers with `json!` or serialize a type of another
//! crate (which knows nothing of HTTP or OpenAPI), so each shape is written here as
//! the handler makes it: the same field names, types and optionality. These types are
//! never built; they only describe. Times are RFC 3339 strings; profile ids are
//! `p-<number>`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

// ---------------------------------------------------------------- errors, health

/// Every error: `{"error": {"code", "message", ...}}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ApiErrorBody {
    pub error: ErrorDetail,
}

/// An error's stable code, its sentence, and details some errors add.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`not_found`, `invalid_parameter`, ...).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Tracking API: the quarantine entry that holds the refused body or message.
    pub quarantine_id: Option<i64>,
    /// `batch_too_large`: how many messages were quarantined.
    pub quarantined: Option<u64>,
    /// `body_too_large`: the limit in bytes.
    pub limit: Option<u64>,
    /// `already_replayed`: the log position of the replayed event.
    pub seq: Option<i64>,
    /// `still_invalid`: the rejection's code.
    pub reason_code: Option<String>,
}

/// `{"status": ...}`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    pub status: String,
}

/// An identifier: its type and value.
#[derive(Serialize, ToSchema)]
pub struct Identifier {
    /// The identifier type (`email`, `phone`, `user_id`, `anonymous_id`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// Whether a definition is in force.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DefinitionStatus {
    Active,
    /// Held until it is resumed.
    Paused,
    /// For good: nobody new enters; it no longer changes.
    Retired,
}

/// One field that changed between two versions.
#[derive(Serialize, ToSchema)]
pub struct FieldChange {
    /// `steps[1].duration`; empty for the whole value.
    pub path: String,
    /// Absent when the field was added.
    pub before: Option<Value>,
    /// Absent when the field was removed.
    pub after: Option<Value>,
}

/// The answer to a `PUT`: the version in force after it.
#[derive(Serialize, ToSchema)]
pub struct Revised {
    pub name: String,
    pub version: u32,
    /// False when the definition given is the one in force (no version was made).
    pub changed: bool,
    pub changes: Vec<FieldChange>,
}

/// A dry run of a `PUT`: what would change, nothing stored.
#[derive(Serialize, ToSchema)]
pub struct RevisionPreview {
    pub dry_run: bool,
    pub name: String,
    pub changes: Vec<FieldChange>,
    /// For a segment: people outside who would enter, and inside who would leave.
    pub entering: Option<u64>,
    pub leaving: Option<u64>,
    /// The first of each, in profile order (up to `limit`, 20 by default).
    pub entering_sample: Option<Vec<String>>,
    pub leaving_sample: Option<Vec<String>>,
    /// People the new expression could not be evaluated for (counted as outside).
    pub errors: Option<u64>,
}

/// A new version of a journey, and what happens to the people in its runs.
#[derive(Serialize, ToSchema)]
pub struct JourneyEdit {
    pub definition: JourneyDefinition,
    /// `"finish"` (on the version they follow), `"exit"`, or
    /// `{"move": {"old step": "new step"}}`.
    pub runs: Value,
}

/// The answer to `PUT /api/journeys/{name}`.
#[derive(Serialize, ToSchema)]
pub struct JourneyRevised {
    pub name: String,
    pub dry_run: bool,
    /// The version made (none on a dry run).
    pub version: Option<u32>,
    pub changes: Vec<FieldChange>,
    pub runs: RunsRevised,
}

/// The runs a new version moved, left to finish, or exited.
#[derive(Serialize, ToSchema)]
pub struct RunsRevised {
    /// By `"old step → new step"`.
    pub moved: BTreeMap<String, u64>,
    /// Left to finish on the version they follow.
    pub finishing: u64,
    pub exited: u64,
}

/// The answer to a pause, resume or retirement.
#[derive(Serialize, ToSchema)]
pub struct StatusChanged {
    pub name: String,
    pub status: DefinitionStatus,
    /// The status before.
    pub was: DefinitionStatus,
}

/// One version of a definition.
#[derive(Serialize, ToSchema)]
pub struct DefinitionVersion {
    pub version: u32,
    /// When and by which key or session (absent for definitions made before versions
    /// were kept).
    pub at: Option<String>,
    pub by: Option<String>,
    /// The definition as it was.
    pub config: BTreeMap<String, Value>,
    /// What changed from the version before.
    pub changes: Vec<FieldChange>,
}

/// A change of status.
#[derive(Serialize, ToSchema)]
pub struct DefinitionStatusChange {
    pub status: DefinitionStatus,
    pub at: String,
    pub by: String,
}

/// A definition's history (none for the config file's, which change with the file).
#[derive(Serialize, ToSchema)]
pub struct DefinitionHistory {
    pub name: String,
    pub origin: Origin,
    pub status: DefinitionStatus,
    /// Oldest first.
    pub versions: Vec<DefinitionVersion>,
    pub statuses: Vec<DefinitionStatusChange>,
}

/// Where a definition comes from.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The configuration file.
    Config,
    /// The API.
    Api,
}

/// A key's role.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Marketer,
    Analyst,
    Agent,
}

// ---------------------------------------------------------------- tracking

/// A Segment message (see Segment's HTTP Tracking API). The fields below are those the
/// intake reads; others are kept as sent. In a batch each message needs `type`.
#[derive(Serialize, ToSchema)]
pub struct TrackingMessage {
    /// `identify`, `track`, `page`, `screen`, `group` or `alias` (implied by the
    /// endpoint of a single call).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `userId` or `anonymousId` is required.
    #[serde(rename = "userId")]
    pub user_id: Option<String>,
    #[serde(rename = "anonymousId")]
    pub anonymous_id: Option<String>,
    /// A retry with the same `messageId` is acknowledged once.
    #[serde(rename = "messageId")]
    pub message_id: Option<String>,
    /// The event name (required by `track`).
    pub event: Option<String>,
    /// The page or screen name.
    pub name: Option<String>,
    /// Required by `group`.
    #[serde(rename = "groupId")]
    pub group_id: Option<String>,
    /// Required by `alias`.
    #[serde(rename = "previousId")]
    pub previous_id: Option<String>,
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
    #[serde(rename = "originalTimestamp")]
    #[schema(format = DateTime)]
    pub original_timestamp: Option<String>,
    #[serde(rename = "sentAt")]
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
    pub traits: Option<BTreeMap<String, Value>>,
    pub properties: Option<BTreeMap<String, Value>>,
    /// Segment's context; `context.touchpoint` and `context.channel` name where the
    /// interaction happened.
    pub context: Option<BTreeMap<String, Value>>,
    pub integrations: Option<BTreeMap<String, Value>>,
    /// The write key, when not sent in the `Authorization` header (never stored).
    #[serde(rename = "writeKey")]
    pub write_key: Option<String>,
}

/// `{"success": true, "duplicate": ...}`.
#[derive(Serialize, ToSchema)]
pub struct CallAccepted {
    pub success: bool,
    /// The message was already in the log (a retry).
    pub duplicate: bool,
}

/// A batch of at most 2,500 messages; the other fields (`context`, `integrations`,
/// `sentAt`, ...) apply to every message.
#[derive(Serialize, ToSchema)]
pub struct BatchRequest {
    pub batch: Vec<TrackingMessage>,
    pub context: Option<BTreeMap<String, Value>>,
    pub integrations: Option<BTreeMap<String, Value>>,
    #[serde(rename = "sentAt")]
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
    #[serde(rename = "writeKey")]
    pub write_key: Option<String>,
}

/// What became of a batch.
#[derive(Serialize, ToSchema)]
pub struct BatchAccepted {
    pub success: bool,
    /// Messages newly stored.
    pub accepted: u64,
    /// Retries already in the log.
    pub duplicates: u64,
    pub rejected: Vec<RejectedMessage>,
}

/// A message that was not stored.
#[derive(Serialize, ToSchema)]
pub struct RejectedMessage {
    /// Its position in the batch.
    pub index: u64,
    #[serde(rename = "messageId")]
    pub message_id: Option<String>,
    /// `missing_identity`, `invalid_timestamp`, `subject_erased`, ...
    pub code: String,
    pub message: String,
    /// The quarantine entry holding it (none for `subject_erased`, which is not kept).
    pub quarantine_id: Option<i64>,
}

// ---------------------------------------------------------------- keys, audit

/// The calling key.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub name: String,
    pub role: Role,
    /// How the key sees people: `full`, `masked` or `hidden`.
    pub people: String,
    /// The routes the key may use, as `METHOD /api/route`.
    pub routes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// A named key (never the key itself).
#[derive(Serialize, ToSchema)]
pub struct KeyInfo {
    pub name: String,
    pub role: Role,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
}

/// A key to make.
#[derive(Serialize, ToSchema)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
}

/// The key made, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    pub name: String,
    pub role: Role,
    pub key: String,
    pub note: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub records: Vec<AuditRecord>,
    /// Give as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// One audit record, chained to the one before by its hash.
#[derive(Serialize, ToSchema)]
pub struct AuditRecord {
    pub seq: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// The key's name.
    pub actor: String,
    pub role: String,
    /// The method and route template, e.g. `POST /api/profiles/{id}/consents`.
    pub action: String,
    pub profile_id: Option<String>,
    /// The answer's HTTP status.
    pub outcome: u16,
    pub hash: String,
}

// ---------------------------------------------------------------- events, quarantine

/// Counts of the log, the identity graph and the engagement.
#[derive(Serialize, ToSchema)]
pub struct Stats {
    pub events: u64,
    pub profiles: u64,
    pub events_without_identity: u64,
    pub flagged_identifiers: u64,
    pub duplicates: u64,
    /// Entries in the quarantine not replayed.
    pub quarantined: u64,
    pub quarantined_total: u64,
    pub merges: u64,
    /// Decisions by outcome (insights for departments not counted).
    pub decisions: BTreeMap<String, u64>,
    /// Messages sent to people (insights not counted).
    pub messages_sent: u64,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// Oldest first.
    pub events: Vec<StoredEvent>,
    pub next_cursor: Option<String>,
}

/// A stored event: its normalised Segment message with its log position and source.
#[derive(Serialize, ToSchema)]
pub struct StoredEvent {
    /// Its position in the log.
    pub seq: i64,
    /// The source the write key names.
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "messageId")]
    pub message_id: String,
    #[schema(format = DateTime)]
    pub timestamp: String,
    #[serde(rename = "userId")]
    pub user_id: Option<String>,
    #[serde(rename = "anonymousId")]
    pub anonymous_id: Option<String>,
    /// The message's other fields, as normalised (`traits`, `properties`, `context`,
    /// `receivedAt`, ...).
    #[serde(flatten)]
    pub message: BTreeMap<String, Value>,
}

#[derive(Serialize, ToSchema)]
pub struct QuarantinePage {
    pub entries: Vec<QuarantineEntry>,
    pub next_cursor: Option<String>,
}

/// A message that could not be stored, with why.
#[derive(Serialize, ToSchema)]
pub struct QuarantineEntry {
    pub id: i64,
    #[schema(format = DateTime)]
    pub received_at: String,
    pub source: String,
    pub code: String,
    pub reason: String,
    pub message_id: Option<String>,
    /// The message as a JSON object, or the text received when it was not one.
    pub payload: Value,
    /// Where it came in (`endpoint`, and the batch `index` or file line).
    pub origin: Value,
    pub status: QuarantineStatus,
    #[schema(format = DateTime)]
    pub replayed_at: Option<String>,
    pub replayed_seq: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineStatus {
    Pending,
    Replayed,
}

/// The fixed message; without it (or with an empty body) the stored one is validated
/// again.
#[derive(Serialize, ToSchema)]
pub struct ReplayRequest {
    pub message: Option<BTreeMap<String, Value>>,
}

#[derive(Serialize, ToSchema)]
pub struct Replayed {
    pub replayed: bool,
    pub event: ReplayOutcome,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayOutcome {
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// Its position in the log; `null` when it was already there.
    pub seq: Option<i64>,
    pub duplicate: bool,
}

/// The parts of a multipart import.
#[derive(Serialize, ToSchema)]
pub struct ImportForm {
    /// The file.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
    /// A mapping of columns to message fields, in TOML or JSON (as the CLI's mapping
    /// files).
    pub mapping: Option<String>,
}

/// The outcome of an import.
#[derive(Serialize, ToSchema)]
pub struct ImportReport {
    /// Data rows read (header excluded).
    pub rows: u64,
    pub accepted: u64,
    pub duplicates: u64,
    /// Rows quarantined (or refused), with their lines.
    pub errors: Vec<RowError>,
}

#[derive(Serialize, ToSchema)]
pub struct RowError {
    pub line: u64,
    pub code: String,
    pub message: String,
    pub quarantine_id: Option<i64>,
}

// ---------------------------------------------------------------- touchpoints

/// A touchpoint as registered.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Touchpoint {
    /// As events carry it in `context.touchpoint`.
    pub id: String,
    pub name: String,
    /// The channel kind (`web`, `app`, `email`, `sms`, `whatsapp`, `phone`, `store`, ...).
    pub channel: String,
    /// `physical` or `digital`; from the channel kind when absent.
    pub presence: Option<String>,
    pub department: String,
    /// Customer needs it serves.
    pub needs: Option<Vec<String>>,
    /// `active` (default), `planned` or `retired`.
    pub status: Option<String>,
    pub cost_per_interaction: Option<f64>,
    pub capacity: Option<u32>,
}

/// A touchpoint with where it is defined.
#[derive(Serialize, ToSchema)]
pub struct TouchpointEntry {
    pub id: String,
    pub name: String,
    pub channel: String,
    /// `physical` or `digital`.
    pub presence: String,
    pub department: String,
    pub needs: Vec<String>,
    pub status: String,
    pub cost_per_interaction: Option<f64>,
    pub capacity: Option<u32>,
    pub defined_in: Origin,
}

#[derive(Serialize, ToSchema)]
pub struct TouchpointList {
    pub touchpoints: Vec<TouchpointEntry>,
}

// ---------------------------------------------------------------- profiles

#[derive(Serialize, ToSchema)]
pub struct ProfilePage {
    pub profiles: Vec<ProfileSummary>,
    pub next_cursor: Option<String>,
}

/// A profile in a list.
#[derive(Serialize, ToSchema)]
pub struct ProfileSummary {
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub identifiers: Vec<ProfileIdentifier>,
    /// Each trait's current value.
    pub traits: BTreeMap<String, Value>,
    pub event_count: u64,
    #[schema(format = DateTime)]
    pub last_seen: Option<String>,
}

/// A profile with where its traits come from and its merges.
#[derive(Serialize, ToSchema)]
pub struct Profile {
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub identifiers: Vec<ProfileIdentifier>,
    pub traits: BTreeMap<String, Value>,
    pub event_count: u64,
    #[schema(format = DateTime)]
    pub last_seen: Option<String>,
    pub trait_sources: BTreeMap<String, TraitValue>,
    pub merges: Vec<Merge>,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileIdentifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    #[schema(format = DateTime)]
    pub first_seen: String,
}

/// A trait's value, with where and when it was said.
#[derive(Serialize, ToSchema)]
pub struct TraitValue {
    pub value: Value,
    /// The touchpoint, or the source when the event named none.
    pub source: String,
    #[schema(format = DateTime)]
    pub at: String,
}

/// A merge of another profile into this one.
#[derive(Serialize, ToSchema)]
pub struct Merge {
    pub event_seq: i64,
    #[schema(format = DateTime)]
    pub at: String,
    pub into: String,
    pub from: String,
    /// The identifiers that linked them.
    pub via: Vec<Identifier>,
    /// A probabilistic match (accepted automatically or by a reviewer).
    pub decided: bool,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileList {
    pub profiles: Vec<Profile>,
}

/// People found by a search.
#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    pub profiles: Vec<SearchHit>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    pub id: String,
    pub name: Option<String>,
    pub identifiers: Vec<Identifier>,
    pub events: u64,
}

/// The context card: who, consents, open cases with their cross-channel history,
/// last interactions, recent messages, next best action.
#[derive(Serialize, ToSchema)]
pub struct ContextCard {
    pub profile_id: String,
    pub name: Option<String>,
    pub identifiers: Vec<Identifier>,
    pub traits: BTreeMap<String, Value>,
    pub computed_traits: BTreeMap<String, Value>,
    /// `prospect`, `customer`, `loyal` or `lapsed`.
    pub lifecycle_stage: String,
    pub preferred_channel: Option<String>,
    pub consents: Vec<ConsentLine>,
    /// Open cases: `id`, `status`, `subject`, `category`, `opened_at`, `resolved_at`,
    /// `touches`, `channels`.
    pub open_cases: Vec<BTreeMap<String, Value>>,
    /// How long the oldest open case has been open (0 with none).
    pub open_case_hours: f64,
    pub resolved_cases: u64,
    /// Per channel: `sent`, `delivered`, `opened`, `clicked`, `replied`, `failed`,
    /// `interactions`, `last_engagement`, ...
    pub engagement: BTreeMap<String, BTreeMap<String, Value>>,
    pub last_interactions: Vec<Interaction>,
    pub recent_messages: Vec<Interaction>,
    /// The journeys the person is in, in the order they entered.
    pub active_journeys: Vec<JourneyPosition>,
    pub next_best_action: NextBestAction,
}

/// Where the person is in one journey, and what comes next.
#[derive(Serialize, ToSchema)]
pub struct JourneyPosition {
    pub journey: String,
    #[schema(format = DateTime)]
    pub entered_at: String,
    /// The step the person is at (from 0), and its name.
    pub step: u32,
    pub step_name: String,
    /// Since when the run has been as it is (its last move).
    #[schema(format = DateTime)]
    pub since: String,
    /// What the journey does next for the person, in words.
    pub next: String,
    /// When it does it, when a time is set (a wait's end, a deadline).
    #[schema(format = DateTime)]
    pub next_at: Option<String>,
    /// In the control group: the steps run, nothing is sent.
    pub control: bool,
}

/// A contact on any channel.
#[derive(Serialize, ToSchema)]
pub struct Interaction {
    #[schema(format = DateTime)]
    pub at: String,
    pub touchpoint: Option<String>,
    pub channel: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NextBestAction {
    /// `resolve_case`, `recover_detractor`, `ask_consent`, `offer_help`, `win_back` or
    /// `none`.
    pub action: String,
    pub summary: String,
    pub reason: String,
}

/// A page of the person's interactions, newest first.
#[derive(Serialize, ToSchema)]
pub struct Timeline {
    pub profile_id: String,
    pub total: u64,
    pub timeline: Vec<TimelineEntry>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TimelineEntry {
    pub seq: i64,
    #[schema(format = DateTime)]
    pub at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub touchpoint: Option<String>,
    pub channel: Option<String>,
    pub properties: Option<BTreeMap<String, Value>>,
}

#[derive(Serialize, ToSchema)]
pub struct NoteRecorded {
    pub profile_id: String,
    pub case_id: String,
    pub note: String,
}

// ---------------------------------------------------------------- identity

#[derive(Serialize, ToSchema)]
pub struct Flagged {
    pub flagged: Vec<FlaggedIdentifier>,
    pub shared: Vec<SharedIdentifier>,
}

/// An identifier seen with implausibly many others: it links no one any more.
#[derive(Serialize, ToSchema)]
pub struct FlaggedIdentifier {
    pub identifier: Identifier,
    #[schema(format = DateTime)]
    pub flagged_at: String,
    pub flagged_by_event: i64,
    pub seen_with_count: u64,
    /// The first ten.
    pub seen_with: Vec<Identifier>,
    pub reason: String,
}

/// An identifier proven shared by two people.
#[derive(Serialize, ToSchema)]
pub struct SharedIdentifier {
    pub identifier: Identifier,
    pub seen_with: Vec<Identifier>,
    pub reason: String,
}

/// What a matching run did.
#[derive(Serialize, ToSchema)]
pub struct MatchingReport {
    pub profiles_compared: u64,
    pub candidate_pairs: u64,
    pub linked_automatically: u64,
    pub queued_for_review: u64,
    pub refused: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ReviewQueue {
    pub items: Vec<ReviewItem>,
}

/// A possible match between two profiles.
#[derive(Serialize, ToSchema)]
pub struct ReviewItem {
    pub id: u64,
    /// The best identifier of each profile.
    pub a: Identifier,
    pub b: Identifier,
    pub probability: f64,
    pub traits_a: BTreeMap<String, String>,
    pub traits_b: BTreeMap<String, String>,
    /// `pending`, `accepted` or `rejected`.
    pub status: String,
    #[schema(format = DateTime)]
    pub found_at: String,
    #[schema(format = DateTime)]
    pub decided_at: Option<String>,
}

// ---------------------------------------------------------------- privacy

#[derive(Serialize, ToSchema)]
pub struct ConsentRecorded {
    pub profile_id: String,
    pub purpose: String,
    pub channel: Option<String>,
    pub granted: bool,
}

/// The current consents, and every statement, oldest first.
#[derive(Serialize, ToSchema)]
pub struct Consents {
    pub profile_id: String,
    pub current: Vec<ConsentLine>,
    pub history: Vec<ConsentLine>,
}

/// A purpose on a channel (`null`: every channel without a line of its own).
#[derive(Serialize, ToSchema)]
pub struct ConsentLine {
    pub purpose: String,
    pub channel: Option<String>,
    pub granted: bool,
    #[schema(format = DateTime)]
    pub at: String,
    pub source: String,
}

/// The receipt of an erasure.
#[derive(Serialize, ToSchema)]
pub struct Erased {
    pub profile_id: String,
    #[schema(format = DateTime)]
    pub erased_at: String,
    /// Events removed from the log.
    pub events: u64,
    pub quarantined: u64,
    pub decisions: u64,
    pub outbox_entries: u64,
    /// Outbox entries that were still to be sent.
    pub cancelled: u64,
    pub journey_runs: u64,
    /// Suppressions added.
    pub suppressed: u64,
    /// Queued possible matches naming the person, removed.
    pub review_entries: u64,
    /// The keyed hashes now on the suppression list.
    pub suppressions: Vec<Suppression>,
}

#[derive(Serialize, ToSchema)]
pub struct SuppressionList {
    pub suppressions: Vec<Suppression>,
}

/// An erased person's identifier, as a keyed hash.
#[derive(Serialize, ToSchema)]
pub struct Suppression {
    pub hash: String,
    /// The identifier type.
    pub kind: String,
    #[schema(format = DateTime)]
    pub at: String,
}

/// The retention rules in force and the last pass.
#[derive(Serialize, ToSchema)]
pub struct Retention {
    pub rules: RetentionRules,
    /// Whether any rule can expire an event.
    pub active: bool,
    pub check_every_hours: i64,
    pub last_pass: Option<RetentionPass>,
}

/// The `[privacy]` retention settings.
#[derive(Serialize, ToSchema)]
pub struct RetentionRules {
    pub retention_days: Option<u32>,
    pub retention_days_by_event: BTreeMap<String, u32>,
    pub retention_days_by_source: BTreeMap<String, u32>,
    pub retention_check_hours: Option<u32>,
}

/// What one retention pass did.
#[derive(Serialize, ToSchema)]
pub struct RetentionPass {
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: String,
    #[schema(format = DateTime)]
    pub now: String,
    pub scanned: u64,
    /// Expired events removed.
    pub events: u64,
    /// Expired events replaced by their identity evidence.
    pub stripped: u64,
    pub quarantined: u64,
    pub rebuilt: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RetentionRun {
    pub pass: RetentionPass,
}

// ---------------------------------------------------------------- reports

/// The audience a report was narrowed to (`segment`).
#[derive(Serialize, ToSchema)]
pub struct ReportSegment {
    pub expression: String,
    pub people: u64,
    pub evaluated: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// KPIs per touchpoint and per channel.
#[derive(Serialize, ToSchema)]
pub struct KpiReport {
    pub people: u64,
    pub interactions: u64,
    pub touchpoints: Vec<Kpis>,
    pub channels: Vec<Kpis>,
    #[schema(format = DateTime)]
    pub from: Option<String>,
    #[schema(format = DateTime)]
    pub to: Option<String>,
    pub segment: Option<ReportSegment>,
}

/// KPIs per channel.
#[derive(Serialize, ToSchema)]
pub struct ChannelKpis {
    pub people: u64,
    pub interactions: u64,
    pub channels: Vec<Kpis>,
    #[schema(format = DateTime)]
    pub from: Option<String>,
    #[schema(format = DateTime)]
    pub to: Option<String>,
    pub segment: Option<ReportSegment>,
}

/// One touchpoint's (or channel's) figures. Rates are fractions 0..1, `null` where
/// undefined.
#[derive(Serialize, ToSchema)]
pub struct Kpis {
    /// `null` in the per-channel table.
    pub touchpoint: Option<String>,
    pub channel: Option<String>,
    pub registered: bool,
    pub interactions: u64,
    pub reach: u64,
    pub share_of_customers: Option<f64>,
    pub conversions: u64,
    pub conversion_rate: Option<f64>,
    pub cost: Option<f64>,
    pub cost_per_interaction: Option<f64>,
    pub cost_per_conversion: Option<f64>,
    pub csat: Option<f64>,
    pub csat_average: Option<f64>,
    pub csat_answers: u64,
    pub nps: Option<f64>,
    pub nps_answers: u64,
    pub cases: u64,
    pub first_contact_resolution: Option<f64>,
    pub repeat_contact_rate: Option<f64>,
    pub cross_channel_repeat_rate: Option<f64>,
    pub time_to_resolution_hours: Option<f64>,
    pub channel_switch_rate: Option<f64>,
    pub abandoned: u64,
    pub abandonment_rate: Option<f64>,
    pub trend: Option<f64>,
}

/// Paths between touchpoints: Sankey nodes and links, and the most taken paths.
#[derive(Serialize, ToSchema)]
pub struct PathReport {
    pub steps: u64,
    pub people: u64,
    pub nodes: Vec<PathNode>,
    pub links: Vec<PathLink>,
    pub sequences: Vec<PathSequence>,
    #[schema(format = DateTime)]
    pub from: Option<String>,
    #[schema(format = DateTime)]
    pub to: Option<String>,
    pub segment: Option<ReportSegment>,
}

#[derive(Serialize, ToSchema)]
pub struct PathNode {
    /// `"{step}:{touchpoint}"`.
    pub id: String,
    pub step: u64,
    pub touchpoint: String,
    pub people: u64,
}

#[derive(Serialize, ToSchema)]
pub struct PathLink {
    pub source: String,
    pub target: String,
    pub value: u64,
}

#[derive(Serialize, ToSchema)]
pub struct PathSequence {
    pub touchpoints: Vec<String>,
    pub people: u64,
}

/// People at each stage, conversion and drop-off.
#[derive(Serialize, ToSchema)]
pub struct FunnelReport {
    pub people: u64,
    pub stages: Vec<FunnelStage>,
    pub overall_conversion: Option<f64>,
    #[schema(format = DateTime)]
    pub from: Option<String>,
    #[schema(format = DateTime)]
    pub to: Option<String>,
    pub segment: Option<ReportSegment>,
}

#[derive(Serialize, ToSchema)]
pub struct FunnelStage {
    pub stage: String,
    pub people: u64,
    pub conversion_from_previous: Option<f64>,
    pub drop_off: u64,
    pub reached_any_order: u64,
}

/// Conversions credited to touchpoints under four models.
#[derive(Serialize, ToSchema)]
pub struct AttributionReport {
    pub conversions: u64,
    pub window_days: u32,
    pub half_life_days: f64,
    pub touchpoints: Vec<TouchpointCredit>,
    #[schema(format = DateTime)]
    pub from: Option<String>,
    #[schema(format = DateTime)]
    pub to: Option<String>,
    pub segment: Option<ReportSegment>,
}

#[derive(Serialize, ToSchema)]
pub struct TouchpointCredit {
    pub touchpoint: Option<String>,
    pub first_touch: f64,
    pub last_touch: f64,
    pub linear: f64,
    pub time_decay: f64,
}

/// The channel census.
#[derive(Serialize, ToSchema)]
pub struct Census {
    pub needs: Vec<String>,
    pub coverage: Vec<NeedCoverage>,
    pub uncovered_needs: Vec<String>,
    pub touchpoints_without_needs: Vec<String>,
    pub usage: Vec<TouchpointUsage>,
    pub unregistered_channels: Vec<UnregisteredChannel>,
    pub recommendations: Vec<Recommendation>,
    #[schema(format = DateTime)]
    pub from: Option<String>,
    #[schema(format = DateTime)]
    pub to: Option<String>,
    pub segment: Option<ReportSegment>,
}

#[derive(Serialize, ToSchema)]
pub struct NeedCoverage {
    pub need: String,
    pub active: Vec<String>,
    pub planned: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TouchpointUsage {
    pub touchpoint: String,
    pub name: String,
    pub channel: String,
    pub department: String,
    pub status: String,
    pub needs: Vec<String>,
    pub interactions: u64,
    pub share_of_customers: Option<f64>,
    pub trend: Option<f64>,
    pub csat: Option<f64>,
    pub nps: Option<f64>,
    pub first_contact_resolution: Option<f64>,
    pub repeat_contact_rate: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct UnregisteredChannel {
    pub touchpoint: Option<String>,
    pub channel: Option<String>,
    pub channel_unregistered: bool,
    pub interactions: u64,
    pub people: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Recommendation {
    /// `cover`, `invest`, `consolidate`, `improve`, `review` or `declare`.
    pub kind: String,
    pub subject: String,
    pub text: String,
}

/// Events per day (UTC).
#[derive(Serialize, ToSchema)]
pub struct ActivityReport {
    /// `channel` or `touchpoint`.
    pub by: String,
    /// `YYYY-MM-DD`, oldest first.
    pub days: Vec<String>,
    pub series: Vec<ActivitySeries>,
    #[schema(format = DateTime)]
    pub from: Option<String>,
    #[schema(format = DateTime)]
    pub to: Option<String>,
    pub segment: Option<ReportSegment>,
}

#[derive(Serialize, ToSchema)]
pub struct ActivitySeries {
    pub name: String,
    /// One per day.
    pub counts: Vec<u64>,
    pub total: u64,
}

// ---------------------------------------------------------------- engagement

/// The gate's reason for holding or suppressing; or, first on a broadcast's fallback,
/// why that channel was tried (`fallback`: the previous message bounced, failed, was
/// not read in time, or the previous channel was refused).
#[derive(Serialize, ToSchema)]
pub struct Reason {
    /// `no_consent`, `suppressed`, `in_flight`, `frequency_cap`, `quiet_hours`,
    /// `fallback`, ...
    pub code: String,
    pub detail: String,
}

/// `send`, `hold` or `suppress`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Send,
    Hold,
    Suppress,
}

/// What a broadcast decided.
#[derive(Serialize, ToSchema)]
pub struct BroadcastReport {
    pub broadcast: String,
    pub dry_run: bool,
    pub evaluated: u64,
    pub audience: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub reasons: BTreeMap<String, u64>,
    /// A dry run's first people (up to `list_limit`); none when recorded.
    pub decisions: Vec<PersonDecision>,
}

#[derive(Serialize, ToSchema)]
pub struct PersonDecision {
    pub profile_id: String,
    pub channel: String,
    /// With channel `auto`: the channels to try next, in order (absent when none);
    /// with `fallback_after`, tried when a message bounces, fails or goes unread.
    pub fallbacks: Option<Vec<String>>,
    pub outcome: Outcome,
    #[schema(format = DateTime)]
    pub send_at: Option<String>,
    pub reasons: Vec<Reason>,
}

#[derive(Serialize, ToSchema)]
pub struct DecisionPage {
    pub decisions: Vec<StoredDecision>,
    pub next_cursor: Option<String>,
}

/// A recorded decision.
#[derive(Serialize, ToSchema)]
pub struct StoredDecision {
    pub id: i64,
    pub profile_id: String,
    pub message: String,
    pub purpose: String,
    pub channel: String,
    pub journey: Option<String>,
    pub broadcast: Option<String>,
    #[schema(format = DateTime)]
    pub decided_at: String,
    pub outcome: Outcome,
    #[schema(format = DateTime)]
    pub send_at: Option<String>,
    pub reasons: Vec<Reason>,
}

// ---------------------------------------------------------------- journeys

/// A journey as defined (see the `[[journeys]]` configuration).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JourneyDefinition {
    pub name: String,
    /// An event (with a condition) or a segment entry.
    pub trigger: BTreeMap<String, Value>,
    /// Waits, branches, sends, profile updates, notifications.
    pub steps: Vec<BTreeMap<String, Value>>,
    pub exit_when: Option<String>,
    pub goal: Option<BTreeMap<String, Value>>,
    /// Percent held out as a control group (0–50).
    pub control_percent: Option<u8>,
    pub reentry: Option<bool>,
}

/// A journey with its figures.
#[derive(Serialize, ToSchema)]
pub struct JourneyStats {
    pub name: String,
    pub trigger: BTreeMap<String, Value>,
    pub steps: Vec<BTreeMap<String, Value>>,
    pub exit_when: Option<String>,
    pub goal: Option<BTreeMap<String, Value>>,
    pub control_percent: u8,
    pub reentry: bool,
    pub origin: Origin,
    /// The version in force (0 for the config file's, which are not versioned).
    pub version: u32,
    pub status: DefinitionStatus,
    pub entered: u64,
    pub active: u64,
    pub exited: u64,
    pub completed: u64,
    /// Active runs by step name.
    pub in_step: BTreeMap<String, u64>,
    pub treatment: GroupStats,
    pub control: GroupStats,
}

#[derive(Serialize, ToSchema)]
pub struct GroupStats {
    pub entered: u64,
    pub converted: u64,
    pub conversion_rate: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct JourneyList {
    pub journeys: Vec<JourneyStats>,
}

/// What a journey would do now, recording nothing.
#[derive(Serialize, ToSchema)]
pub struct JourneyDryRun {
    pub journey: String,
    pub evaluated: u64,
    pub entered: u64,
    pub control: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub reasons: BTreeMap<String, u64>,
    pub ends: BTreeMap<String, u64>,
    /// The first `list_limit` people's runs.
    pub people: Vec<SimulatedRun>,
}

#[derive(Serialize, ToSchema)]
pub struct SimulatedRun {
    pub profile_id: String,
    pub control: bool,
    pub messages: Vec<SimulatedMessage>,
    /// `completed`, `exited: <why>` or `suppressed at <step>`.
    pub end: String,
}

#[derive(Serialize, ToSchema)]
pub struct SimulatedMessage {
    pub step: String,
    pub message: String,
    pub channel: String,
    pub outcome: Outcome,
    #[schema(format = DateTime)]
    pub send_at: Option<String>,
    pub reasons: Vec<Reason>,
}

#[derive(Serialize, ToSchema)]
pub struct JourneyRunPage {
    pub runs: Vec<JourneyRun>,
    /// A run's `key`, to give as `cursor`.
    pub next_cursor: Option<String>,
}

/// One person's run through a journey.
#[derive(Serialize, ToSchema)]
pub struct JourneyRun {
    pub key: String,
    pub journey: String,
    pub profile_id: String,
    #[schema(format = DateTime)]
    pub entered_at: String,
    pub control: bool,
    /// `active`, `exited` or `completed`.
    pub status: String,
    pub step: u64,
    #[schema(format = DateTime)]
    pub wake_at: Option<String>,
    pub waiting_for: Option<String>,
    pub blocked: bool,
    pub watching: Option<String>,
    pub fallbacks: Vec<String>,
    pub exit_reason: Option<String>,
    #[schema(format = DateTime)]
    pub converted_at: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The journey's version the run follows (0: whichever is in force).
    pub version: u32,
}

// ---------------------------------------------------------------- messages

/// A message: one template per channel (see the `[[messages]]` configuration).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageDefinition {
    pub id: String,
    pub description: Option<String>,
    /// `subject`, `html` and/or `text` templates.
    pub email: Option<BTreeMap<String, Value>>,
    pub sms: Option<BTreeMap<String, Value>>,
    pub whatsapp: Option<BTreeMap<String, Value>>,
    pub push: Option<BTreeMap<String, Value>>,
    pub call_task: Option<BTreeMap<String, Value>>,
}

/// A message with its channels and where it is defined.
#[derive(Serialize, ToSchema)]
pub struct MessageEntry {
    pub id: String,
    pub description: Option<String>,
    pub email: Option<BTreeMap<String, Value>>,
    pub sms: Option<BTreeMap<String, Value>>,
    pub whatsapp: Option<BTreeMap<String, Value>>,
    pub push: Option<BTreeMap<String, Value>>,
    pub call_task: Option<BTreeMap<String, Value>>,
    pub channels: Vec<String>,
    pub origin: Origin,
    /// The version in force (0 for the config file's, which are not versioned).
    pub version: u32,
    pub status: DefinitionStatus,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageEntry>,
}

/// The message rendered for one person.
#[derive(Serialize, ToSchema)]
pub struct MessagePreview {
    pub message: String,
    pub profile_id: String,
    pub renderings: Vec<Rendering>,
}

/// One channel's rendering, or why it cannot be rendered for this person.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Rendering {
    Email(EmailRendering),
    Sms(SmsRendering),
    Whatsapp(WhatsappRendering),
    Push(PushRendering),
    CallTask(CallTaskRendering),
    Failed(RenderingError),
}

#[derive(Serialize, ToSchema)]
pub struct EmailRendering {
    /// `email`.
    pub channel: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub list_unsubscribe: String,
    pub list_unsubscribe_post: String,
}

#[derive(Serialize, ToSchema)]
pub struct SmsRendering {
    /// `sms`.
    pub channel: String,
    pub text: String,
    /// `gsm7` or `ucs2`.
    pub encoding: String,
    pub characters: u64,
    pub segments: u64,
}

#[derive(Serialize, ToSchema)]
pub struct WhatsappRendering {
    /// `whatsapp`.
    pub channel: String,
    pub text: String,
    pub buttons: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PushRendering {
    /// `push`.
    pub channel: String,
    pub title: String,
    pub body: String,
}

#[derive(Serialize, ToSchema)]
pub struct CallTaskRendering {
    /// `call_task`.
    pub channel: String,
    pub summary: String,
}

#[derive(Serialize, ToSchema)]
pub struct RenderingError {
    pub channel: String,
    pub error: String,
}

// ---------------------------------------------------------------- outbox

#[derive(Serialize, ToSchema)]
pub struct OutboxPage {
    pub entries: Vec<OutboxEntry>,
    /// The last entry's id, to give as `after`.
    pub next_after: Option<i64>,
}

/// One message to deliver on one channel.
#[derive(Serialize, ToSchema)]
pub struct OutboxEntry {
    pub id: i64,
    pub decision_id: i64,
    pub profile_id: String,
    pub channel: String,
    pub message: String,
    pub purpose: String,
    pub journey: Option<String>,
    pub broadcast: Option<String>,
    #[schema(format = DateTime)]
    pub send_at: String,
    #[schema(format = DateTime)]
    pub first_due: String,
    /// The decision's reasons (for an insight: what raised it).
    pub reasons: Value,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub provider_message_id: Option<String>,
    /// What the provider reported (`delivered`, `read`, `failed`).
    pub delivery: Option<String>,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    Pending,
    Sending,
    Sent,
    Dead,
    Cancelled,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxSummary {
    pub counts: Vec<OutboxCount>,
    pub lanes: Vec<Lane>,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxCount {
    pub channel: String,
    pub status: OutboxStatus,
    pub entries: u64,
}

/// A provider lane: its pace and, since start, its counts.
#[derive(Serialize, ToSchema)]
pub struct Lane {
    pub channel: String,
    /// `smtp`, `twilio`, `whatsapp`, `webhook` or `digest`.
    pub provider: String,
    pub per_second: f64,
    pub concurrency: u64,
    pub sent: u64,
    pub retried: u64,
    pub dead: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Requeued {
    pub id: i64,
    pub status: OutboxStatus,
}

// ---------------------------------------------------------------- subscriptions, segments

/// A department subscription: `when` (an expression over the event and the person)
/// or `segment` (entering it), sent to a `webhook` or a `digest` address.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionDefinition {
    pub name: String,
    pub department: String,
    pub description: Option<String>,
    pub when: Option<String>,
    pub segment: Option<String>,
    pub webhook: Option<String>,
    pub digest: Option<String>,
    /// The digest's period (`1h`, `1d`, `1w`); 1d by default.
    pub every: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionEntry {
    pub name: String,
    pub department: String,
    pub description: Option<String>,
    pub when: Option<String>,
    pub segment: Option<String>,
    pub webhook: Option<String>,
    pub digest: Option<String>,
    pub every: Option<String>,
    pub origin: Origin,
    /// The version in force (0 for the config file's, which are not versioned).
    pub version: u32,
    pub status: DefinitionStatus,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    pub subscriptions: Vec<SubscriptionEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct Named {
    pub name: String,
}

/// A segment to define.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentDefinition {
    pub name: String,
    /// An audience expression (CEL over traits, computed traits, stage, cases,
    /// consents).
    pub expression: String,
    pub description: Option<String>,
}

/// A segment with its size.
#[derive(Serialize, ToSchema)]
pub struct SegmentInfo {
    pub name: String,
    pub expression: String,
    pub description: Option<String>,
    pub origin: Origin,
    /// The version in force (0 for the config file's, which are not versioned).
    pub version: u32,
    pub status: DefinitionStatus,
    pub size: u64,
    /// Profiles the expression could not be evaluated for (counted as outside).
    pub errors: u64,
    pub last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SegmentList {
    pub segments: Vec<SegmentInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct SegmentMembers {
    pub segment: String,
    /// Profile ids, in profile order.
    pub members: Vec<String>,
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------- session

/// `{"key": "<API key>"}`.
#[derive(Serialize, ToSchema)]
pub struct SignIn {
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    pub signed_in: bool,
    /// How long the session lasts.
    pub hours: i64,
    /// The key's name.
    pub name: String,
    pub role: Role,
}
