//! An instant as the event log keeps it: microseconds since the epoch, in 8 bytes, and 8
//! as an option too.
//!
//! The log stores an event's time to the microsecond, so a state rebuilt from it never
//! holds a finer one; a profile's state keeps its times this way (a `Timestamp` takes 16
//! bytes, 24 as an option), millions of people over.

use std::fmt;
use std::num::NonZeroU64;

use jiff::Timestamp;
use serde::de::Error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant to the microsecond. Ordered as time; shown and written in human-readable
/// formats as a timestamp (`2025-03-01T09:30:00Z`), in binary ones as the count.
///
/// Held as the count with its sign bit flipped, unsigned: ordered as the count, and
/// never zero (the count would be `i64::MIN`, far outside a timestamp's range), so an
/// `Option<LogTime>` takes no more room.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogTime(NonZeroU64);

impl LogTime {
    /// The instant of `at`, to the microsecond.
    pub fn of(at: Timestamp) -> LogTime {
        LogTime::from_micros(at.as_microsecond())
    }

    /// Microseconds since the epoch.
    pub fn micros(self) -> i64 {
        (self.0.get() ^ (1 << 63)) as i64
    }

    /// From microseconds since the epoch (`i64::MIN`, out of a timestamp's range, is
    /// taken as the next one).
    pub fn from_micros(micros: i64) -> LogTime {
        let held = (micros as u64) ^ (1 << 63);
        LogTime(NonZeroU64::new(held).unwrap_or(NonZeroU64::MIN))
    }

    /// As a timestamp (the epoch for a count out of a timestamp's range, which `of`
    /// never makes).
    pub fn timestamp(self) -> Timestamp {
        Timestamp::from_microsecond(self.micros()).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

impl fmt::Debug for LogTime {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Display::fmt(&self.timestamp(), f)
    }
}

impl fmt::Display for LogTime {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Display::fmt(&self.timestamp(), f)
    }
}

impl Serialize for LogTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            self.timestamp().serialize(serializer)
        } else {
            serializer.serialize_i64(self.micros())
        }
    }
}

impl<'de> Deserialize<'de> for LogTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LogTime, D::Error> {
        if deserializer.is_human_readable() {
            Timestamp::deserialize(deserializer).map(LogTime::of)
        } else {
            let micros = i64::deserialize(deserializer)?;
            Timestamp::from_microsecond(micros)
                .map(LogTime::of)
                .map_err(|_| D::Error::custom(format!("{micros} µs is out of a timestamp's range")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_an_instant_to_the_microsecond_in_eight_bytes() {
        assert_eq!(size_of::<LogTime>(), 8);
        assert_eq!(size_of::<Option<LogTime>>(), 8);
        let epoch = LogTime::of(Timestamp::UNIX_EPOCH);
        assert_eq!(epoch.micros(), 0);
        assert!(LogTime::from_micros(-1) < epoch && epoch < LogTime::from_micros(1));
        assert!(LogTime::of(Timestamp::MIN) < LogTime::of(Timestamp::MAX));
        let at: Timestamp = "2025-03-01T09:30:00.123456789Z".parse().unwrap();
        let kept = LogTime::of(at);
        assert_eq!(kept.to_string(), "2025-03-01T09:30:00.123456Z");
        assert!(kept < LogTime::of(at + jiff::SignedDuration::from_micros(1)));
        let json = serde_json::to_string(&kept).unwrap();
        assert_eq!(json, r#""2025-03-01T09:30:00.123456Z""#);
        assert_eq!(serde_json::from_str::<LogTime>(&json).unwrap(), kept);
        let packed = rmp_serde::to_vec(&kept).unwrap();
        assert_eq!(rmp_serde::from_slice::<LogTime>(&packed).unwrap(), kept);
        assert!(rmp_serde::from_slice::<LogTime>(&rmp_serde::to_vec(&i64::MAX).unwrap()).is_err());
    }
}
