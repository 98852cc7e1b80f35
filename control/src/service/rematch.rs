//! (MEDIA) rematch services — owned by the MEDIA helper.
