//! The audit log's hash chain.
//!
//! Every entry is hashed as `hash = hex(sha256(prev_hash || canonical))` where `prev_hash` is
//! the previous entry's `hash` as its 64 lowercase hex ASCII bytes ([`GENESIS_HASH`] for the
//! first entry) and `canonical` is the canonical JSON ([`crate::canonical`]) of the object
//!
//! ```text
//! {"action","actor_label","actor_user_id","at","detail","ip","object_id","object_type","tenant_id"}
//! ```
//!
//! with `at` written as `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC, exactly six fractional digits: store
//! [`truncate_micros`]`(now)` so that SQLite and PostgreSQL give the same value back) and
//! `detail` the parsed `detail_json`. Absent optional fields are `null`.
//!
//! `seq` is deliberately *not* hashed: entries are chained by `prev_hash`, so a row that was
//! moved (its `seq` changed) stays self-consistent but no longer follows its predecessor — which
//! lets [`verify`] tell a reorder from an edit. Sequence numbers start at 1 and have no gaps.

use chrono::{NaiveDateTime, Timelike};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::canonical::to_canonical_string;

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed content of an audit entry (everything but `seq`, `prev_hash` and `hash`).
#[derive(Debug, Clone, PartialEq)]
pub struct EntryContent {
    /// The tenant, `None` for system-wide events.
    pub tenant_id: Option<String>,
    /// When (UTC), truncated to microseconds.
    pub at: NaiveDateTime,
    /// The acting user, if any.
    pub actor_user_id: Option<String>,
    /// A readable label of the actor (e-mail, token name, "system").
    pub actor_label: String,
    /// The client's address, if known.
    pub ip: Option<String>,
    /// What happened, e.g. `person.read`, `agreement.withdraw`.
    pub action: String,
    /// The kind of object, e.g. `person`.
    pub object_type: String,
    /// The object's ID, if any.
    pub object_id: Option<String>,
    /// Details (parsed `detail_json`).
    pub detail: Value,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// The hashed content.
    pub content: EntryContent,
    /// The previous entry's hash ([`GENESIS_HASH`] for seq 1).
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// `at` truncated to whole microseconds (what both databases store exactly).
pub fn truncate_micros(at: NaiveDateTime) -> NaiveDateTime {
    let nanos = at.nanosecond() / 1_000 * 1_000;
    at.with_nanosecond(nanos).unwrap_or(at)
}

/// The canonical JSON that is hashed for `content`.
pub fn canonical(content: &EntryContent) -> String {
    to_canonical_string(&json!({
        "tenant_id": content.tenant_id,
        "at": content.at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "actor_user_id": content.actor_user_id,
        "actor_label": content.actor_label,
        "ip": content.ip,
        "action": content.action,
        "object_type": content.object_type,
        "object_id": content.object_id,
        "detail": content.detail,
    }))
}

/// `hex(sha256(prev_hash || canonical(content)))`.
pub fn entry_hash(prev_hash: &str, content: &EntryContent) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical(content).as_bytes());
    hex::encode(h.finalize())
}

/// Builds the next entry of a chain whose head is (`prev_seq`, `prev_hash`)
/// (`(0, GENESIS_HASH)` for an empty log).
pub fn next_entry(prev_seq: i64, prev_hash: &str, content: EntryContent) -> Entry {
    let hash = entry_hash(prev_hash, &content);
    Entry {
        seq: prev_seq + 1,
        content,
        prev_hash: prev_hash.to_owned(),
        hash,
    }
}

/// How the chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The entry's content or hash was changed.
    Edited,
    /// The entry is intact but not where it belongs (sequence numbers swapped or out of order).
    Reordered,
    /// One or more entries before this one (or at the end of the log) are missing.
    Removed,
}

/// The first place where the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The seq of the first entry that does not verify (for a removed tail: the first missing
    /// seq).
    pub seq: i64,
    /// What happened.
    pub kind: BreakKind,
    /// A readable explanation.
    pub message: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Entries read.
    pub checked: u64,
    /// The last seq read (0 if none).
    pub last_seq: i64,
    /// The hash of the last entry read ([`GENESIS_HASH`] if none).
    pub last_hash: String,
    /// The first break, `None` if the chain is intact.
    pub first_break: Option<Break>,
}

