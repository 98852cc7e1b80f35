//! (PUBLISHING) Publications: where a CMS placed a file; the use check.
//! (Being written: see /work/notes/publishing-contract.md.)
