//! The compliance engine: may an asset be used in a channel on a date?
//!
//! [`evaluate`] takes the facts about one asset ([`AssetFacts`]: its legal basis, its faces,
//! the persons appearing in it and their agreements), a channel, a date and the tenant's
//! settings, and returns a [`Verdict`]: the overall status, whether the asset may be used, until
//! when, and every reason.
//!
//! # Rules
//! - **No legal basis** set: `no_legal_basis`. The other checks still run and add their reasons
//!   (faces and never-publish as under `consent`; consents are not checked).
//! - **Never publish**: any person appearing with the flag blocks, under every basis.
//! - **Erased persons**: a face with status `erased` (a person erased under Art. 17 on a file
//!   the tenant's policy hides) blocks under every basis, as `never_publish`.
//! - **Unidentified faces**: a face is *linked* when its status is `confirmed` and it has a
//!   person; a suggestion is not a decision, so `unknown`, `suggested` and `rejected` faces are
//!   unlinked. An unlinked face marked identifiable blocks (`unidentified_faces`, one reason per
//!   face) under the bases that rest on the individual persons shown: `consent`, `contract`,
//!   `legitimate_interest` (and when no basis is set). Under `external_agreement`,
//!   `public_interest`, `exempt_historical` and `exempt_artistic_journalistic` the basis covers
//!   whoever is shown, so unlinked faces do not block (never-publish persons still do).
//!   `exempt_no_identifiable_persons` does not hold when any face is identifiable, linked or not:
//!   each such face gives a `no_legal_basis` reason.
//! - Under `consent` only:
//!   - **Persons not specified**: no person appears in the asset.
//!   - For every person appearing, an agreement must be *usable* on the date: it lists the
//!     channel, `valid_from <= date <= valid_until` (both inclusive; no `valid_until` = open
//!     ended) and it is not withdrawn on the date (`withdrawn_at <= date` means withdrawn from
//!     that day on; a withdrawal dated later ends the agreement the day before). A person who is
//!     a minor on the date (age below the tenant's `age_threshold`; no date of birth = adult)
//!     needs an agreement `signed_by_guardian`.
//!   - A person without a usable agreement gives one reason: `minor_without_guardian_consent`
//!     if a usable-but-for-the-guardian agreement exists; otherwise of the agreements covering
//!     the channel that have ended, the one that ended last decides: `withdrawn` or `expired`
//!     (a tie counts as `withdrawn`); otherwise `missing_consent` (no agreement, none covering
//!     the channel, or none started yet).
//!   - A person whose coverage (the usable agreements, chained through agreements that start
//!     by the day after the previous one ends) ends within `notice_days` of the date
//!     (`end <= date + notice_days`) gives `expiring`: still allowed.
//! - The overall status is the worst reason by [`ComplianceStatus`]'s declaration order
//!   (`no_legal_basis` worst … `expiring`), `approved` without reasons. `allowed` is true for
//!   `approved` and `expiring`. `until` is the last day the asset stays allowed under these
//!   facts (the earliest coverage end of all persons under `consent`; `None` when allowed
//!   without an end, or not allowed).

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::enums::{ComplianceStatus, FaceStatus, LegalBasis, NonApprovedUse};
use crate::minor;
use crate::settings::TenantSettings;

/// An agreement (consent record) of a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementFacts {
    /// The agreement's ID.
    pub id: String,
    /// The channels it covers.
    pub channels: Vec<String>,
    /// First day it is valid.
    pub valid_from: NaiveDate,
    /// Last day it is valid (inclusive); `None` = open ended.
    pub valid_until: Option<NaiveDate>,
    /// The (UTC) day it was withdrawn; withdrawn from that day on.
    pub withdrawn_at: Option<NaiveDate>,
    /// Whether it covers biometric face matching.
    pub covers_face_matching: bool,
    /// Whether a guardian signed it.
    pub signed_by_guardian: bool,
}

/// A person appearing in the asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonFacts {
    /// The person's ID.
    pub id: String,
    /// How to name the person in messages (name or pseudonym, as the reader may see).
    pub label: String,
    /// Must never be published.
    pub never_publish: bool,
    /// Date of birth, if known (unknown = treated as an adult).
    pub date_of_birth: Option<NaiveDate>,
    /// Whether a guardian is on record (only used in messages).
    pub has_guardian: bool,
    /// The person's agreements (all of them, any channel, withdrawn ones included).
    pub agreements: Vec<AgreementFacts>,
}

/// A face on the asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaceFacts {
    /// The face's ID.
    pub id: String,
    /// Its status.
    pub status: FaceStatus,
    /// The linked (or suggested) person.
    pub person_id: Option<String>,
    /// Whether the face is identifiable.
    pub identifiable: bool,
}

