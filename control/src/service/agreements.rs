//! (DOMAIN) agreements services — owned by the DOMAIN helper.
