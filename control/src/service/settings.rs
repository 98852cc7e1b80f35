//! (DOMAIN) settings services — owned by the DOMAIN helper.
