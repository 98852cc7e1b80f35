//! (MEDIA) faces services — owned by the MEDIA helper.
