//! Time: the [`Clock`] trait, [`SystemClock`], [`ManualClock`] for tests, and
//! [`Timestamp`], the instant type every record carries.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// An instant in UTC: whole milliseconds since the Unix epoch
/// (1970-01-01T00:00:00Z).
///
/// This is what the database stores (an `INTEGER` column) and what every
/// record exposes. Convert with [`Timestamp::to_system_time`] or read the raw
/// figure with [`Timestamp::as_millis`]. Serde writes the bare integer.
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(description = "An instant: UTC milliseconds since the Unix epoch.")
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The instant `millis` milliseconds after the Unix epoch (before it when
    /// negative).
    pub const fn from_millis(millis: i64) -> Timestamp {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        let offset = Duration::from_millis(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + offset
        } else {
            UNIX_EPOCH - offset
        }
    }

    /// The instant `duration` later, saturating at the largest instant.
    #[must_use]
    pub fn saturating_add(self, duration: Duration) -> Timestamp {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }
}

impl From<SystemTime> for Timestamp {
    /// Truncates to whole milliseconds; instants outside the `i64` range
    /// saturate.
    fn from(time: SystemTime) -> Timestamp {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => {
                let millis = i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX);
                Timestamp(-millis)
            }
        }
    }
}

impl fmt::Display for Timestamp {
    /// Milliseconds since the Unix epoch, with a unit: `1700000000000 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

impl crate::db::ToValue for Timestamp {
    fn to_value(&self) -> crate::db::ValueRef<'_> {
        crate::db::ValueRef::Integer(self.0)
    }
}

impl crate::db::FromValue for Timestamp {
    fn from_value(value: &crate::db::Value) -> std::result::Result<Self, String> {
        <i64 as crate::db::FromValue>::from_value(value).map(Timestamp)
    }
}

/// A source of the current time.
///
/// The shop reads the time only through this trait, so tests (and hosts that
/// replay events) can control it. Install one with
/// [`ShopBuilder::clock`](crate::ShopBuilder::clock).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock; the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from(SystemTime::now())
    }
}

/// A clock that moves only when told to, for tests.
///
/// Clones share one instant: keep a clone, hand another to the shop, and
/// [`advance`](ManualClock::advance) it to move the shop's time without
/// sleeping.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use liteshop::{Clock, ManualClock, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_millis(1_000));
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(shared.now(), Timestamp::from_millis(3_000));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start.as_millis())))
    }

    /// Moves the clock forward by `duration` (whole milliseconds).
    pub fn advance(&self, duration: Duration) {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(millis))
            });
    }

    /// Sets the clock to `now`, forward or back.
    pub fn set(&self, now: Timestamp) {
        self.0.store(now.as_millis(), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    /// A clock stopped at 2024-01-01T00:00:00Z.
    fn default() -> ManualClock {
        ManualClock::new(Timestamp::from_millis(1_704_067_200_000))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_system_time() {
        for millis in [0, 1, 1_704_067_200_123, -5_000] {
            let ts = Timestamp::from_millis(millis);
            assert_eq!(Timestamp::from(ts.to_system_time()), ts);
        }
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > Timestamp::from_millis(1_577_836_800_000));
    }
}
