//! The outbox: each message the gate decided to send, one row per message and channel,
//! from its decision until a provider accepted it or it was given up (dead letter).

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use unavoce_core::identity::ProfileId;

use crate::log::StoreError;

/// Where an outbox entry is, from its decision until it was sent or given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    /// Waiting until it is due (again, after a failed attempt).
    Pending,
    /// An attempt is under way (claimed by a lane).
    Sending,
    /// A provider accepted it.
    Sent,
    /// Given up: a dead letter, which can be requeued.
    Dead,
    /// No longer to be sent (e.g. consent withdrawn since).
    Cancelled,
}

impl OutboxStatus {
    /// Every status, in the order an entry goes through them.
    pub const ALL: [OutboxStatus; 5] = [
        OutboxStatus::Pending,
        OutboxStatus::Sending,
        OutboxStatus::Sent,
        OutboxStatus::Dead,
        OutboxStatus::Cancelled,
    ];

    /// The status as the outbox stores and the API shows it: `pending`, `sending`,
    /// `sent`, `dead`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Dead => "dead",
            OutboxStatus::Cancelled => "cancelled",
        }
    }

    /// The status `text` spells, if any (exactly, as [`OutboxStatus::as_str`] does).
    pub fn parse(text: &str) -> Option<OutboxStatus> {
        OutboxStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message to deliver on one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxEntry {
    pub id: i64,
    pub decision_id: i64,
    pub profile_id: ProfileId,
    pub channel: String,
    pub message: String,
    pub purpose: String,
    pub journey: Option<String>,
    pub broadcast: Option<String>,
    /// When it is due: the decision's send time, or the next attempt's.
    pub send_at: Timestamp,
    /// When the decision first made it due (what its age is counted from).
    pub first_due: Timestamp,
    /// The decision's reasons (for an insight: what raised it).
    pub reasons: serde_json::Value,
    /// Where it is: pending, sending, sent, dead or cancelled.
    pub status: OutboxStatus,
    /// Attempts started.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The provider's id for it (an SMTP `Message-ID`, a Twilio `sid`, a WhatsApp `wamid`).
    pub provider_message_id: Option<String>,
    /// What the provider reported after accepting it (`delivered`, `read`, `failed`).
    pub delivery: Option<String>,
    pub updated_at: Option<Timestamp>,
}

impl OutboxEntry {
    /// The key every attempt to send this message on this channel carries, so a
    /// provider (or receiver) that sees it twice can tell.
    pub fn idempotency_key(&self) -> String {
        format!("unavoce-{}-{}", self.decision_id, self.channel)
    }
}

/// What became of an attempt, or what a provider reported later.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// The provider accepted it.
    Sent {
        id: i64,
        provider_message_id: Option<String>,
        at: Timestamp,
    },
    /// It failed for now; try again at `retry_at`.
    Retry {
        id: i64,
        retry_at: Timestamp,
        error: String,
        at: Timestamp,
    },
    /// Given up: it stays as a dead letter until requeued.
    Dead {
        id: i64,
        error: String,
        at: Timestamp,
    },
    /// Claimed but not attempted (the worker stopped first): back to pending, the
    /// claim's attempt not counted.
    Released { id: i64 },
    /// No longer to be sent.
    Cancelled {
        id: i64,
        reason: String,
        at: Timestamp,
    },
    /// The provider's later report on a sent message.
    Reported {
        id: i64,
        delivery: String,
        error: Option<String>,
        at: Timestamp,
    },
}

/// A provider's report on a message it knows by an id no entry holds yet: the report
/// came before the attempt that sent the message was settled. It waits, durably, for
/// that settlement ([`Outbox::take_early_reports`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyReport {
    pub provider_message_id: String,
    /// What the provider reported (`delivered`, `read`, `failed`).
    pub delivery: String,
    pub error: Option<String>,
    pub received_at: Timestamp,
}

/// How long an early report waits for its message before it is forgotten: a provider
/// also reports on messages another tool sent through the same account.
pub const EARLY_REPORTS_KEPT_FOR: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 7);

/// Which outbox entries to read.
#[derive(Debug, Clone, Default)]
pub struct OutboxQuery {
    pub status: Option<OutboxStatus>,
    pub channel: Option<String>,
    pub broadcast: Option<String>,
    /// Entries for any of these profiles; all when empty.
    pub profile_ids: Vec<ProfileId>,
    pub after_id: Option<i64>,
    pub limit: usize,
}

/// How many entries are in one state on one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxCount {
    pub channel: String,
    pub status: OutboxStatus,
    pub entries: u64,
}

/// The durable outbox. Entries are added with their decisions ([`crate::DecisionLog`]).
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Takes up to `limit` entries of `channel` that are pending and due at `now`,
    /// oldest due first: each becomes `sending` with one more attempt, durably, before
    /// it is returned.
    async fn claim(
        &self,
        channel: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Records what became of attempts (and providers' reports), atomically.
    async fn settle(&self, settlements: Vec<Settlement>) -> Result<(), StoreError>;

    /// When a lane is taken up (at start, or from a node that died): its entries left
    /// `sending` go back to `pending`, to be attempted again under the same idempotency
    /// key. Returns how many.
    async fn resume_in_flight(&self, channel: &str) -> Result<u64, StoreError>;

    /// Puts a dead letter back in line, due at `at`; false if `id` is not a dead letter.
    async fn requeue(&self, id: i64, at: Timestamp) -> Result<bool, StoreError>;

    /// Reads entries, oldest first.
    async fn outbox(&self, query: OutboxQuery) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Keeps a report whose message no entry holds yet (forgetting those older than
    /// [`EARLY_REPORTS_KEPT_FOR`]).
    async fn park_report(&self, report: EarlyReport) -> Result<(), StoreError>;

    /// Takes (removes and returns, oldest first) the early reports on any of these
    /// provider ids; each is returned to one caller only.
    async fn take_early_reports(
        &self,
        provider_message_ids: Vec<String>,
    ) -> Result<Vec<EarlyReport>, StoreError>;

    /// The provider ids of kept early reports whose message an entry now holds (what a
    /// failure left behind, to take in at the next start).
    async fn early_reports_due(&self) -> Result<Vec<String>, StoreError>;

    /// The entry a provider knows by `provider_message_id`.
    async fn outbox_by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<OutboxEntry>, StoreError>;

    /// One entry.
    async fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>, StoreError>;

    /// Entries by channel and status.
    async fn outbox_counts(&self) -> Result<Vec<OutboxCount>, StoreError>;

    /// When the next pending entry of `channel` is due, if any.
    async fn next_due(&self, channel: &str) -> Result<Option<Timestamp>, StoreError>;
}
