//! The console's admin pages: settings, users, API tokens, roles and permissions, the audit log
//! and re-matching runs. Each page calls the same service functions as the REST API; they check
//! the permissions (a page the role may not use answers 403), the layout hides the entries.

use actix_web::web::ServiceConfig;

mod audit;
mod rematch;
mod settings;
mod users;

/// A form field as an optional value: `None` when missing or blank, else trimmed.
fn opt(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Registers this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(settings::configure)
        .configure(users::configure)
        .configure(audit::configure)
        .configure(rematch::configure);
}
