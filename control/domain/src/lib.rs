//! Pure domain logic of the Likeness control plane.
//!
//! Everything here is deterministic and free of IO, databases and async: the enums whose
//! snake_case string forms are stored in the database and spoken by the API ([`enums`]),
//! the tenant settings ([`settings`]), the minor computation ([`minor`]), the compliance engine
//! ([`compliance`]), canonical JSON ([`canonical`]), timestamps on the wire ([`time`]), the
//! audit hash chain ([`audit`]) and input validation ([`validate`]). The `likeness-control`
//! crate loads facts from its database and calls into this crate.

pub mod audit;
pub mod canonical;
pub mod compliance;
pub mod enums;
pub mod error;
pub mod evidence;
pub mod minor;
pub mod rights;
pub mod settings;
pub mod time;
pub mod validate;

pub use compliance::{
    AgreementFacts, AssetFacts, FaceFacts, PersonFacts, Reason, UseDecision, Verdict, evaluate,
    use_decision,
};
pub use enums::{
    ComplianceStatus, ConsentSource, FaceSource, FaceStatus, LegalBasis, NonApprovedUse,
    Permission, Role,
};
pub use error::Error;
pub use settings::TenantSettings;