impl FaceFacts {
    /// The person this face is linked to: only a confirmed face links.
    pub fn linked_person(&self) -> Option<&str> {
        match self.status {
            FaceStatus::Confirmed => self.person_id.as_deref(),
            _ => None,
        }
    }
}

/// Everything the engine needs about one asset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AssetFacts {
    /// The legal basis, if set.
    pub legal_basis: Option<LegalBasis>,
    /// Its faces.
    pub faces: Vec<FaceFacts>,
    /// The persons appearing in it (at least those linked by a confirmed face; a linked person
    /// missing here is evaluated as a person without any agreement).
    pub persons: Vec<PersonFacts>,
}

/// One reason for a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reason {
    /// The status this reason leads to.
    pub code: ComplianceStatus,
    /// The person concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    /// The face concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_id: Option<String>,
    /// The agreement concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_id: Option<String>,
    /// A readable explanation.
    pub message: String,
}

/// The compliance of one asset for one channel on one date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Verdict {
    /// The channel evaluated.
    pub channel: String,
    /// The date evaluated.
    pub date: NaiveDate,
    /// The overall status: the worst of the reasons, `approved` if none.
    pub status: ComplianceStatus,
    /// Whether the asset may be used (`approved` or `expiring`).
    pub allowed: bool,
    /// The last day the asset stays allowed under the current facts (`None`: no end, or not
    /// allowed).
    pub until: Option<NaiveDate>,
    /// Every reason, worst first.
    pub reasons: Vec<Reason>,
}

fn reason(code: ComplianceStatus, message: String) -> Reason {
    Reason {
        code,
        person_id: None,
        face_id: None,
        agreement_id: None,
        message,
    }
}

/// The last day an agreement is in force, ignoring the channel (`None` = open ended).
fn effective_end(a: &AgreementFacts) -> Option<NaiveDate> {
    let by_withdrawal = a.withdrawn_at.and_then(|w| w.pred_opt());
    match (a.valid_until, by_withdrawal) {
        (Some(u), Some(w)) => Some(u.min(w)),
        (u, None) => u,
        (None, w) => w,
    }
}

fn in_force_on(a: &AgreementFacts, day: NaiveDate) -> bool {
    a.valid_from <= day && effective_end(a).is_none_or(|e| e >= day)
}

fn covers(a: &AgreementFacts, channel: &str) -> bool {
    a.channels.iter().any(|c| c == channel)
}

/// `None` = open ended; ordering such that open ended is the latest.
fn later(a: Option<NaiveDate>, b: Option<NaiveDate>) -> Option<NaiveDate> {
    match (a, b) {
        (None, _) | (_, None) => None,
        (Some(x), Some(y)) => Some(x.max(y)),
    }
}

enum PersonOutcome {
    /// Covered until the given day (`None` = open ended), by the given agreement.
    Covered(Option<NaiveDate>, String),
    Blocked(Reason),
}

