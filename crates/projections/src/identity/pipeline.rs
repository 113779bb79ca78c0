//! The work around applying events that is done off the projection's thread.
//!
//! Applying is one thread's work: the graph and the profile states change in log order.
//! Extracting an event's identifiers and freeing its JSON tree cost about half as much
//! again, and neither needs that order: identifiers are extracted before the events reach
//! that thread (on the helper's thread for the intake's pushes, with the read for a page
//! of the log), and applied events are freed on the helper's thread. A projection
//! catching up then keeps both cores busy, and one that follows ingestion leaves its
//! thread to applying.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;

use unavoce_core::Event;
use unavoce_core::identity::{IdentifierSet, IdentityRules, extract};
use unavoce_core::redact::Redacted;
use unavoce_store::{EventLog, EventQuery, StoreError};

/// Events read from the log per page.
pub(super) const PAGE: usize = 5_000;

/// Batches of applied events waiting to be freed; past that they are freed where
/// they were applied.
const DISPOSALS_QUEUED: usize = 16;

/// An event with the identifiers extracted from it ahead of applying.
pub(super) struct Prepared {
    pub event: Event,
    identifiers: IdentifierSet,
    /// The rules they were extracted under.
    rules: Arc<IdentityRules>,
}

impl Prepared {
    /// Extracts `event`'s identifiers under `rules`.
    pub fn new(event: Event, rules: &Arc<IdentityRules>) -> Self {
        Prepared {
            identifiers: extract(&event, rules),
            event,
            rules: rules.clone(),
        }
    }

    /// The event's identifiers under `rules`: those extracted ahead, unless the rules
    /// in force changed since (a configuration reloaded), then extracted again.
    pub fn identifiers(&self, rules: &Arc<IdentityRules>) -> Cow<'_, IdentifierSet> {
        if Arc::ptr_eq(&self.rules, rules) {
            Cow::Borrowed(&self.identifiers)
        } else {
            Cow::Owned(extract(&self.event, rules))
        }
    }
}

/// Prepares events under `rules`, keeping their log positions.
pub(super) fn prepare(
    events: Vec<(i64, Event)>,
    rules: &Arc<IdentityRules>,
) -> Vec<(i64, Prepared)> {
    events
        .into_iter()
        .map(|(seq, event)| (seq, Prepared::new(event, rules)))
        .collect()
}

/// A page of the log being read, its events parsed and prepared, on the runtime while
/// the caller applies the previous one.
pub(super) struct PageRead(tokio::task::JoinHandle<Result<Vec<(i64, Prepared)>, StoreError>>);

/// Starts reading the page of events after log position `after`, prepared under `rules`.
pub(super) fn read_page(
    log: &Arc<dyn EventLog>,
    after: i64,
    rules: Arc<IdentityRules>,
) -> PageRead {
    let log = log.clone();
    PageRead(tokio::spawn(async move {
        let page = log
            .events(EventQuery {
                after_seq: Some(after),
                limit: PAGE,
                ..Default::default()
            })
            .await?;
        let events = page.events.into_iter().map(|e| (e.seq, e.event)).collect();
        // Extraction is CPU work: off the runtime's workers' async duties.
        tokio::task::spawn_blocking(move || prepare(events, &rules))
            .await
            .map_err(|e| StoreError::Storage(format!("preparing a page of the log stopped: {e}")))
    }))
}

impl PageRead {
    /// The page, once read.
    pub async fn page(self) -> Result<Vec<(i64, Prepared)>, StoreError> {
        self.0
            .await
            .map_err(|e| StoreError::Storage(format!("reading the log stopped: {e}")))?
    }
}

/// A thread of its own for the work around applying: preparing pushed events and
/// freeing applied ones. It keeps the normal priority: at the projection's lower one it
/// was starved under load, and the projection waited for its events (measured in
/// BENCHMARKS.md, ingestion).
pub(super) struct Helper {
    jobs: Option<Sender<Job>>,
    /// Frees asked for and not yet done.
    disposals: Arc<AtomicUsize>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Helper {
    /// Starts the thread; without one (it could not be started), the work is done in
    /// place.
    pub fn start() -> Self {
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("identity-helper".into())
            .spawn(move || {
                // Ends when the projection, holding the sender, is dropped.
                for job in receiver {
                    job();
                }
            });
        let jobs = match started {
            Ok(_) => Some(sender),
            Err(e) => {
                tracing::warn!(error = %Redacted(&e), "no helper thread for the identity projection; its work is done in place");
                None
            }
        };
        Helper {
            jobs,
            disposals: Arc::default(),
        }
    }

    /// Runs `job` on the helper thread, or here when there is none.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(job);
        match &self.jobs {
            Some(jobs) => {
                if let Err(returned) = jobs.send(job) {
                    (returned.0)();
                }
            }
            None => job(),
        }
    }

