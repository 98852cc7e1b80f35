//! (SIGNING) Signing requests and the signer's flow: a link by e-mail or SMS, the exact text,
//! scopes to accept or decline, a one-time code (and a guardian's for minors), a sealed
//! record, a receipt, and withdrawal through the receipt's link.