fn evaluate_person(
    p: &PersonFacts,
    channel: &str,
    date: NaiveDate,
    settings: &TenantSettings,
) -> PersonOutcome {
    let is_minor = p
        .date_of_birth
        .is_some_and(|dob| minor::is_minor(dob, date, settings.age_threshold));
    let usable_on = |a: &AgreementFacts, day: NaiveDate| {
        covers(a, channel)
            && in_force_on(a, day)
            && (a.signed_by_guardian
                || !p
                    .date_of_birth
                    .is_some_and(|dob| minor::is_minor(dob, day, settings.age_threshold)))
    };
    let blocked = |code, agreement: Option<&AgreementFacts>, message: String| {
        PersonOutcome::Blocked(Reason {
            code,
            person_id: Some(p.id.clone()),
            face_id: None,
            agreement_id: agreement.map(|a| a.id.clone()),
            message,
        })
    };
    // The usable agreement that lasts longest today.
    let mut best: Option<&AgreementFacts> = None;
    for a in p.agreements.iter().filter(|a| usable_on(a, date)) {
        best = match best {
            Some(b) if later(effective_end(b), effective_end(a)) == effective_end(b) => Some(b),
            _ => Some(a),
        };
    }
    if let Some(b) = best {
        // Chain through agreements that continue the coverage without a gap.
        let mut end = effective_end(b);
        let mut by = b.id.clone();
        for _ in 0..p.agreements.len() {
            let Some(e) = end else { break };
            let Some(next_day) = e.succ_opt() else { break };
            let next = p.agreements.iter().filter(|a| usable_on(a, next_day)).fold(
                None::<&AgreementFacts>,
                |acc, a| match acc {
                    Some(x) if later(effective_end(x), effective_end(a)) == effective_end(x) => {
                        Some(x)
                    }
                    _ => Some(a),
                },
            );
            match next {
                Some(n) => {
                    end = effective_end(n);
                    by = n.id.clone();
                }
                None => break,
            }
        }
        return PersonOutcome::Covered(end, by);
    }
    let covering: Vec<&AgreementFacts> =
        p.agreements.iter().filter(|a| covers(a, channel)).collect();
    if covering.is_empty() {
        if p.agreements.is_empty() {
            return blocked(
                ComplianceStatus::MissingConsent,
                None,
                format!("missing consent: {} has no consent on record", p.label),
            );
        }
        let mut chans: Vec<&str> = p
            .agreements
            .iter()
            .flat_map(|a| a.channels.iter().map(String::as_str))
            .collect();
        chans.sort_unstable();
        chans.dedup();
        return blocked(
            ComplianceStatus::MissingConsent,
            None,
            format!(
                "missing consent: {}'s consents do not cover channel {channel} (they cover {})",
                p.label,
                chans.join(", ")
            ),
        );
    }
    if is_minor && let Some(a) = covering.iter().find(|a| in_force_on(a, date)) {
        return blocked(
            ComplianceStatus::MinorWithoutGuardianConsent,
            Some(a),
            format!(
                "{} is a minor on {date} (under {}) and no consent for {channel} is signed by a guardian{}",
                p.label,
                settings.age_threshold,
                if p.has_guardian {
                    ""
                } else {
                    "; no guardian is on record"
                }
            ),
        );
    }
    // Agreements that have ended by `date`, with the day they ended and how.
    let mut ended: Option<(NaiveDate, bool, &AgreementFacts)> = None;
    for a in &covering {
        let expired_on = a
            .valid_until
            .and_then(|u| u.succ_opt())
            .filter(|d| *d <= date);
        let withdrawn_on = a.withdrawn_at.filter(|w| *w <= date);
        let event = match (expired_on, withdrawn_on) {
            (Some(x), Some(w)) if w <= x => Some((w, true)),
            (Some(x), _) => Some((x, false)),
            (None, Some(w)) => Some((w, true)),
            (None, None) => None,
        };
        if let Some((day, withdrawn)) = event {
            let replace = match ended {
                None => true,
                Some((d, w, _)) => day > d || (day == d && withdrawn && !w),
            };
            if replace {
                ended = Some((day, withdrawn, a));
            }
        }
    }
    match ended {
        Some((day, true, a)) => blocked(
            ComplianceStatus::Withdrawn,
            Some(a),
            format!("{} withdrew the consent for {channel} on {day}", p.label),
        ),
        Some((day, false, a)) => blocked(
            ComplianceStatus::Expired,
            Some(a),
            format!(
                "{}'s consent for {channel} expired: it was valid until {}",
                p.label,
                day.pred_opt().unwrap_or(day)
            ),
        ),
        None => {
            let starts = covering
                .iter()
                .map(|a| a.valid_from)
                .filter(|d| *d > date)
                .min();
            let message = match starts {
                Some(s) => format!(
                    "missing consent: {}'s consent for {channel} starts on {s}",
                    p.label
                ),
                None => format!("missing consent: {} has no consent for {channel}", p.label),
            };
            blocked(ComplianceStatus::MissingConsent, None, message)
        }
    }
}

