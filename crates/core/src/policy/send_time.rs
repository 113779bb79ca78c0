//! Send-time optimisation: the hour, within the next day, at which the person usually
//! engages, outside quiet hours.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::{OutgoingMessage, Policies, quiet_until};
use crate::profile::engagement::hour_of_week;

/// How many of the person's own engagements the population's habits weigh as, so a
/// person with little history follows everyone's pattern and one with a long history
/// their own.
const PRIOR_WEIGHT: f64 = 5.0;

/// The best moment in the 24 hours from `now` to send `message`: each hour is scored by
/// the person's engagements in that hour of the week (`person`, UTC hour-of-week counts
/// as `ChannelEngagement::hour_of_week` keeps them) plus the population's share of that
/// hour (`population`) weighted as [`PRIOR_WEIGHT`] engagements; hours inside quiet
/// hours in the person's time zone are skipped. The earliest of equal hours wins, so
/// with no information at all the message goes now.
pub fn best_send_time(
    policies: &Policies,
    message: &OutgoingMessage,
    zone: &TimeZone,
    person: &[u32],
    population: &[u32],
    now: Timestamp,
) -> Timestamp {
    let total: f64 = population.iter().map(|&n| f64::from(n)).sum();
    let score = |at: Timestamp| {
        let how = hour_of_week(at);
        let own = person.get(how).copied().map_or(0.0, f64::from);
        let share = if total > 0.0 {
            population.get(how).copied().map_or(0.0, f64::from) / total
        } else {
            1.0 / 168.0
        };
        own + PRIOR_WEIGHT * share
    };
    let hour_start = |at: Timestamp| {
        let micros = at.as_microsecond();
        Timestamp::from_microsecond(micros - micros.rem_euclid(3_600_000_000)).unwrap_or(at)
    };
    let mut best: Option<(f64, Timestamp)> = None;
    for h in 0..24 {
        let at = if h == 0 {
            now
        } else {
            hour_start(now) + SignedDuration::from_hours(h)
        };
        if quiet_until(policies, message, zone, at).is_some() {
            continue;
        }
        let s = score(at);
        if best.is_none_or(|(b, _)| s > b + 1e-12) {
            best = Some((s, at));
        }
    }
    best.map_or(now, |(_, at)| at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyConfig;

    fn message() -> OutgoingMessage {
        OutgoingMessage {
            message: "m".into(),
            purpose: "promotional".into(),
            channel: "email".into(),
            journey: None,
            not_before: None,
        }
    }

    fn hist(entries: &[(Timestamp, u32)]) -> Vec<u32> {
        let mut h = vec![0; 168];
        for (at, n) in entries {
            h[hour_of_week(*at)] += n;
        }
        h
    }

    #[test]
    fn a_person_is_reached_at_their_own_hour_outside_quiet_hours() {
        let p = Policies::new(&PolicyConfig::default()).unwrap();
        let rome = TimeZone::get("Europe/Rome").unwrap();
        let now: Timestamp = "2025-03-05T09:10:00Z".parse().unwrap(); // Wednesday 10:10 in Rome
        // She reads her mail on Wednesdays at 18:00 Rome (17:00 UTC).
        let person = hist(&[("2025-02-26T17:20:00Z".parse().unwrap(), 6)]);
        let at = best_send_time(&p, &message(), &rome, &person, &[], now);
        assert_eq!(at, "2025-03-05T17:00:00Z".parse().unwrap());
        // At 23:00 Rome (22:00 UTC) she would be in quiet hours: the best allowed hour wins.
        let night_owl = hist(&[
            ("2025-02-26T22:20:00Z".parse().unwrap(), 9),
            ("2025-02-26T12:20:00Z".parse().unwrap(), 2),
        ]);
        let at = best_send_time(&p, &message(), &rome, &night_owl, &[], now);
        assert_eq!(at, "2025-03-05T12:00:00Z".parse().unwrap());
    }

    #[test]
    fn without_history_the_population_decides_and_without_either_it_goes_now() {
        let p = Policies::new(&PolicyConfig::default()).unwrap();
        let rome = TimeZone::get("Europe/Rome").unwrap();
        let now: Timestamp = "2025-03-05T09:10:00Z".parse().unwrap();
        let population = hist(&[("2025-02-26T11:05:00Z".parse().unwrap(), 1_000)]);
        let at = best_send_time(&p, &message(), &rome, &[], &population, now);
        assert_eq!(at, "2025-03-05T11:00:00Z".parse().unwrap());
        assert_eq!(best_send_time(&p, &message(), &rome, &[], &[], now), now);
    }
}
