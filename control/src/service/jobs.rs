//! (MEDIA) jobs services — owned by the MEDIA helper.

/// Starts the background job workers of this process (called once by `serve` before it binds).
pub fn start(_state: &actix_web::web::Data<crate::app::AppState>) -> crate::error::Result<()> {
    Ok(())
}
