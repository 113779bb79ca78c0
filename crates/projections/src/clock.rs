//! Where the time comes from: the system's clock, or one a test moves by hand (so that
//! what happens as time passes — a case open for more than 48 hours — is tested without
//! waiting and without back-dated events).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

/// A clock: the time now, and waiting until a time.
pub trait Clock: Send + Sync + 'static {
    /// The time now.
    fn now(&self) -> Timestamp;

    /// Waits until `at` by this clock.
    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = Timestamp::now().duration_until(at);
        let wait = std::time::Duration::try_from(wait).unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that stands still until moved, for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now: tokio::sync::watch::Sender<Timestamp>,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: Timestamp) -> Arc<Self> {
        Arc::new(ManualClock {
            now: tokio::sync::watch::Sender::new(at),
        })
    }

    /// Moves the clock on by `by`; whoever waits for a time now passed wakes.
    pub fn advance(&self, by: SignedDuration) {
        self.now
            .send_modify(|now| *now = now.saturating_add(by).unwrap_or(*now));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock, which outlives its sleepers.
            let _ = now.wait_for(|now| *now >= at).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_when_moved_past_their_time() {
        let start: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        let hour = SignedDuration::from_hours(1);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(start + hour * 2).await })
        };
        clock.advance(hour);
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "an hour early");
        clock.advance(hour);
        sleeper.await.unwrap();
        assert_eq!(clock.now(), start + hour * 2);
    }
}
