//! (MEDIA) assets services — owned by the MEDIA helper.
