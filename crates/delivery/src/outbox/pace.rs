//! One provider's pace: a token bucket for its rate limit, which a provider's "too
//! many requests" pauses for the whole lane.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `per_second` tokens a second, up to one second's worth saved.
pub struct Pacer {
    per_second: f64,
    state: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    paused_until: Option<Instant>,
}

impl Pacer {
    /// A bucket for `per_second` messages a second (no limit unless positive), starting
    /// with a second's worth.
    pub fn new(per_second: f64) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            f64::MAX
        };
        Pacer {
            per_second,
            state: Mutex::new(Bucket {
                tokens: per_second.clamp(1.0, 1e9),
                at: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                match b.paused_until {
                    Some(until) if until > now => Some(until - now),
                    _ => {
                        let refill = now.duration_since(b.at).as_secs_f64() * self.per_second;
                        b.tokens = (b.tokens + refill).min(self.per_second.clamp(1.0, 1e9));
                        b.at = now;
                        if b.tokens >= 1.0 {
                            b.tokens -= 1.0;
                            None
                        } else {
                            Some(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
                        }
                    }
                }
            };
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Sends nothing for `pause` (the provider asked us to slow down).
    pub fn pause(&self, pause: Duration) {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + pause;
        b.paused_until = Some(b.paused_until.map_or(until, |u| u.max(until)));
        b.tokens = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_holds_after_the_first_seconds_burst() {
        let pacer = Pacer::new(10.0);
        let start = Instant::now();
        for _ in 0..30 {
            pacer.acquire().await;
        }
        // 10 saved up, then 20 more at 10 a second.
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..2.2).contains(&took), "took {took}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_everything_back() {
        let pacer = Pacer::new(1000.0);
        pacer.pause(Duration::from_secs(5));
        let start = Instant::now();
        pacer.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(5));
    }
}
