//! Service functions shared by every transport (REST, console, CLI, later gRPC). They take a
//! `&mut DbConn` (or the pool), the acting [`crate::audit::Who`] and check tenant scoping;
//! permission checks happen in the handlers via [`crate::auth::Actor::require`].

// CORE
pub mod persons;
pub mod tenants;
pub mod users;

// MEDIA
pub mod assets;
pub mod faces;
pub mod jobs;
pub mod rematch;

// DOMAIN
pub mod agreements;
pub mod compliance;
pub mod settings;