impl Report {
    /// Whether the chain verified.
    pub fn ok(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Verifies a chain given in ascending `seq` order (as read with `ORDER BY seq`), from seq 1.
///
/// `expected_head` is the stored head (`audit_head`: last seq and hash); when given, a log that
/// ends before it (removed tail entries) or differs from it is reported too.
///
/// Classification of the first break:
/// - an entry whose hash does not match its own `prev_hash` and content: **edited**;
/// - `seq` not increasing: **reordered**;
/// - an intact entry whose `prev_hash` is not the previous entry's hash: **reordered** if some
///   other entry of the log has that hash, else **removed** (also when `seq` jumps).
pub fn verify<I>(entries: I, expected_head: Option<(i64, &str)>) -> Report
where
    I: IntoIterator<Item = Entry>,
{
    let mut iter = entries.into_iter();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut checked = 0u64;
    let mut last_seq = 0i64;
    let mut last_hash = GENESIS_HASH.to_owned();
    let report = |checked, last_seq, last_hash, b| Report {
        checked,
        last_seq,
        last_hash,
        first_break: b,
    };
    for e in iter.by_ref() {
        checked += 1;
        let recomputed = entry_hash(&e.prev_hash, &e.content);
        if recomputed != e.hash {
            let b = Break {
                seq: e.seq,
                kind: BreakKind::Edited,
                message: format!(
                    "entry {} was edited: its stored hash does not match its content",
                    e.seq
                ),
            };
            return report(checked, e.seq, e.hash, Some(b));
        }
        if e.seq <= last_seq {
            let b = Break {
                seq: e.seq,
                kind: BreakKind::Reordered,
                message: format!("entry {} comes after entry {last_seq}", e.seq),
            };
            return report(checked, e.seq, e.hash, Some(b));
        }
        if e.prev_hash != last_hash {
            let gap = e.seq > last_seq + 1;
            // Does any other entry carry the hash this one claims to follow?
            let elsewhere = seen.contains(&e.prev_hash) || {
                let mut found = false;
                for later in iter.by_ref() {
                    if later.hash == e.prev_hash {
                        found = true;
                        break;
                    }
                }
                found
            };
            let (kind, message) = if elsewhere {
                (
                    BreakKind::Reordered,
                    format!(
                        "entry {} is intact but does not follow entry {last_seq}: entries were reordered",
                        e.seq
                    ),
                )
            } else if gap {
                (
                    BreakKind::Removed,
                    format!("entries {} to {} are missing", last_seq + 1, e.seq - 1),
                )
            } else {
                (
                    BreakKind::Removed,
                    format!(
                        "entry {} does not follow entry {last_seq}: an entry between them was removed or entry {last_seq} was rewritten",
                        e.seq
                    ),
                )
            };
            let seq = if gap && !elsewhere {
                last_seq + 1
            } else {
                e.seq
            };
            return report(checked, e.seq, e.hash, Some(Break { seq, kind, message }));
        }
        if e.seq != last_seq + 1 {
            // Chained correctly but numbered with a gap: renumbered rows.
            let b = Break {
                seq: last_seq + 1,
                kind: BreakKind::Removed,
                message: format!("seq {} is missing", last_seq + 1),
            };
            return report(checked, e.seq, e.hash, Some(b));
        }
        seen.insert(last_hash);
        last_seq = e.seq;
        last_hash = e.hash;
    }
    if let Some((head_seq, head_hash)) = expected_head {
        if head_seq > last_seq {
            let b = Break {
                seq: last_seq + 1,
                kind: BreakKind::Removed,
                message: format!(
                    "the log ends at entry {last_seq} but its head says {head_seq}: entries {} to {head_seq} were removed",
                    last_seq + 1
                ),
            };
            return report(checked, last_seq, last_hash, Some(b));
        }
        if head_seq != last_seq || head_hash != last_hash {
            let b = Break {
                seq: last_seq,
                kind: BreakKind::Edited,
                message: format!(
                    "the log's last entry ({last_seq}) does not match its head (seq {head_seq})"
                ),
            };
            return report(checked, last_seq, last_hash, Some(b));
        }
    }
    report(checked, last_seq, last_hash, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn content(i: i64) -> EntryContent {
        let at = NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_micro_opt(6, 0, 0, u32::try_from(i).unwrap())
            .unwrap();
        EntryContent {
            tenant_id: Some("t1".into()),
            at,
            actor_user_id: if i % 2 == 0 { Some("u1".into()) } else { None },
            actor_label: "ola@example.com".into(),
            ip: Some("127.0.0.1".into()),
            action: format!("person.read.{i}"),
            object_type: "person".into(),
            object_id: Some(format!("p{i}")),
            detail: json!({"i": i, "fields": ["name"]}),
        }
    }

    fn chain(n: i64) -> Vec<Entry> {
        let mut v: Vec<Entry> = Vec::new();
        for i in 1..=n {
            let (s, h) = v
                .last()
                .map(|e| (e.seq, e.hash.clone()))
                .unwrap_or((0, GENESIS_HASH.to_owned()));
            v.push(next_entry(s, &h, content(i)));
        }
        v
    }

    fn head(v: &[Entry]) -> (i64, String) {
        v.last()
            .map(|e| (e.seq, e.hash.clone()))
            .unwrap_or((0, GENESIS_HASH.to_owned()))
    }

    #[test]
    fn known_answer() {
        let c = EntryContent {
            tenant_id: None,
            at: NaiveDate::from_ymd_opt(2026, 1, 2)
                .unwrap()
                .and_hms_micro_opt(3, 4, 5, 6)
                .unwrap(),
            actor_user_id: None,
            actor_label: "system".into(),
            ip: None,
            action: "tenant.create".into(),
            object_type: "tenant".into(),
            object_id: Some("t".into()),
            detail: json!({"b": 2, "a": 1}),
        };
        assert_eq!(
            canonical(&c),
            r#"{"action":"tenant.create","actor_label":"system","actor_user_id":null,"at":"2026-01-02T03:04:05.000006","detail":{"a":1,"b":2},"ip":null,"object_id":"t","object_type":"tenant","tenant_id":null}"#
        );
        let mut h = Sha256::new();
        h.update(GENESIS_HASH.as_bytes());
        h.update(canonical(&c).as_bytes());
        assert_eq!(entry_hash(GENESIS_HASH, &c), hex::encode(h.finalize()));
        assert_eq!(entry_hash(GENESIS_HASH, &c).len(), 64);
    }

    #[test]
    fn intact_chains_verify() {
        for n in [0, 1, 2, 50] {
            let v = chain(n);
            let (hs, hh) = head(&v);
            let r = verify(v, Some((hs, &hh)));
            assert!(r.ok(), "{n}: {r:?}");
            assert_eq!(r.checked, u64::try_from(n).unwrap());
            assert_eq!(r.last_seq, n);
        }
    }

    #[test]
    fn edits_are_found() {
        let base = chain(10);
        let (hs, hh) = head(&base);
        type Edit = fn(&mut Entry);
        let edits: [Edit; 6] = [
            |e| e.content.action.push('x'),
            |e| e.content.detail = json!({"i": 0}),
            |e| e.content.ip = None,
            |e| e.content.at += chrono::Duration::microseconds(1),
            |e| e.hash = GENESIS_HASH.into(),
            |e| e.prev_hash = GENESIS_HASH.into(),
        ];
        for (k, edit) in edits.iter().enumerate() {
            for at in [0usize, 4, 9] {
                if k == 5 && at == 0 {
                    continue; // entry 1's prev_hash already is the genesis hash
                }
                let mut v = base.clone();
                edit(&mut v[at]);
                let r = verify(v, Some((hs, &hh)));
                let b = r.first_break.unwrap();
                assert_eq!(b.seq, i64::try_from(at).unwrap() + 1, "edit {k} at {at}");
                assert_eq!(b.kind, BreakKind::Edited, "edit {k} at {at}: {}", b.message);
            }
        }
    }

    #[test]
    fn an_edit_with_rehash_breaks_the_next_link() {
        // Someone edits entry 3 and recomputes its hash: entry 4 no longer follows it.
        let mut v = chain(6);
        v[2].content.action = "forged".into();
        v[2].hash = entry_hash(&v[2].prev_hash, &v[2].content);
        let (hs, hh) = head(&v);
        let b = verify(v, Some((hs, &hh))).first_break.unwrap();
        assert_eq!(b.seq, 4);
        assert_eq!(b.kind, BreakKind::Removed, "{}", b.message);
    }

    #[test]
    fn reorders_are_found() {
        let base = chain(8);
        let (hs, hh) = head(&base);
        // Swap the seq of entries 3 and 6, then read in seq order.
        let mut v = base.clone();
        v[2].seq = 6;
        v[5].seq = 3;
        v.sort_by_key(|e| e.seq);
        let b = verify(v, Some((hs, &hh))).first_break.unwrap();
        assert_eq!((b.seq, b.kind), (3, BreakKind::Reordered), "{}", b.message);
        // Adjacent swap.
        let mut v = base.clone();
        v[0].seq = 2;
        v[1].seq = 1;
        v.sort_by_key(|e| e.seq);
        let b = verify(v, None).first_break.unwrap();
        assert_eq!((b.seq, b.kind), (1, BreakKind::Reordered), "{}", b.message);
        // Adjacent swap further in: entry 5 now sits at seq 4 and follows 4's predecessor? No:
        // it claims entry 4's hash, which comes later -> reordered.
        let mut v = base.clone();
        v[3].seq = 5;
        v[4].seq = 4;
        v.sort_by_key(|e| e.seq);
        let b = verify(v, None).first_break.unwrap();
        assert_eq!((b.seq, b.kind), (4, BreakKind::Reordered), "{}", b.message);
        // Not sorted at all.
        let mut v = base;
        v.swap(1, 2);
        let b = verify(v, None).first_break.unwrap();
        assert_eq!(b.kind, BreakKind::Reordered, "{}", b.message);
    }

    #[test]
    fn removals_are_found() {
        let base = chain(10);
        let (hs, hh) = head(&base);
        // A gap in the middle.
        let mut v = base.clone();
        v.remove(4);
        let b = verify(v, Some((hs, &hh))).first_break.unwrap();
        assert_eq!((b.seq, b.kind), (5, BreakKind::Removed), "{}", b.message);
        // Removed and renumbered: no seq gap, but the link is broken.
        let mut v = base.clone();
        v.remove(4);
        for (i, e) in v.iter_mut().enumerate() {
            e.seq = i64::try_from(i).unwrap() + 1;
        }
        let b = verify(v, None).first_break.unwrap();
        assert_eq!((b.seq, b.kind), (5, BreakKind::Removed), "{}", b.message);
        // The first entry removed.
        let v = base[1..].to_vec();
        let b = verify(v, None).first_break.unwrap();
        assert_eq!((b.seq, b.kind), (1, BreakKind::Removed), "{}", b.message);
        // The tail removed: only the head notices.
        let v = base[..7].to_vec();
        assert!(verify(v.clone(), None).ok());
        let b = verify(v, Some((hs, &hh))).first_break.unwrap();
        assert_eq!((b.seq, b.kind), (8, BreakKind::Removed), "{}", b.message);
        // Everything removed.
        let b = verify(Vec::new(), Some((hs, &hh))).first_break.unwrap();
        assert_eq!((b.seq, b.kind), (1, BreakKind::Removed), "{}", b.message);
    }

    #[test]
    fn a_head_that_does_not_match() {
        let v = chain(3);
        let b = verify(v, Some((3, GENESIS_HASH))).first_break.unwrap();
        assert_eq!((b.seq, b.kind), (3, BreakKind::Edited));
    }

    #[test]
    fn truncation_to_micros() {
        let at = NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_nano_opt(1, 2, 3, 123_456_789)
            .unwrap();
        assert_eq!(truncate_micros(at).nanosecond(), 123_456_000);
    }
}
