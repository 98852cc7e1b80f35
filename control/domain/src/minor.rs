//! Ages and minors.
//!
//! A person born on 29 February reaches a birthday in a common year on 1 March (the rule of
//! e.g. English and Norwegian law: the birthday has not been reached on 28 February).

use chrono::{Datelike, NaiveDate};

/// The date on which a person born on `dob` turns `years` old (`None` if out of chrono's
/// range).
pub fn birthday(dob: NaiveDate, years: u32) -> Option<NaiveDate> {
    let y = dob.year().checked_add(i32::try_from(years).ok()?)?;
    NaiveDate::from_ymd_opt(y, dob.month(), dob.day()).or_else(|| {
        // 29 February in a common year: the next day.
        NaiveDate::from_ymd_opt(y, 3, 1)
    })
}

/// The age in whole years on `on` of a person born on `dob` (0 before birth).
pub fn age_on(dob: NaiveDate, on: NaiveDate) -> u32 {
    if on <= dob {
        return 0;
    }
    let mut age = u32::try_from(on.year() - dob.year()).unwrap_or(0);
    while age > 0 && birthday(dob, age).is_none_or(|b| b > on) {
        age -= 1;
    }
    age
}

/// Whether a person born on `dob` is a minor on `on` given the tenant's age `threshold`.
pub fn is_minor(dob: NaiveDate, on: NaiveDate, threshold: u32) -> bool {
    age_on(dob, on) < threshold
}

/// The first day on which a person born on `dob` is no longer a minor.
pub fn adult_from(dob: NaiveDate, threshold: u32) -> Option<NaiveDate> {
    birthday(dob, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn ages_and_boundaries() {
        let dob = d(2008, 6, 15);
        assert_eq!(age_on(dob, d(2026, 6, 14)), 17);
        assert_eq!(age_on(dob, d(2026, 6, 15)), 18);
        assert!(is_minor(dob, d(2026, 6, 14), 18));
        assert!(!is_minor(dob, d(2026, 6, 15), 18));
        assert!(is_minor(dob, d(2026, 6, 15), 19));
        assert_eq!(age_on(dob, dob), 0);
        assert_eq!(age_on(dob, d(2000, 1, 1)), 0);
        assert_eq!(adult_from(dob, 18), Some(d(2026, 6, 15)));
        assert_eq!(age_on(d(2000, 12, 31), d(2001, 12, 30)), 0);
        assert_eq!(age_on(d(2000, 12, 31), d(2001, 12, 31)), 1);
    }

    #[test]
    fn leap_day_birthdays() {
        let dob = d(2008, 2, 29);
        // 2026 is a common year: the 18th birthday is 1 March.
        assert_eq!(adult_from(dob, 18), Some(d(2026, 3, 1)));
        assert!(is_minor(dob, d(2026, 2, 28), 18));
        assert!(!is_minor(dob, d(2026, 3, 1), 18));
        // 2024 is a leap year: the 16th birthday is 29 February.
        assert_eq!(adult_from(dob, 16), Some(d(2024, 2, 29)));
        assert_eq!(age_on(dob, d(2024, 2, 28)), 15);
        assert_eq!(age_on(dob, d(2024, 2, 29)), 16);
        assert_eq!(age_on(dob, d(2025, 2, 28)), 16);
        assert_eq!(age_on(dob, d(2025, 3, 1)), 17);
    }

    #[test]
    fn age_is_monotonic_over_many_days() {
        for dob in [
            d(2004, 2, 29),
            d(2007, 1, 1),
            d(2007, 12, 31),
            d(2010, 3, 1),
        ] {
            let mut prev = 0;
            let mut day = dob;
            let end = d(2030, 12, 31);
            while day <= end {
                let a = age_on(dob, day);
                assert!(a == prev || a == prev + 1, "{dob} {day}");
                if a == prev + 1 {
                    assert_eq!(birthday(dob, a), Some(day), "{dob} {day}");
                }
                prev = a;
                day = day.succ_opt().unwrap();
            }
        }
    }
}
