//! Brute-force protection for logins: failed attempts are counted per account (tenant +
//! e-mail) and per client address in a sliding window; past the limit, logins from there are
//! refused with 429 and `Retry-After` until the oldest failure leaves the window — also with the
//! right password, so guessing gains nothing. A successful login clears the account's count.
//!
//! The counts live in this process (each control-plane replica counts on its own); they are
//! bounded (at most [`MAX_KEYS`] keys, the oldest dropped first).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{ControlError, Result};

/// Most distinct keys (accounts + addresses) remembered.
pub const MAX_KEYS: usize = 100_000;

/// Limits of the login throttle (`[server]` keys `login_window_secs`,
/// `login_max_failures_per_account`, `login_max_failures_per_ip`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The sliding window.
    pub window: Duration,
    /// Failures allowed per account within the window.
    pub per_account: usize,
    /// Failures allowed per client address within the window.
    pub per_ip: usize,
}

/// Failed-login counts (one per process, in the app state).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

fn account_key(tenant: &str, email: &str) -> String {
    format!(
        "a:{}\u{0}{}",
        tenant.trim().to_lowercase(),
        email.trim().to_lowercase()
    )
}

fn ip_key(ip: &str) -> String {
    format!("i:{ip}")
}

impl LoginThrottle {
    fn keys(tenant: &str, email: &str, ip: Option<&str>) -> Vec<(String, bool)> {
        let mut k = vec![(account_key(tenant, email), true)];
        if let Some(ip) = ip {
            k.push((ip_key(ip), false));
        }
        k
    }

    /// Refuses (429) when the account or the address is over its limit now.
    pub fn check(
        &self,
        limits: &Limits,
        tenant: &str,
        email: &str,
        ip: Option<&str>,
    ) -> Result<()> {
        let now = Instant::now();
        let mut map = self
            .failures
            .lock()
            .map_err(|_| ControlError::Internal("throttle lock poisoned".into()))?;
        let mut wait = Duration::ZERO;
        for (key, is_account) in Self::keys(tenant, email, ip) {
            let max = if is_account {
                limits.per_account
            } else {
                limits.per_ip
            };
            if let Some(q) = map.get_mut(&key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= limits.window)
                {
                    q.pop_front();
                }
                if q.len() >= max
                    && let Some(idx) = q.len().checked_sub(max)
                    && let Some(t) = q.get(idx)
                {
                    // Free again when the failure that keeps it at the limit leaves the window.
                    wait = wait.max(limits.window.saturating_sub(now.duration_since(*t)));
                }
            }
        }
        if wait > Duration::ZERO {
            return Err(ControlError::TooManyAttempts {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        Ok(())
    }

    /// Records a failed login.
    pub fn failed(&self, tenant: &str, email: &str, ip: Option<&str>) {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= MAX_KEYS {
            // Drop the key whose last failure is oldest.
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, q)| q.back().copied())
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        for (key, _) in Self::keys(tenant, email, ip) {
            let q = map.entry(key).or_default();
            q.push_back(now);
            // Never more than needed to decide.
            while q.len() > 1024 {
                q.pop_front();
            }
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn succeeded(&self, tenant: &str, email: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&account_key(tenant, email));
        }
    }
}

/// Guessing protection for the public token pages (`/sign/{token}…`, `/receipt/{token}…`, the
/// receipt check): lookups of unknown tokens are counted per client address in a window (on the
/// services' clock); past the limit (`[signing]` `max_unknown_tokens_per_ip` within
/// `unknown_token_window_secs`) every public token page from that address is refused with 429
/// and `Retry-After` before any lookup — valid tokens too, so guessing teaches nothing.
///
/// In this process only, bounded like [`LoginThrottle`] (at most [`MAX_KEYS`] addresses).
#[derive(Debug, Default)]
pub struct PublicThrottle {
    misses: Mutex<HashMap<String, VecDeque<chrono::NaiveDateTime>>>,
}

impl PublicThrottle {
    /// Refuses (429, `too_many_unknown_links`) when `ip` is over `max` unknown tokens within
    /// `window_secs` at `now`. No address, or `max == 0`: never refused.
    pub fn check(
        &self,
        ip: Option<&str>,
        now: chrono::NaiveDateTime,
        max: usize,
        window_secs: u64,
    ) -> Result<()> {
        let Some(ip) = ip else { return Ok(()) };
        if max == 0 {
            return Ok(());
        }
        let window = chrono::TimeDelta::seconds(i64::try_from(window_secs).unwrap_or(i64::MAX));
        let mut map = self
            .misses
            .lock()
            .map_err(|_| ControlError::Internal("throttle lock poisoned".into()))?;
        let Some(q) = map.get_mut(ip) else {
            return Ok(());
        };
        while q.front().is_some_and(|t| now - *t >= window) {
            q.pop_front();
        }
        if q.is_empty() {
            map.remove(ip);
            return Ok(());
        }
        if q.len() >= max
            && let Some(idx) = q.len().checked_sub(max)
            && let Some(t) = q.get(idx)
        {
            let wait = (window - (now - *t)).num_seconds().max(1);
            return Err(ControlError::RateLimited {
                code: "too_many_unknown_links",
                message: "too many unknown links from this address; try again later".into(),
                retry_after_secs: u64::try_from(wait).unwrap_or(1),
            });
        }
        Ok(())
    }

