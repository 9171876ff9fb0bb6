//! Time as an injected value ([rustls `TimeProvider`] style).
//!
//! Validation never reads the system clock: every check takes a [`UnixTime`]
//! that the caller obtained from a [`Clock`]. Tests use [`FixedClock`] to probe
//! expiry exactly at its edges.
//!
//! [rustls `TimeProvider`]: https://docs.rs/rustls/latest/rustls/time_provider/trait.TimeProvider.html

use core::fmt;

/// Seconds since the Unix epoch, the unit of a JWT NumericDate
/// ([RFC 7519 §2](https://www.rfc-editor.org/rfc/rfc7519#section-2)).
///
/// Only values between the epoch and the end of year 9999 are representable,
/// so arithmetic on it never overflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(i64);

impl UnixTime {
    /// The largest accepted NumericDate: 9999-12-31T23:59:59Z.
    pub const MAX_SECS: i64 = 253_402_300_799;

    /// 1970-01-01T00:00:00Z.
    pub const EPOCH: UnixTime = UnixTime(0);

    /// A time from seconds since the epoch; `None` when negative or past
    /// year 9999.
    pub fn from_secs(secs: i64) -> Option<Self> {
        (0..=Self::MAX_SECS).contains(&secs).then_some(Self(secs))
    }

    /// Seconds since the epoch.
    pub fn as_secs(self) -> i64 {
        self.0
    }

    /// `self + secs`, clamped to the representable range.
    pub fn saturating_add(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs).clamp(0, Self::MAX_SECS))
    }

    /// `self - secs`, clamped to the representable range.
    pub fn saturating_sub(self, secs: i64) -> Self {
        Self(self.0.saturating_sub(secs).clamp(0, Self::MAX_SECS))
    }

    /// The number of seconds from `earlier` to `self` (negative if `earlier`
    /// is later). Cannot overflow: both lie in `0..=MAX_SECS`.
    pub fn secs_since(self, earlier: UnixTime) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl serde::Serialize for UnixTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

/// Deserializing checks the range, as [`UnixTime::from_secs`] does.
impl<'de> serde::Deserialize<'de> for UnixTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let secs = i64::deserialize(d)?;
        Self::from_secs(secs).ok_or_else(|| serde::de::Error::custom("time out of range"))
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> UnixTime;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(UnixTime::MAX_SECS))
            .unwrap_or(0);
        UnixTime(secs.clamp(0, UnixTime::MAX_SECS))
    }
}

/// A clock that always answers the same time, for tests and replays.
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub UnixTime);

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        self.0
    }
}
