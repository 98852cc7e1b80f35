//! (PUBLISHING) Share links and media portals.
//! (Being written: see /work/notes/publishing-contract.md.)
