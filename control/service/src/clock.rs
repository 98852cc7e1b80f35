//! The services' notion of time. Production reads the system clock; tests use a manual clock
//! they set and move, so "a day later" is a line of a test, not a sleep.

use std::sync::{Arc, Mutex};

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};

/// A clock shared by the services, the job workers and the scheduler of one process.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<Mutex<NaiveDateTime>>>);

impl Clock {
    /// The system clock (UTC).
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock standing at `at` until set or advanced.
    pub fn manual(at: NaiveDateTime) -> Self {
        Self(Some(Arc::new(Mutex::new(truncate(at)))))
    }

    /// Now in UTC, truncated to microseconds (both backends store exactly this).
    pub fn now(&self) -> NaiveDateTime {
        match &self.0 {
            None => truncate(chrono::Utc::now().naive_utc()),
            Some(t) => *t.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }

    /// Today's date in UTC.
    pub fn today(&self) -> NaiveDate {
        self.now().date()
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        self.0.is_some()
    }

    /// Sets a manual clock to `at` (a system clock is left alone: returns false).
    pub fn set(&self, at: NaiveDateTime) -> bool {
        match &self.0 {
            None => false,
            Some(t) => {
                *t.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = truncate(at);
                true
            }
        }
    }

    /// Moves a manual clock forward by `by` (a system clock is left alone: returns false).
    pub fn advance(&self, by: TimeDelta) -> bool {
        let at = self.now() + by;
        self.set(at)
    }
}

fn truncate(t: NaiveDateTime) -> NaiveDateTime {
    chrono::DurationRound::duration_trunc(t, TimeDelta::microseconds(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 31)
            .and_then(|d| d.and_hms_opt(23, 0, 0))
            .unwrap_or_default();
        let c = Clock::manual(start);
        assert_eq!(c.now(), start);
        assert!(c.advance(TimeDelta::hours(2)));
        assert_eq!(
            c.today(),
            NaiveDate::from_ymd_opt(2026, 2, 1).unwrap_or_default()
        );
        let shared = c.clone();
        assert!(shared.set(start));
        assert_eq!(c.now(), start, "clones share one time");
        assert!(!Clock::system().set(start));
    }
}