    /// Records a lookup of an unknown token from `ip`.
    pub fn missed(&self, ip: Option<&str>, now: chrono::NaiveDateTime) {
        let Some(ip) = ip else { return };
        let Ok(mut map) = self.misses.lock() else {
            return;
        };
        if map.len() >= MAX_KEYS
            && !map.contains_key(ip)
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, q)| q.back().copied())
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let q = map.entry(ip.to_string()).or_default();
        q.push_back(now);
        while q.len() > 1024 {
            q.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            window: Duration::from_millis(300),
            per_account: 3,
            per_ip: 5,
        }
    }

    #[test]
    fn locks_an_account_after_the_limit_and_frees_it_after_the_window() {
        let t = LoginThrottle::default();
        let l = limits();
        for _ in 0..3 {
            assert!(t.check(&l, "acme", "a@x", Some("1.1.1.1")).is_ok());
            t.failed("acme", "A@x ", Some("1.1.1.1"));
        }
        let err = t.check(&l, "ACME", "a@x", Some("2.2.2.2")).unwrap_err();
        assert!(matches!(err, ControlError::TooManyAttempts { .. }), "{err}");
        // Another account from another address is not affected.
        assert!(t.check(&l, "acme", "b@x", Some("2.2.2.2")).is_ok());
        std::thread::sleep(Duration::from_millis(320));
        assert!(t.check(&l, "acme", "a@x", Some("1.1.1.1")).is_ok());
    }

    #[test]
    fn locks_an_address_that_tries_many_accounts() {
        let t = LoginThrottle::default();
        let l = limits();
        for i in 0..5 {
            t.failed("acme", &format!("u{i}@x"), Some("9.9.9.9"));
        }
        assert!(t.check(&l, "acme", "new@x", Some("9.9.9.9")).is_err());
        assert!(t.check(&l, "acme", "new@x", Some("8.8.8.8")).is_ok());
    }

    #[test]
    fn success_clears_the_account() {
        let t = LoginThrottle::default();
        let l = limits();
        for _ in 0..2 {
            t.failed("acme", "a@x", None);
        }
        t.succeeded("acme", "a@x");
        t.failed("acme", "a@x", None);
        t.failed("acme", "a@x", None);
        assert!(t.check(&l, "acme", "a@x", None).is_ok());
    }

    #[test]
    fn public_throttle_refuses_an_address_past_the_limit_until_the_window_ends() {
        let t = PublicThrottle::default();
        let t0 = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        for i in 0..3 {
            let at = t0 + chrono::TimeDelta::seconds(i);
            assert!(t.check(Some("1.1.1.1"), at, 3, 60).is_ok());
            t.missed(Some("1.1.1.1"), at);
        }
        let now = t0 + chrono::TimeDelta::seconds(10);
        match t.check(Some("1.1.1.1"), now, 3, 60) {
            Err(ControlError::RateLimited {
                code,
                retry_after_secs,
                ..
            }) => {
                assert_eq!(code, "too_many_unknown_links");
                assert_eq!(retry_after_secs, 50);
            }
            other => panic!("{other:?}"),
        }
        assert!(t.check(Some("2.2.2.2"), now, 3, 60).is_ok());
        assert!(t.check(None, now, 3, 60).is_ok());
        assert!(t.check(Some("1.1.1.1"), now, 0, 60).is_ok());
        assert!(
            t.check(Some("1.1.1.1"), t0 + chrono::TimeDelta::seconds(60), 3, 60)
                .is_ok()
        );
    }
}