/// Evaluates one asset for one channel on one date. See the module documentation for the rules.
pub fn evaluate(
    facts: &AssetFacts,
    channel: &str,
    date: NaiveDate,
    settings: &TenantSettings,
) -> Verdict {
    let mut reasons: Vec<Reason> = Vec::new();
    let basis = facts.legal_basis;
    if basis.is_none() {
        reasons.push(reason(
            ComplianceStatus::NoLegalBasis,
            "no legal basis is set for this asset".to_owned(),
        ));
    }

    // Persons appearing: the given ones, then any linked by a face but missing from the list.
    let mut persons: Vec<PersonFacts> = Vec::new();
    for p in &facts.persons {
        if !persons.iter().any(|q| q.id == p.id) {
            persons.push(p.clone());
        }
    }
    for f in &facts.faces {
        if let Some(pid) = f.linked_person()
            && !persons.iter().any(|q| q.id == pid)
        {
            persons.push(PersonFacts {
                id: pid.to_owned(),
                label: format!("person {pid}"),
                never_publish: false,
                date_of_birth: None,
                has_guardian: false,
                agreements: Vec::new(),
            });
        }
    }

    for p in persons.iter().filter(|p| p.never_publish) {
        reasons.push(Reason {
            person_id: Some(p.id.clone()),
            ..reason(
                ComplianceStatus::NeverPublish,
                format!("{} must never be published", p.label),
            )
        });
    }

    // The face of an erased person blocks under every basis: the person asked for their data
    // to be erased and the tenant chose to hide the files they appear in.
    for f in facts
        .faces
        .iter()
        .filter(|f| f.status == FaceStatus::Erased)
    {
        reasons.push(Reason {
            face_id: Some(f.id.clone()),
            ..reason(
                ComplianceStatus::NeverPublish,
                format!(
                    "face {} is of a person whose data was erased: the file is hidden",
                    f.id
                ),
            )
        });
    }

    match basis {
        Some(LegalBasis::ExemptNoIdentifiablePersons) => {
            for f in facts
                .faces
                .iter()
                .filter(|f| f.identifiable && f.status != FaceStatus::Erased)
            {
                reasons.push(Reason {
                    face_id: Some(f.id.clone()),
                    person_id: f.linked_person().map(str::to_owned),
                    ..reason(
                        ComplianceStatus::NoLegalBasis,
                        format!(
                            "legal basis exempt_no_identifiable_persons does not hold: face {} is identifiable",
                            f.id
                        ),
                    )
                });
            }
        }
        None => unidentified(facts, &mut reasons),
        Some(b) if b.unidentified_faces_block() => unidentified(facts, &mut reasons),
        Some(_) => {}
    }

    let mut until: Option<NaiveDate> = None;
    let mut bounded = false;
    if basis == Some(LegalBasis::Consent) {
        if persons.is_empty() {
            reasons.push(reason(
                ComplianceStatus::PersonsNotSpecified,
                "consent is required but no person is linked to this asset".to_owned(),
            ));
        }
        let horizon = date.checked_add_days(Days::new(u64::from(settings.notice_days)));
        for p in &persons {
            match evaluate_person(p, channel, date, settings) {
                PersonOutcome::Blocked(r) => reasons.push(r),
                PersonOutcome::Covered(end, by) => {
                    if let Some(e) = end {
                        until = Some(if bounded {
                            until.map_or(e, |u| u.min(e))
                        } else {
                            e
                        });
                        bounded = true;
                        if horizon.is_none_or(|h| e <= h) {
                            reasons.push(Reason {
                                person_id: Some(p.id.clone()),
                                agreement_id: Some(by),
                                ..reason(
                                    ComplianceStatus::Expiring,
                                    format!(
                                        "{}'s consent for {channel} ends after {e} (within {} days)",
                                        p.label, settings.notice_days
                                    ),
                                )
                            });
                        }
                    }
                }
            }
        }
    }

    reasons.sort_by_key(|r| r.code.severity());
    let status = reasons
        .first()
        .map_or(ComplianceStatus::Approved, |r| r.code);
    let allowed = status.allowed();
    Verdict {
        channel: channel.to_owned(),
        date,
        status,
        allowed,
        until: if allowed { until } else { None },
        reasons,
    }
}

fn unidentified(facts: &AssetFacts, reasons: &mut Vec<Reason>) {
    for f in facts
        .faces
        .iter()
        .filter(|f| f.identifiable && f.linked_person().is_none() && f.status != FaceStatus::Erased)
    {
        reasons.push(Reason {
            face_id: Some(f.id.clone()),
            ..reason(
                ComplianceStatus::UnidentifiedFaces,
                format!(
                    "face {} is identifiable but not linked to a person (status {})",
                    f.id, f.status
                ),
            )
        });
    }
}

/// Evaluates one asset for every channel of the tenant.
pub fn evaluate_all(
    facts: &AssetFacts,
    date: NaiveDate,
    settings: &TenantSettings,
) -> Vec<Verdict> {
    settings
        .channels
        .iter()
        .map(|c| evaluate(facts, c, date, settings))
        .collect()
}

/// What a user may do with an asset, given its verdict, the tenant's policy and whether the
/// user's role has `use_unapproved_files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UseDecision {
    /// The asset is allowed.
    Allow,
    /// Not allowed, but the policy lets the user go on after a warning.
    Warn,
    /// Not allowed and the user may not use it.
    Deny,
}

/// Decides whether a user may use an asset (see [`UseDecision`]).
///
/// - allowed verdict: `allow`;
/// - policy `block`: `deny`;
/// - policy `warn`: `warn`;
/// - policy `allow_with_permission`: `warn` with the permission, else `deny`.
pub fn use_decision(
    verdict: &Verdict,
    policy: NonApprovedUse,
    has_permission: bool,
) -> UseDecision {
    if verdict.allowed {
        return UseDecision::Allow;
    }
    match policy {
        NonApprovedUse::Block => UseDecision::Deny,
        NonApprovedUse::Warn => UseDecision::Warn,
        NonApprovedUse::AllowWithPermission if has_permission => UseDecision::Warn,
        NonApprovedUse::AllowWithPermission => UseDecision::Deny,
    }
}
