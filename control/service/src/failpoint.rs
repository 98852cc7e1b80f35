//! Failpoints for crash tests: `LIKENESS_FAILPOINT=<name>[,<name>..]` makes the process abort
//! (no unwinding, no shutdown, like `kill -9`) when it reaches a point of that name. Unset in
//! production, where each point costs one environment lookup.
//!
//! Points: `withdraw.after_commit` (a withdrawal committed, its template removal not yet run).

/// The environment variable naming the failpoints to trigger.
pub const ENV: &str = "LIKENESS_FAILPOINT";

/// Aborts the process if failpoint `name` is set in [`ENV`].
pub fn failpoint(name: &str) {
    if is_set(name) {
        tracing::error!(failpoint = name, "failpoint reached: aborting the process");
        std::process::abort();
    }
}

/// Whether failpoint `name` is set in [`ENV`].
pub fn is_set(name: &str) -> bool {
    std::env::var(ENV).is_ok_and(|v| v.split(',').any(|p| p.trim() == name))
}