    /// Waits until the work given so far is done.
    pub fn wait_idle(&self) {
        let (done, idle) = std::sync::mpsc::channel();
        self.run(move || {
            let _ = done.send(());
        });
        let _ = idle.recv();
    }

    /// Frees `garbage` on the helper thread, or here when it is behind (so what waits to
    /// be freed stays bounded).
    pub fn dispose<T: Send + 'static>(&self, garbage: T) {
        if self.disposals.fetch_add(1, Ordering::AcqRel) >= DISPOSALS_QUEUED {
            self.disposals.fetch_sub(1, Ordering::AcqRel);
            return; // freed here
        }
        let disposals = self.disposals.clone();
        self.run(move || {
            drop(garbage);
            disposals.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use unavoce_core::identity::IdentityConfig;
    use unavoce_core::segment::{IntakeContext, normalise};

    use super::*;

    fn event() -> Event {
        let message = serde_json::json!({"type": "identify", "userId": "u-1",
            "traits": {"email": "Ada@Example.com", "phone": "+39 347 123 4567"}});
        normalise(
            message.as_object().cloned().unwrap_or_default(),
            &IntakeContext::new(jiff::Timestamp::UNIX_EPOCH, "test"),
            || "m-1".into(),
        )
        .expect("a valid message")
    }

    #[test]
    fn identifiers_prepared_ahead_are_those_of_the_rules_in_force() {
        let before = IdentityRules::default_rules();
        let prepared = Prepared::new(event(), &before);
        let ahead = prepared.identifiers(&before);
        assert!(matches!(ahead, Cow::Borrowed(_)));
        assert_eq!(*ahead, extract(&prepared.event, &before));
        assert!(ahead.keys.len() >= 3, "{ahead:?}");

        // A reload that no longer reads phone numbers: extracted again, under the new rules.
        let mut config = IdentityConfig::default();
        config.types.retain(|rule| rule.name != "phone");
        let reloaded = IdentityRules::new(config).expect("valid rules");
        let now = prepared.identifiers(&reloaded);
        assert!(matches!(now, Cow::Owned(_)));
        assert_eq!(*now, extract(&prepared.event, &reloaded));
        assert_eq!(now.keys.len() + 1, ahead.keys.len());
    }

    /// Says, when dropped, whether on the helper's thread.
    struct Freed(mpsc::Sender<bool>);

    impl Drop for Freed {
        fn drop(&mut self) {
            let on_helper = std::thread::current().name() == Some("identity-helper");
            let _ = self.0.send(on_helper);
        }
    }

    #[test]
    fn the_helper_runs_its_work_in_order_on_its_own_thread() {
        let helper = Helper::start();
        let (sender, receiver) = mpsc::channel();
        for i in 0..100 {
            let sender = sender.clone();
            helper.run(move || {
                let name = std::thread::current().name().map(String::from);
                let _ = sender.send((i, name));
            });
        }
        drop(sender);
        let done: Vec<(i32, Option<String>)> = receiver.iter().collect();
        assert_eq!(
            done.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
        assert!(
            done.iter()
                .all(|(_, name)| name.as_deref() == Some("identity-helper"))
        );
    }

    #[test]
    fn what_the_helper_is_given_to_free_is_freed_there_or_here_when_it_is_behind() {
        let helper = Helper::start();
        let (sender, receiver) = mpsc::channel();
        for _ in 0..1_000 {
            helper.dispose(Freed(sender.clone()));
        }
        drop(sender);
        let freed: Vec<bool> = receiver.iter().collect();
        assert_eq!(freed.len(), 1_000);
        assert!(freed.iter().any(|on_helper| *on_helper));
    }
}
