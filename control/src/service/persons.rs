//! The register of persons: CRUD, pseudonyms, minors, guardians; every read audited.
