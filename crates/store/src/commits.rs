//! What each commit of a store's writer did, for metrics: the same for every store.

use std::sync::Arc;
use std::time::Duration;

/// What one commit did, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct CommitInfo {
    /// Time spent writing and committing the group.
    pub duration: Duration,
    /// Requests answered by this commit.
    pub requests: usize,
    /// Rows written (events, duplicates and quarantine entries), or indexed.
    pub rows: usize,
    /// What was committed.
    pub kind: CommitKind,
}

/// What a commit of the writer was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitKind {
    /// A group of requests, answered after it.
    Group,
    /// A chunk of events indexed by identifier, which no request waits for (SQLite).
    Index,
}

/// Called after every commit.
pub type CommitObserver = Arc<dyn Fn(CommitInfo) + Send + Sync>;
