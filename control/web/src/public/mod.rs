//! The public pages of persons (no account): the signing page behind a request's link, the
//! receipt page, and withdrawal through the receipt's link. Mobile-first HTML in English,
//! Swedish and Dutch, a strict Content-Security-Policy, CSRF-protected forms.

use actix_web::web::ServiceConfig;

/// Registers the routes.
pub fn configure(cfg: &mut ServiceConfig) {
    let _ = cfg;
}
