#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Table-driven tests of the compliance engine.

use chrono::NaiveDate;
use likeness_control_domain::compliance::evaluate_all;
use likeness_control_domain::{
    AgreementFacts, AssetFacts, ComplianceStatus as S, FaceFacts, FaceStatus, LegalBasis,
    NonApprovedUse, PersonFacts, TenantSettings, UseDecision, evaluate, use_decision,
};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn agreement(id: &str, channels: &[&str], from: &str, until: Option<&str>) -> AgreementFacts {
    AgreementFacts {
        id: id.into(),
        channels: channels.iter().map(|c| c.to_string()).collect(),
        valid_from: d(from),
        valid_until: until.map(d),
        withdrawn_at: None,
        covers_face_matching: true,
        signed_by_guardian: false,
    }
}

fn person(id: &str, agreements: Vec<AgreementFacts>) -> PersonFacts {
    PersonFacts {
        id: id.into(),
        label: format!("Person {id}"),
        never_publish: false,
        date_of_birth: Some(d("1990-05-05")),
        has_guardian: false,
        agreements,
    }
}

fn face(id: &str, status: FaceStatus, person: Option<&str>, identifiable: bool) -> FaceFacts {
    FaceFacts {
        id: id.into(),
        status,
        person_id: person.map(str::to_owned),
        identifiable,
    }
}

fn linked(id: &str, person: &str) -> FaceFacts {
    face(id, FaceStatus::Confirmed, Some(person), true)
}

/// One person "p", linked by a confirmed face, with the given agreements.
fn single(basis: Option<LegalBasis>, agreements: Vec<AgreementFacts>) -> AssetFacts {
    AssetFacts {
        legal_basis: basis,
        faces: vec![linked("f1", "p")],
        persons: vec![person("p", agreements)],
    }
}

const C: Option<LegalBasis> = Some(LegalBasis::Consent);

struct Case {
    name: &'static str,
    facts: AssetFacts,
    channel: &'static str,
    date: &'static str,
    status: S,
    until: Option<&'static str>,
    /// Every reason code, worst first.
    codes: &'static [S],
}

