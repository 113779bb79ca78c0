//! When to try again: exponential back-off with "equal jitter" — half the delay is
//! fixed, half random — so retries after an outage spread out instead of arriving
//! together.

use jiff::SignedDuration;

use crate::config::RetryPolicy;

/// The wait before attempt `attempts + 1`, after `attempts` failed ones (≥ 1);
/// `jitter` is uniform in [0, 1).
pub fn retry_delay(policy: &RetryPolicy, attempts: u32, jitter: f64) -> SignedDuration {
    let first = policy.first_delay.as_secs_f64();
    let ceiling = policy.max_delay.as_secs_f64();
    let doublings = attempts.saturating_sub(1).min(62);
    let full = (first * 2f64.powi(doublings as i32)).min(ceiling);
    let jitter = jitter.clamp(0.0, 1.0);
    SignedDuration::from_secs_f64(full / 2.0 + full / 2.0 * jitter)
}

/// A uniform number in [0, 1) from the operating system.
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            first_delay: SignedDuration::from_secs(30),
            max_delay: SignedDuration::from_secs(3600),
            expire_after: SignedDuration::from_hours(48),
        }
    }

    #[test]
    fn delays_double_up_to_the_ceiling_with_half_of_each_random() {
        let p = policy();
        assert_eq!(retry_delay(&p, 1, 0.0), SignedDuration::from_secs(15));
        assert_eq!(retry_delay(&p, 1, 0.999_999).as_secs(), 29);
        assert_eq!(retry_delay(&p, 2, 0.0), SignedDuration::from_secs(30));
        assert_eq!(retry_delay(&p, 3, 0.0), SignedDuration::from_secs(60));
        assert_eq!(retry_delay(&p, 4, 0.5), SignedDuration::from_secs(180));
        assert_eq!(retry_delay(&p, 30, 0.0), SignedDuration::from_secs(1800));
        assert_eq!(retry_delay(&p, 30, 1.0), SignedDuration::from_secs(3600));
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let draws: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(draws.iter().any(|j| (j - draws[0]).abs() > 1e-9));
    }
}
