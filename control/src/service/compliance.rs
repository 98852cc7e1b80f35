//! (DOMAIN) compliance services — owned by the DOMAIN helper.
