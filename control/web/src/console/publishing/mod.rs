//! The console's publishing pages: webhook endpoints and their deliveries, share links and
//! portals with their access logs, and the alerts of expiring consents (with the digest
//! preference). Publications show on a file's and a person's pages.

use actix_web::web::ServiceConfig;

mod alerts;
mod shares;
mod webhooks;

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(webhooks::configure)
        .configure(shares::configure)
        .configure(alerts::configure);
}
