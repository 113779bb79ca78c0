//! Leases: work that exactly one process does at a time among those sharing a store (a
//! journey runner, an outbox lane, the segment maintainer…), taken over by another when
//! its holder dies.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::log::StoreError;

/// A lease this process holds on one piece of work. Dropping it gives the work up.
pub struct Lease {
    work: String,
    lost: watch::Receiver<bool>,
    /// Gives the lease up (in the store, and in this process's list).
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl Lease {
    /// A lease on `work`, lost when `lost` turns true; `release` gives it up.
    pub fn new(
        work: &str,
        lost: watch::Receiver<bool>,
        release: Box<dyn FnOnce() + Send>,
    ) -> Lease {
        Lease {
            work: work.to_string(),
            lost,
            release: Some(release),
        }
    }

    /// The work it is for.
    pub fn work(&self) -> &str {
        &self.work
    }

    /// Resolves when the lease is no longer held (its holder lost the store): the work
    /// must stop at once, another process may already be doing it.
    pub async fn lost(&mut self) {
        while !*self.lost.borrow_and_update() {
            if self.lost.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether it is lost already.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("work", &self.work)
            .field("lost", &self.is_lost())
            .finish()
    }
}

/// The leases of a store.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// Takes the lease on `work` if no process (this one included) holds it; `None`
    /// when one does. Never waits for it.
    async fn try_lease(&self, work: &str) -> Result<Option<Lease>, StoreError>;
}

/// The work this process holds leases on: a second lease on the same work is refused
/// in-process, whatever the store's own lock allows its holder.
#[derive(Clone, Default)]
pub struct HeldHere(Arc<Mutex<HashSet<String>>>);

impl HeldHere {
    /// Notes `work` as held here; false if it already was.
    pub fn take(&self, work: &str) -> bool {
        self.0
            .lock()
            .map(|mut held| held.insert(work.to_string()))
            .unwrap_or(false)
    }

    /// Notes `work` as no longer held here.
    pub fn give_up(&self, work: &str) {
        if let Ok(mut held) = self.0.lock() {
            held.remove(work);
        }
    }
}