fn check(cases: Vec<Case>, settings: &TenantSettings) {
    let mut failures = Vec::new();
    for c in &cases {
        let v = evaluate(&c.facts, c.channel, d(c.date), settings);
        let codes: Vec<S> = v.reasons.iter().map(|r| r.code).collect();
        if v.status != c.status
            || v.until != c.until.map(d)
            || codes != c.codes
            || v.allowed != c.status.allowed()
            || v.channel != c.channel
        {
            failures.push(format!(
                "{}: got status {} until {:?} codes {:?}; want {} until {:?} codes {:?}\n  {:#?}",
                c.name, v.status, v.until, codes, c.status, c.until, c.codes, v.reasons
            ));
        }
        for r in &v.reasons {
            assert!(!r.message.is_empty(), "{}: empty message", c.name);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn single_person_consent_cases() {
    let web_until = |u: &str| agreement("a1", &["web"], "2026-01-01", Some(u));
    let withdrawn = |w: &str| {
        let mut a = agreement("a1", &["web", "print"], "2026-01-01", None);
        a.withdrawn_at = Some(d(w));
        a
    };
    let cases = vec![
        Case {
            name: "open-ended consent for the channel",
            facts: single(C, vec![agreement("a1", &["web"], "2026-01-01", None)]),
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "channel not covered",
            facts: single(C, vec![agreement("a1", &["web"], "2026-01-01", None)]),
            channel: "print",
            date: "2026-03-01",
            status: S::MissingConsent,
            until: None,
            codes: &[S::MissingConsent],
        },
        Case {
            name: "no agreement at all",
            facts: single(C, vec![]),
            channel: "web",
            date: "2026-03-01",
            status: S::MissingConsent,
            until: None,
            codes: &[S::MissingConsent],
        },
        Case {
            name: "valid_from is inclusive",
            facts: single(C, vec![agreement("a1", &["web"], "2026-03-01", None)]),
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "the day before valid_from",
            facts: single(C, vec![agreement("a1", &["web"], "2026-03-01", None)]),
            channel: "web",
            date: "2026-02-28",
            status: S::MissingConsent,
            until: None,
            codes: &[S::MissingConsent],
        },
        Case {
            name: "far from the end",
            facts: single(C, vec![web_until("2026-12-31")]),
            channel: "web",
            date: "2026-06-01",
            status: S::Approved,
            until: Some("2026-12-31"),
            codes: &[],
        },
        Case {
            name: "31 days before the end: not yet expiring",
            facts: single(C, vec![web_until("2026-12-31")]),
            channel: "web",
            date: "2026-11-30",
            status: S::Approved,
            until: Some("2026-12-31"),
            codes: &[],
        },
        Case {
            name: "30 days before the end: expiring",
            facts: single(C, vec![web_until("2026-12-31")]),
            channel: "web",
            date: "2026-12-01",
            status: S::Expiring,
            until: Some("2026-12-31"),
            codes: &[S::Expiring],
        },
        Case {
            name: "valid_until is inclusive",
            facts: single(C, vec![web_until("2026-12-31")]),
            channel: "web",
            date: "2026-12-31",
            status: S::Expiring,
            until: Some("2026-12-31"),
            codes: &[S::Expiring],
        },
        Case {
            name: "the day after valid_until",
            facts: single(C, vec![web_until("2026-12-31")]),
            channel: "web",
            date: "2027-01-01",
            status: S::Expired,
            until: None,
            codes: &[S::Expired],
        },
        Case {
            name: "withdrawn in the past",
            facts: single(C, vec![withdrawn("2026-02-01")]),
            channel: "web",
            date: "2026-03-01",
            status: S::Withdrawn,
            until: None,
            codes: &[S::Withdrawn],
        },
        Case {
            name: "withdrawn on the day evaluated",
            facts: single(C, vec![withdrawn("2026-03-01")]),
            channel: "print",
            date: "2026-03-01",
            status: S::Withdrawn,
            until: None,
            codes: &[S::Withdrawn],
        },
        Case {
            name: "withdrawal dated in the future, within the notice period",
            facts: single(C, vec![withdrawn("2026-03-10")]),
            channel: "web",
            date: "2026-03-01",
            status: S::Expiring,
            until: Some("2026-03-09"),
            codes: &[S::Expiring],
        },
        Case {
            name: "withdrawal dated far in the future",
            facts: single(C, vec![withdrawn("2027-03-10")]),
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: Some("2027-03-09"),
            codes: &[],
        },
        Case {
            name: "withdrawal of a consent for another channel does not matter",
            facts: single(
                C,
                vec![
                    {
                        let mut a = agreement("a0", &["print"], "2026-01-01", None);
                        a.withdrawn_at = Some(d("2026-02-01"));
                        a
                    },
                    agreement("a1", &["web"], "2026-01-01", None),
                ],
            ),
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "a new consent after a withdrawal",
            facts: single(
                C,
                vec![
                    withdrawn("2026-02-01"),
                    agreement("a2", &["web"], "2026-02-15", None),
                ],
            ),
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "withdrawn after it expired: the expiry ended it",
            facts: single(C, {
                let mut a = agreement("a1", &["web"], "2025-01-01", Some("2025-06-30"));
                a.withdrawn_at = Some(d("2025-09-01"));
                vec![a]
            }),
            channel: "web",
            date: "2026-03-01",
            status: S::Expired,
            until: None,
            codes: &[S::Expired],
        },
        Case {
            name: "old expired consent, later one withdrawn: withdrawn (the latest end)",
            facts: single(
                C,
                vec![
                    agreement("a0", &["web"], "2024-01-01", Some("2024-12-31")),
                    withdrawn("2026-02-01"),
                ],
            ),
            channel: "web",
            date: "2026-03-01",
            status: S::Withdrawn,
            until: None,
            codes: &[S::Withdrawn],
        },
        Case {
            name: "withdrawn long ago, a later consent expired: expired",
            facts: single(
                C,
                vec![
                    withdrawn("2026-01-15"),
                    agreement("a2", &["web"], "2026-02-01", Some("2026-02-20")),
                ],
            ),
            channel: "web",
            date: "2026-03-01",
            status: S::Expired,
            until: None,
            codes: &[S::Expired],
        },
        Case {
            name: "consecutive consents chain: not expiring",
            facts: single(
                C,
                vec![
                    web_until("2026-03-10"),
                    agreement("a2", &["web"], "2026-03-11", Some("2027-03-10")),
                ],
            ),
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: Some("2027-03-10"),
            codes: &[],
        },
        Case {
            name: "a one-day gap breaks the chain",
            facts: single(
                C,
                vec![
                    web_until("2026-03-10"),
                    agreement("a2", &["web"], "2026-03-12", Some("2027-03-10")),
                ],
            ),
            channel: "web",
            date: "2026-03-01",
            status: S::Expiring,
            until: Some("2026-03-10"),
            codes: &[S::Expiring],
        },
        Case {
            name: "the longest of two overlapping consents counts",
            facts: single(
                C,
                vec![
                    web_until("2026-03-10"),
                    agreement("a2", &["web", "print"], "2026-01-01", None),
                ],
            ),
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "no legal basis",
            facts: single(None, vec![agreement("a1", &["web"], "2026-01-01", None)]),
            channel: "web",
            date: "2026-03-01",
            status: S::NoLegalBasis,
            until: None,
            codes: &[S::NoLegalBasis],
        },
    ];
    check(cases, &TenantSettings::default());
}

#[test]
fn faces_persons_and_bases() {
    let ok = || agreement("a", &["web"], "2026-01-01", None);
    let two = |faces: Vec<FaceFacts>, basis| AssetFacts {
        legal_basis: basis,
        faces,
        persons: vec![person("p", vec![ok()]), person("q", vec![ok()])],
    };
    let never = || {
        let mut p = person("n", vec![ok()]);
        p.never_publish = true;
        p
    };
    let mut cases = vec![
        Case {
            name: "group photo, both linked and consenting",
            facts: two(vec![linked("f1", "p"), linked("f2", "q")], C),
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "group photo with one unlinked identifiable face",
            facts: two(
                vec![
                    linked("f1", "p"),
                    linked("f2", "q"),
                    face("f3", FaceStatus::Unknown, None, true),
                ],
                C,
            ),
            channel: "web",
            date: "2026-03-01",
            status: S::UnidentifiedFaces,
            until: None,
            codes: &[S::UnidentifiedFaces],
        },
        Case {
            name: "a suggested face is not linked",
            facts: two(
                vec![
                    linked("f1", "p"),
                    face("f2", FaceStatus::Suggested, Some("q"), true),
                ],
                C,
            ),
            channel: "web",
            date: "2026-03-01",
            status: S::UnidentifiedFaces,
            until: None,
            codes: &[S::UnidentifiedFaces],
        },
        Case {
            name: "a rejected identifiable face still blocks",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![
                    linked("f1", "p"),
                    face("f2", FaceStatus::Rejected, None, true),
                ],
                persons: vec![person("p", vec![ok()])],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::UnidentifiedFaces,
            until: None,
            codes: &[S::UnidentifiedFaces],
        },
        Case {
            name: "an unlinked face that is not identifiable does not block",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![
                    linked("f1", "p"),
                    face("f2", FaceStatus::Unknown, None, false),
                ],
                persons: vec![person("p", vec![ok()])],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "one of two persons lacks consent for print",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![linked("f1", "p"), linked("f2", "q")],
                persons: vec![
                    person(
                        "p",
                        vec![agreement("a", &["web", "print"], "2026-01-01", None)],
                    ),
                    person("q", vec![ok()]),
                ],
            },
            channel: "print",
            date: "2026-03-01",
            status: S::MissingConsent,
            until: None,
            codes: &[S::MissingConsent],
        },
        Case {
            name: "consent, no faces, no persons",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![],
                persons: vec![],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::PersonsNotSpecified,
            until: None,
            codes: &[S::PersonsNotSpecified],
        },
        Case {
            name: "consent, only unlinked faces",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![face("f1", FaceStatus::Unknown, None, true)],
                persons: vec![],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::UnidentifiedFaces,
            until: None,
            codes: &[S::UnidentifiedFaces, S::PersonsNotSpecified],
        },
        Case {
            name: "a person tagged without a face counts",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![],
                persons: vec![person("p", vec![ok()])],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "a linked person missing from the facts has no consent",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![linked("f1", "ghost")],
                persons: vec![],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::MissingConsent,
            until: None,
            codes: &[S::MissingConsent],
        },
        Case {
            name: "never publish beats a valid consent",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![linked("f1", "n")],
                persons: vec![never()],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::NeverPublish,
            until: None,
            codes: &[S::NeverPublish],
        },
        Case {
            name: "no legal basis and an unlinked face: both reported",
            facts: AssetFacts {
                legal_basis: None,
                faces: vec![face("f1", FaceStatus::Unknown, None, true)],
                persons: vec![],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::NoLegalBasis,
            until: None,
            codes: &[S::NoLegalBasis, S::UnidentifiedFaces],
        },
        Case {
            name: "exempt: no identifiable persons, none identifiable",
            facts: AssetFacts {
                legal_basis: Some(LegalBasis::ExemptNoIdentifiablePersons),
                faces: vec![face("f1", FaceStatus::Unknown, None, false)],
                persons: vec![],
            },
            channel: "print",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "exempt: no identifiable persons, but one is",
            facts: AssetFacts {
                legal_basis: Some(LegalBasis::ExemptNoIdentifiablePersons),
                faces: vec![
                    face("f1", FaceStatus::Unknown, None, false),
                    face("f2", FaceStatus::Unknown, None, true),
                    linked("f3", "p"),
                ],
                persons: vec![person("p", vec![])],
            },
            channel: "print",
            date: "2026-03-01",
            status: S::NoLegalBasis,
            until: None,
            codes: &[S::NoLegalBasis, S::NoLegalBasis],
        },
        Case {
            name: "minor with a consent not signed by a guardian",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![linked("f1", "m")],
                persons: vec![PersonFacts {
                    date_of_birth: Some(d("2012-04-01")),
                    ..person("m", vec![ok()])
                }],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::MinorWithoutGuardianConsent,
            until: None,
            codes: &[S::MinorWithoutGuardianConsent],
        },
        Case {
            name: "minor with a consent signed by a guardian",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![linked("f1", "m")],
                persons: vec![PersonFacts {
                    date_of_birth: Some(d("2012-04-01")),
                    has_guardian: true,
                    ..person(
                        "m",
                        vec![AgreementFacts {
                            signed_by_guardian: true,
                            ..ok()
                        }],
                    )
                }],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "turned 18 on the day: own consent suffices",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![linked("f1", "m")],
                persons: vec![PersonFacts {
                    date_of_birth: Some(d("2008-03-01")),
                    ..person("m", vec![ok()])
                }],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        },
        Case {
            name: "born 29 Feb 2008: still a minor on 28 Feb 2026",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![linked("f1", "m")],
                persons: vec![PersonFacts {
                    date_of_birth: Some(d("2008-02-29")),
                    ..person("m", vec![ok()])
                }],
            },
            channel: "web",
            date: "2026-02-28",
            status: S::MinorWithoutGuardianConsent,
            until: None,
            codes: &[S::MinorWithoutGuardianConsent],
        },
        Case {
            name: "minor whose only consent is expired: expired, not guardian",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![linked("f1", "m")],
                persons: vec![PersonFacts {
                    date_of_birth: Some(d("2012-04-01")),
                    ..person(
                        "m",
                        vec![agreement("a", &["web"], "2025-01-01", Some("2025-12-31"))],
                    )
                }],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::Expired,
            until: None,
            codes: &[S::Expired],
        },
        Case {
            name: "mixed: withdrawn, expired, expiring, missing; worst first",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![
                    linked("f1", "w"),
                    linked("f2", "e"),
                    linked("f3", "x"),
                    linked("f4", "m"),
                ],
                persons: vec![
                    person(
                        "e",
                        vec![agreement("a", &["web"], "2025-01-01", Some("2026-01-01"))],
                    ),
                    person(
                        "x",
                        vec![agreement("a", &["web"], "2025-01-01", Some("2026-03-05"))],
                    ),
                    person("w", {
                        let mut a = ok();
                        a.withdrawn_at = Some(d("2026-02-01"));
                        vec![a]
                    }),
                    person("m", vec![]),
                ],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::Withdrawn,
            until: None,
            codes: &[S::Withdrawn, S::MissingConsent, S::Expired, S::Expiring],
        },
        Case {
            name: "two persons expiring: until is the earliest end",
            facts: AssetFacts {
                legal_basis: C,
                faces: vec![linked("f1", "p"), linked("f2", "q")],
                persons: vec![
                    person(
                        "p",
                        vec![agreement("a", &["web"], "2025-01-01", Some("2026-03-20"))],
                    ),
                    person(
                        "q",
                        vec![agreement("b", &["web"], "2025-01-01", Some("2026-03-05"))],
                    ),
                ],
            },
            channel: "web",
            date: "2026-03-01",
            status: S::Expiring,
            until: Some("2026-03-05"),
            codes: &[S::Expiring, S::Expiring],
        },
    ];
    // Bases other than consent: no per-person consent; never publish always applies; unlinked
    // faces block only under contract and legitimate interest.
    let non_consent: &[(LegalBasis, bool)] = &[
        (LegalBasis::Contract, true),
        (LegalBasis::LegitimateInterest, true),
        (LegalBasis::ExternalAgreement, false),
        (LegalBasis::PublicInterest, false),
        (LegalBasis::ExemptHistorical, false),
        (LegalBasis::ExemptArtisticJournalistic, false),
    ];
    for &(basis, faces_block) in non_consent {
        cases.push(Case {
            name: "non-consent basis, person without any consent",
            facts: single(Some(basis), vec![]),
            channel: "social",
            date: "2026-03-01",
            status: S::Approved,
            until: None,
            codes: &[],
        });
        cases.push(Case {
            name: "non-consent basis, never-publish person",
            facts: AssetFacts {
                legal_basis: Some(basis),
                faces: vec![linked("f1", "n")],
                persons: vec![never()],
            },
            channel: "print",
            date: "2026-03-01",
            status: S::NeverPublish,
            until: None,
            codes: &[S::NeverPublish],
        });
        cases.push(Case {
            name: "non-consent basis, an unlinked identifiable face",
            facts: AssetFacts {
                legal_basis: Some(basis),
                faces: vec![face("f1", FaceStatus::Unknown, None, true)],
                persons: vec![],
            },
            channel: "web",
            date: "2026-03-01",
            status: if faces_block {
                S::UnidentifiedFaces
            } else {
                S::Approved
            },
            until: None,
            codes: if faces_block {
                &[S::UnidentifiedFaces]
            } else {
                &[]
            },
        });
    }
    check(cases, &TenantSettings::default());
}

#[test]
fn notice_period_and_age_threshold_come_from_the_settings() {
    let facts = single(
        C,
        vec![agreement("a", &["web"], "2026-01-01", Some("2026-03-31"))],
    );
    let date = d("2026-03-01");
    let mut s = TenantSettings::default();
    assert_eq!(evaluate(&facts, "web", date, &s).status, S::Expiring);
    s.notice_days = 29;
    assert_eq!(evaluate(&facts, "web", date, &s).status, S::Approved);
    s.notice_days = 30;
    assert_eq!(evaluate(&facts, "web", date, &s).status, S::Expiring);
    s.notice_days = 10;
    assert_eq!(evaluate(&facts, "web", date, &s).status, S::Approved);
    s.notice_days = 0;
    assert_eq!(
        evaluate(&facts, "web", d("2026-03-30"), &s).status,
        S::Approved
    );
    assert_eq!(
        evaluate(&facts, "web", d("2026-03-31"), &s).status,
        S::Expiring
    );

    let mut teen = single(C, vec![agreement("a", &["web"], "2026-01-01", None)]);
    teen.persons[0].date_of_birth = Some(d("2010-01-01")); // 16 on 2026-03-01
    let mut s = TenantSettings::default();
    assert_eq!(
        evaluate(&teen, "web", date, &s).status,
        S::MinorWithoutGuardianConsent
    );
    s.age_threshold = 16;
    assert_eq!(evaluate(&teen, "web", date, &s).status, S::Approved);
}

#[test]
fn reasons_name_the_person_face_and_agreement() {
    let mut facts = single(C, vec![]);
    facts.persons[0].label = "Kari Nordmann".into();
    facts
        .faces
        .push(face("f9", FaceStatus::Unknown, None, true));
    let v = evaluate(&facts, "print", d("2026-03-01"), &TenantSettings::default());
    let missing = v
        .reasons
        .iter()
        .find(|r| r.code == S::MissingConsent)
        .unwrap();
    assert_eq!(missing.person_id.as_deref(), Some("p"));
    assert!(
        missing.message.contains("Kari Nordmann"),
        "{}",
        missing.message
    );
    let face = v
        .reasons
        .iter()
        .find(|r| r.code == S::UnidentifiedFaces)
        .unwrap();
    assert_eq!(face.face_id.as_deref(), Some("f9"));

    let mut a = agreement("agr-7", &["web"], "2026-01-01", None);
    a.withdrawn_at = Some(d("2026-02-02"));
    let v = evaluate(
        &single(C, vec![a]),
        "web",
        d("2026-03-01"),
        &TenantSettings::default(),
    );
    assert_eq!(v.reasons[0].agreement_id.as_deref(), Some("agr-7"));
    assert!(
        v.reasons[0].message.contains("2026-02-02"),
        "{}",
        v.reasons[0].message
    );

    let v = evaluate(
        &single(
            C,
            vec![agreement("a", &["web", "social"], "2026-01-01", None)],
        ),
        "print",
        d("2026-03-01"),
        &TenantSettings::default(),
    );
    assert!(
        v.reasons[0].message.contains("social, web"),
        "{}",
        v.reasons[0].message
    );
}

#[test]
fn verdict_json_shape() {
    let v = evaluate(
        &single(
            C,
            vec![agreement("a", &["web"], "2026-01-01", Some("2026-03-10"))],
        ),
        "web",
        d("2026-03-01"),
        &TenantSettings::default(),
    );
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["status"], "expiring");
    assert_eq!(j["allowed"], true);
    assert_eq!(j["until"], "2026-03-10");
    assert_eq!(j["reasons"][0]["code"], "expiring");
    assert_eq!(j["reasons"][0]["person_id"], "p");
    assert!(j["reasons"][0].get("face_id").is_none());
}

#[test]
fn evaluate_all_covers_every_channel() {
    let facts = single(
        C,
        vec![agreement("a", &["web", "social"], "2026-01-01", None)],
    );
    let vs = evaluate_all(&facts, d("2026-03-01"), &TenantSettings::default());
    let got: Vec<(&str, S)> = vs.iter().map(|v| (v.channel.as_str(), v.status)).collect();
    assert_eq!(
        got,
        [
            ("web", S::Approved),
            ("print", S::MissingConsent),
            ("social", S::Approved),
            ("internal", S::MissingConsent)
        ]
    );
}

#[test]
fn use_decisions() {
    let s = TenantSettings::default();
    let ok = evaluate(
        &single(Some(LegalBasis::Contract), vec![]),
        "web",
        d("2026-03-01"),
        &s,
    );
    let bad = evaluate(&single(None, vec![]), "web", d("2026-03-01"), &s);
    for p in NonApprovedUse::ALL {
        assert_eq!(use_decision(&ok, *p, false), UseDecision::Allow);
    }
    let table = [
        (NonApprovedUse::Block, true, UseDecision::Deny),
        (NonApprovedUse::Block, false, UseDecision::Deny),
        (NonApprovedUse::Warn, false, UseDecision::Warn),
        (NonApprovedUse::AllowWithPermission, true, UseDecision::Warn),
        (
            NonApprovedUse::AllowWithPermission,
            false,
            UseDecision::Deny,
        ),
    ];
    for (policy, perm, want) in table {
        assert_eq!(use_decision(&bad, policy, perm), want, "{policy} {perm}");
    }
}

/// Exhaustive sweep over every day of two years for a single consent: the status follows from
/// the dates alone, and the expiring window is exactly `notice_days` + 1 days long.
#[test]
fn day_by_day_sweep() {
    let s = TenantSettings::default();
    for withdrawn in [None, Some("2026-08-15"), Some("2025-06-01")] {
        let mut a = agreement("a", &["web"], "2026-02-01", Some("2026-10-31"));
        a.withdrawn_at = withdrawn.map(d);
        let facts = single(C, vec![a.clone()]);
        let end = match a.withdrawn_at {
            Some(w) => a.valid_until.unwrap().min(w.pred_opt().unwrap()),
            None => a.valid_until.unwrap(),
        };
        let mut day = d("2025-12-01");
        let mut expiring_days = 0;
        while day <= d("2027-02-01") {
            let v = evaluate(&facts, "web", day, &s);
            let expired_on = a.valid_until.unwrap().succ_opt().unwrap();
            let withdrawn_by_now = a.withdrawn_at.is_some_and(|w| w <= day && w <= expired_on);
            let want = if withdrawn_by_now {
                S::Withdrawn
            } else if day < a.valid_from {
                S::MissingConsent
            } else if day > end {
                S::Expired
            } else if (end - day).num_days() <= 30 {
                S::Expiring
            } else {
                S::Approved
            };
            assert_eq!(
                v.status, want,
                "withdrawn {withdrawn:?} on {day}: {:?}",
                v.reasons
            );
            if v.status == S::Expiring {
                expiring_days += 1;
                assert_eq!(v.until, Some(end));
            }
            day = day.succ_opt().unwrap();
        }
        if a.withdrawn_at.is_none_or(|w| w > a.valid_from) {
            assert_eq!(expiring_days, 31, "withdrawn {withdrawn:?}");
        }
    }
}

#[test]
fn a_face_of_an_erased_person_blocks_every_channel_under_every_basis() {
    let s = TenantSettings::default();
    for basis in LegalBasis::ALL.iter().copied().map(Some).chain([None]) {
        for identifiable in [true, false] {
            let facts = AssetFacts {
                legal_basis: basis,
                faces: vec![face("f1", FaceStatus::Erased, None, identifiable)],
                persons: vec![],
            };
            for v in evaluate_all(&facts, d("2026-06-01"), &s) {
                assert!(!v.allowed, "{basis:?} {identifiable}: {v:?}");
                let erased: Vec<_> = v
                    .reasons
                    .iter()
                    .filter(|r| r.face_id.as_deref() == Some("f1") && r.code == S::NeverPublish)
                    .collect();
                assert_eq!(erased.len(), 1, "{basis:?}: {v:?}");
                // Not counted a second time as an unidentified face.
                assert!(
                    v.reasons.iter().all(|r| r.code != S::UnidentifiedFaces),
                    "{v:?}"
                );
            }
        }
    }
    // The face status reads and writes as "erased".
    assert_eq!(FaceStatus::Erased.as_str(), "erased");
    assert_eq!("erased".parse::<FaceStatus>().unwrap(), FaceStatus::Erased);
}
