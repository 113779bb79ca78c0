//! Journey runs: where each person is in each journey, kept durable so that after a
//! restart every waiting person resumes at the right step at the right time.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use unavoce_core::identity::ProfileId;

use crate::decisions::NewDecision;
use crate::log::StoreError;

/// Where a person's run through a journey is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Under way: at a step, waiting or about to move.
    Active,
    /// Left early: the exit condition held, or a branch said `exit`.
    Exited,
    /// Went through every step.
    Completed,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 3] = [RunStatus::Active, RunStatus::Exited, RunStatus::Completed];

    /// The status as the runs are stored and the API shows it: `active`, `exited`,
    /// `completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Active => "active",
            RunStatus::Exited => "exited",
            RunStatus::Completed => "completed",
        }
    }

    /// The status `text` spells, if any (exactly, as [`RunStatus::as_str`] does).
    pub fn parse(text: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One person's run through a journey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JourneyRun {
    /// `journey:profile:log position of the trigger`: stable and unique, so a trigger
    /// seen twice starts one run. (A broadcast's fallback chain for one person is kept
    /// as a run too: key `broadcast:<id>:<profile>`, journey `broadcast:<id>`.)
    pub key: String,
    pub journey: String,
    pub profile_id: ProfileId,
    pub entered_at: Timestamp,
    /// In the control group: same steps, never contacted.
    pub control: bool,
    /// Active, exited or completed.
    pub status: RunStatus,
    pub step: usize,
    pub wake_at: Option<Timestamp>,
    pub waiting_for: Option<String>,
    /// At a send step the gate suppressed: decided again at the person's next event.
    pub blocked: bool,
    /// At a send step whose message went out on this channel: watched for delivery
    /// until `wake_at`, then the next of `fallbacks` is tried.
    pub watching: Option<String>,
    /// The channels still to fall back to, best first.
    pub fallbacks: Vec<String>,
    pub exit_reason: Option<String>,
    pub converted_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// The version of its journey it follows: the one it started on, or moved to when
    /// the journey was revised (0: whichever version is in force, as for the config
    /// file's journeys).
    pub version: u32,
}

/// Which runs to read.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    pub journey: Option<String>,
    pub profile_id: Option<ProfileId>,
    pub active_only: bool,
    /// Runs with a key after this one.
    pub after: Option<String>,
    pub limit: usize,
}

/// How many runs of a journey are in one state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCount {
    pub status: RunStatus,
    pub step: usize,
    pub control: bool,
    pub converted: bool,
    /// The journey's version the runs follow (step numbers are that version's).
    pub version: u32,
    pub runs: u64,
}

/// The durable journey runs.
#[async_trait]
pub trait JourneyStore: Send + Sync + 'static {
    /// Saves runs (new, or replacing the run with the same key) and the decisions taken
    /// for them (with their outbox entries), in one transaction.
    async fn save_runs(
        &self,
        runs: Vec<JourneyRun>,
        decisions: Vec<NewDecision>,
    ) -> Result<(), StoreError>;

    /// Reads runs in key order.
    async fn runs(&self, query: RunQuery) -> Result<Vec<JourneyRun>, StoreError>;

    /// Counts a journey's runs by status, step, group and conversion.
    async fn run_counts(&self, journey: &str) -> Result<Vec<RunCount>, StoreError>;
}
