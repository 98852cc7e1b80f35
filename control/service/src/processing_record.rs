//! The record of processing activities (GDPR Art. 30) of a tenant, generated from what the
//! control plane knows: purposes (the tenant's channels and face matching), categories of
//! persons (minors counted today) and of data (biometric templates included), recipients
//! (webhook endpoints' hosts, share links, the CMS), retention (the rights policy), the security
//! measures, and the face matcher's error rates at the configured threshold as measured by the
//! accuracy bench (`bench/results/identify.json`, read at build time). As JSON and as one
//! self-contained, printable HTML page, to start a DPIA from. Read: `read_audit` or
//! `manage_settings`.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use likeness_control_domain::rights::RightsSettings;
use serde::Serialize;
use utoipa::ToSchema;

use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::schema::{
    agreements, assets, faces, persons, publications, share_links, tenants, webhook_endpoints,
};

/// The schema of the JSON form.
pub const SCHEMA: &str = "likeness.processing_record/1";
/// The bench result the matcher's error rates come from (repository path).
pub const BENCH_FILE: &str = "bench/results/identify.json";
const BENCH_JSON: &str = include_str!("../../../bench/results/identify.json");
/// The date the bench result was recorded (its commit in the repository).
pub const BENCH_DATE: &str = "2026-11-23";

/// A purpose of the processing.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Purpose {
    /// Short name.
    pub name: String,
    /// What is done and why.
    pub description: String,
    /// The legal bases it rests on.
    pub legal_basis: String,
}

/// The categories of persons whose data is processed.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct PersonCategories {
    /// Persons in the register (not erased, not deleted).
    pub persons: i64,
    /// Of those, minors today (younger than the tenant's age threshold; birth date known).
    pub minors: i64,
    /// The tenant's age threshold.
    pub age_threshold: u32,
    /// Persons with a guardian recorded.
    pub with_guardian: i64,
    /// Erased persons (pseudonymous tombstones only).
    pub erased: i64,
    /// The categories in words.
    pub description: Vec<String>,
}

/// A category of personal data.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct DataCategory {
    /// Short name.
    pub name: String,
    /// What it contains.
    pub description: String,
    /// A special category (Art. 9: biometric data for the purpose of identifying a person).
    pub special_category: bool,
    /// How many records hold it now.
    pub count: i64,
}

/// The recipients of the data.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Recipients {
    /// Hosts of the tenant's webhook endpoints (the CMS integrations), enabled or not.
    pub webhook_hosts: Vec<String>,
    /// Share links that serve files now (neither revoked nor expired).
    pub share_links_active: i64,
    /// Share links ever created.
    pub share_links_total: i64,
    /// Places where a CMS recorded it published a file and has not removed it.
    pub publications_active: i64,
    /// The recipients in words.
    pub description: Vec<String>,
}

/// One retention rule.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct RetentionRule {
    /// What is kept.
    pub data: String,
    /// For how long, in words.
    pub period: String,
}

/// The retention of the data: the tenant's rights policy and the rules it implies.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Retention {
    /// The tenant's rights policy.
    pub policy: RightsSettings,
    /// The rules in words.
    pub rules: Vec<RetentionRule>,
}

/// The face matcher's measured error rates at the configured threshold.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct MatcherRates {
    /// The similarity threshold the matcher suggests persons at (its configured default).
    pub threshold: f64,
    /// The bench row used (the nearest measured threshold).
    pub measured_threshold: f64,
    /// Share of strangers (persons not enrolled) for whom a person was suggested anyway.
    pub false_suggestion_rate: f64,
    /// Share of enrolled persons' faces for whom the wrong person was suggested.
    pub wrong_person_rate: f64,
    /// Share of enrolled persons' faces for whom the right person was suggested.
    pub right_person_rate: f64,
    /// Rank-1 identification rate (closed set, no threshold).
    pub rank1: f64,
    /// Persons enrolled in the bench.
    pub enrolled: i64,
    /// Queries of enrolled persons, and of strangers.
    pub known_queries: i64,
    /// Queries of strangers.
    pub stranger_queries: i64,
    /// Which bench, which file, and when it was measured.
    pub source: String,
}

/// The record of processing of a tenant.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ProcessingRecord {
    /// [`SCHEMA`].
    pub schema: String,
    /// When it was generated (UTC).
    #[serde(with = "likeness_control_domain::time::utc")]
    pub generated_at: NaiveDateTime,
    /// The controller (the tenant).
    pub controller: String,
    /// The tenant's id.
    pub tenant_id: String,
    /// Purposes.
    pub purposes: Vec<Purpose>,
    /// Categories of persons.
    pub categories_of_persons: PersonCategories,
    /// Categories of data.
    pub categories_of_data: Vec<DataCategory>,
    /// Recipients.
    pub recipients: Recipients,
    /// Transfers to third countries.
    pub transfers: String,
    /// Retention.
    pub retention: Retention,
    /// Technical and organisational security measures.
    pub security_measures: Vec<String>,
    /// The face matcher's measured error rates.
    pub matcher: Option<MatcherRates>,
    /// Files by legal basis (`none` for files without one).
    pub files_by_legal_basis: BTreeMap<String, i64>,
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0)
}

fn i(v: &serde_json::Value, k: &str) -> i64 {
    v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0)
}

/// The matcher's rates at `threshold` from the bench result (the nearest measured row).
pub fn matcher_rates(threshold: Option<f64>) -> Option<MatcherRates> {
    let v: serde_json::Value = serde_json::from_str(BENCH_JSON).ok()?;
    let threshold = threshold.unwrap_or_else(|| f(&v, "configured_default_threshold"));
    let nearest = |rows: &serde_json::Value| -> Option<serde_json::Value> {
        rows.as_array()?
            .iter()
            .min_by(|a, b| {
                let (da, dbb) = (
                    (f(a, "threshold") - threshold).abs(),
                    (f(b, "threshold") - threshold).abs(),
                );
                da.total_cmp(&dbb)
            })
            .cloned()
    };
    let open = v.get("open_set")?;
    let closed = v.get("closed_set")?;
    let row = nearest(open.get("by_threshold")?)?;
    let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
    Some(MatcherRates {
        threshold: round(threshold),
        measured_threshold: round(f(&row, "threshold")),
        false_suggestion_rate: round(f(&row, "stranger_suggested")),
        wrong_person_rate: round(f(&row, "known_wrong")),
        right_person_rate: round(f(&row, "known_right")),
        rank1: round(f(closed, "rank1")),
        enrolled: i(open, "enrolled"),
        known_queries: i(open, "known_queries"),
        stranger_queries: i(open, "stranger_queries"),
        source: format!(
            "bench {} ({BENCH_FILE}, recorded {BENCH_DATE}; open set: {} enrolled, {} known and {} stranger queries)",
            v.get("bench")
                .and_then(|b| b.as_str())
                .unwrap_or("identify"),
            i(open, "enrolled"),
            i(open, "known_queries"),
            i(open, "stranger_queries"),
        ),
    })
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    // Credentials in the URL are never shown.
    host.rsplit_once('@').map_or(host, |(_, h)| h).to_string()
}

/// Counts of minors and persons with a guardian among the tenant's live persons, from their
/// personal fields (read through the vault).
fn minors(
    conn: &mut DbConn,
    deps: &crate::Deps,
    tenant_id: &str,
    today: NaiveDate,
    age_threshold: u32,
) -> Result<(i64, i64)> {
    let ids: Vec<String> = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::deleted_at.is_null())
        .filter(persons::erased_at.is_null())
        .filter(persons::sealed.is_not_null())
        .select(persons::id)
        .load(conn)?;
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let vault = deps.vault()?;
    let (mut minors, mut guardians) = (0i64, 0i64);
    for p in crate::vault::personal_many(conn, &vault, tenant_id, &ids)?.values() {
        if p.date_of_birth
            .is_some_and(|dob| likeness_control_domain::minor::is_minor(dob, today, age_threshold))
        {
            minors += 1;
        }
        if p.guardian_name
            .as_deref()
            .is_some_and(|g| !g.trim().is_empty())
            || p.guardian_contact
                .as_deref()
                .is_some_and(|g| !g.trim().is_empty())
        {
            guardians += 1;
        }
    }
    Ok((minors, guardians))
}

/// Builds the record of `tenant_id` at `now`.
pub fn build(
    conn: &mut DbConn,
    deps: &crate::Deps,
    tenant_id: &str,
    now: NaiveDateTime,
) -> Result<ProcessingRecord> {
    let today = now.date();
    let controller: String = tenants::table
        .filter(tenants::id.eq(tenant_id))
        .select(tenants::name)
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("tenant"))?;
    let settings = crate::settings::get(conn, tenant_id)?;
    let policy = crate::rights_settings::get(conn, tenant_id)?;

    let live_persons: i64 = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::deleted_at.is_null())
        .filter(persons::erased_at.is_null())
        .count()
        .get_result(conn)?;
    let erased: i64 = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::erased_at.is_not_null())
        .count()
        .get_result(conn)?;
    let (minors, with_guardian) = minors(conn, deps, tenant_id, today, settings.age_threshold)?;

    let files: i64 = assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .count()
        .get_result(conn)?;
    let bases: Vec<Option<String>> = assets::table
        .filter(assets::tenant_id.eq(tenant_id))
        .select(assets::legal_basis)
        .load(conn)?;
    let mut files_by_legal_basis = BTreeMap::new();
    for b in bases {
        *files_by_legal_basis
            .entry(b.unwrap_or_else(|| "none".into()))
            .or_insert(0i64) += 1;
    }
    let linked_faces: i64 = faces::table
        .filter(faces::tenant_id.eq(tenant_id))
        .filter(faces::person_id.is_not_null())
        .count()
        .get_result(conn)?;
    let templates: i64 = faces::table
        .filter(faces::tenant_id.eq(tenant_id))
        .filter(faces::template_enrolled.eq(true))
        .count()
        .get_result(conn)?;
    let agreements_n: i64 = agreements::table
        .filter(agreements::tenant_id.eq(tenant_id))
        .count()
        .get_result(conn)?;

    let mut webhook_hosts: Vec<String> = webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(tenant_id))
        .select(webhook_endpoints::url)
        .load::<String>(conn)?
        .iter()
        .map(|u| host_of(u))
        .collect();
    webhook_hosts.sort();
    webhook_hosts.dedup();
    let share_links_total: i64 = share_links::table
        .filter(share_links::tenant_id.eq(tenant_id))
        .count()
        .get_result(conn)?;
    let share_links_active: i64 = share_links::table
        .filter(share_links::tenant_id.eq(tenant_id))
        .filter(share_links::revoked_at.is_null())
        .filter(share_links::expires_on.ge(today))
        .count()
        .get_result(conn)?;
    let publications_active: i64 = publications::table
        .filter(publications::tenant_id.eq(tenant_id))
        .filter(publications::removed_at.is_null())
        .count()
        .get_result(conn)?;

    let mut purposes: Vec<Purpose> = settings
        .channels
        .iter()
        .map(|c| Purpose {
            name: format!("Publication: {c}"),
            description: format!(
                "Using photos and videos showing persons in the channel \"{c}\", only while \
                 every identifiable person shown is covered (consent for this channel in force, \
                 or another legal basis recorded for the file)."
            ),
            legal_basis: "Consent (Art. 6(1)(a)); for a file: contract, legitimate interest, \
                          public interest or an external agreement where recorded"
                .into(),
        })
        .collect();
    purposes.push(Purpose {
        name: "Face matching".into(),
        description: "Detecting faces in uploaded files and suggesting who is shown, by \
                      comparing face templates with those of persons who consented to face \
                      matching; staff confirm every suggestion."
            .into(),
        legal_basis: "Explicit consent covering face matching (Art. 9(2)(a)); a minor's \
                      consent signed by a guardian"
            .into(),
    });
    purposes.push(Purpose {
        name: "Consent administration and evidence".into(),
        description: "Recording agreements, sending signing requests, sealing evidence of \
                      signatures and withdrawals, answering data-subject requests."
            .into(),
        legal_basis: "Legal obligation to demonstrate consent (Art. 7(1), Art. 6(1)(c))".into(),
    });

    let categories_of_data = vec![
        DataCategory {
            name: "Register entry".into(),
            description: "Name, e-mail, phone, date of birth, guardian's name and contact, \
                          custom fields, a pseudonym"
                .into(),
            special_category: false,
            count: live_persons,
        },
        DataCategory {
            name: "Photos and videos".into(),
            description: "Files showing persons, their versions, renditions and metadata \
                          (EXIF, GPS stripped from copies handed out)"
                .into(),
            special_category: false,
            count: files,
        },
        DataCategory {
            name: "Faces".into(),
            description: "Boxes of detected faces, their link to a person and who confirmed it"
                .into(),
            special_category: false,
            count: linked_faces,
        },
        DataCategory {
            name: "Biometric templates".into(),
            description: "Face embeddings kept by the face matcher for persons who consented \
                          to face matching (Art. 9 biometric data)"
                .into(),
            special_category: true,
            count: templates,
        },
        DataCategory {
            name: "Agreements and evidence".into(),
            description: "Consents (channels, validity, withdrawal), their documents, sealed \
                          evidence records of signatures and withdrawals"
                .into(),
            special_category: false,
            count: agreements_n,
        },
    ];

    let mut rdesc = vec![
        "Staff of the organisation, by role (admin, privacy officer, editor, viewer)".to_string(),
        "Content management systems (API tokens of the integration role), told of changes \
         through signed webhooks"
            .to_string(),
    ];
    if !webhook_hosts.is_empty() {
        rdesc.push(format!("Webhook endpoints: {}", webhook_hosts.join(", ")));
    }
    rdesc.push(format!(
        "Recipients of share links ({share_links_active} serving now, {share_links_total} ever)"
    ));
    rdesc.push(format!(
        "The public, where a file is published ({publications_active} placements recorded)"
    ));

    let rules = vec![
        RetentionRule {
            data: "Register entry, faces, templates".into(),
            period: "Until the person is erased (erasure destroys the person's key: backups \
                     become unreadable); templates end with the face-matching consent"
                .into(),
        },
        RetentionRule {
            data: "Agreements' documents".into(),
            period: format!(
                "{} days after the agreement ended (expired or withdrawn), then deleted by \
                 the scheduler",
                policy.document_retention_days
            ),
        },
        RetentionRule {
            data: "Sealed evidence records".into(),
            period: format!(
                "{} years after the agreement ended, then their content is deleted (the chain \
                 keeps their hashes)",
                policy.evidence_retention_years
            ),
        },
        RetentionRule {
            data: "Access-request exports".into(),
            period: format!(
                "{} hours after they are built, then deleted",
                policy.export_ttl_hours
            ),
        },
        RetentionRule {
            data: "Files after an erasure".into(),
            period: format!(
                "{} {}",
                match policy.erasure_files {
                    likeness_control_domain::rights::ErasureFiles::Pixelate =>
                        "The erased person's face is pixelated in a new version and older \
                         versions are destroyed",
                    likeness_control_domain::rights::ErasureFiles::Hide =>
                        "The file is hidden everywhere",
                },
                if policy.keep_on_other_basis {
                    "(kept unchanged where another legal basis covers whoever is shown)"
                } else {
                    "(whatever the file's legal basis)"
                }
            ),
        },
    ];

    let security_measures = vec![
        "Encryption at rest: every file and document in the blob store with AES-256-GCM under \
         a key per tenant, wrapped by the master key"
            .to_string(),
        "Personal fields and documents sealed under a key per person (wrapped by the tenant's \
         key); erasure destroys that key (crypto-shredding), so copies in backups and logs can \
         no longer be read"
            .to_string(),
        "Look-up by e-mail and phone through a keyed hash index (HMAC-SHA256), not the plain \
         values"
            .to_string(),
        "An append-only, hash-chained audit log of every read and change of personal data"
            .to_string(),
        "Evidence of signatures and withdrawals sealed with Ed25519 and chained per tenant"
            .to_string(),
        "Role-based permissions (export, erase and settings separate), sessions with CSRF \
         protection, login throttling, API tokens stored as hashes"
            .to_string(),
        "Files are served only while compliant (checked on every delivery; withdrawal hides \
         them within seconds)"
            .to_string(),
    ];

    Ok(ProcessingRecord {
        schema: SCHEMA.into(),
        generated_at: likeness_control_domain::audit::truncate_micros(now),
        controller,
        tenant_id: tenant_id.to_string(),
        purposes,
        categories_of_persons: PersonCategories {
            persons: live_persons,
            minors,
            age_threshold: settings.age_threshold,
            with_guardian,
            erased,
            description: vec![
                "Persons shown in the organisation's photos and videos (staff, customers, \
                 participants, the public)"
                    .into(),
                format!(
                    "Minors (younger than {}): their consent is signed by a guardian",
                    settings.age_threshold
                ),
                "Guardians of minors (name and contact)".into(),
            ],
        },
        categories_of_data,
        recipients: Recipients {
            webhook_hosts,
            share_links_active,
            share_links_total,
            publications_active,
            description: rdesc,
        },
        transfers: "None by the control plane; a recipient's own transfers are theirs".into(),
        retention: Retention { policy, rules },
        security_measures,
        matcher: matcher_rates(None),
        files_by_legal_basis,
    })
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

/// The record as one self-contained HTML page (no external resources, printable).
pub fn to_html(r: &ProcessingRecord) -> String {
    use std::fmt::Write;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Record of processing activities — {c}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
         padding:0 1rem;color:#111;line-height:1.45}}h1{{font-size:1.6rem}}\
         h2{{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #999}}\
         table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;\
         border:1px solid #bbb;padding:.3rem .5rem;vertical-align:top}}\
         .special{{font-weight:bold}}@media print{{body{{margin:0}}}}</style></head><body>\
         <h1>Record of processing activities (GDPR Art. 30)</h1>\
         <p>Controller: <strong>{c}</strong> (tenant {t}). Generated {g} UTC by Likeness.</p>",
        c = esc(&r.controller),
        t = esc(&r.tenant_id),
        g = esc(&r.generated_at.format("%Y-%m-%d %H:%M").to_string()),
    );
    h.push_str("<h2>Purposes</h2><table><thead><tr><th>Purpose</th><th>Description</th><th>Legal basis</th></tr></thead><tbody>");
    for p in &r.purposes {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.name),
            esc(&p.description),
            esc(&p.legal_basis)
        );
    }
    h.push_str("</tbody></table>");
    let pc = &r.categories_of_persons;
    let _ = write!(
        h,
        "<h2>Categories of persons</h2><ul>{}</ul><p>In the register: {} persons, of whom {} \
         minors today (younger than {}) and {} with a guardian recorded; {} erased \
         (pseudonymous tombstones).</p>",
        pc.description
            .iter()
            .map(|d| format!("<li>{}</li>", esc(d)))
            .collect::<String>(),
        pc.persons,
        pc.minors,
        pc.age_threshold,
        pc.with_guardian,
        pc.erased
    );
    h.push_str("<h2>Categories of data</h2><table><thead><tr><th>Data</th><th>Contents</th><th>Records</th></tr></thead><tbody>");
    for d in &r.categories_of_data {
        let _ = write!(
            h,
            "<tr><td{cls}>{}{sp}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.name),
            esc(&d.description),
            d.count,
            cls = if d.special_category {
                " class=\"special\""
            } else {
                ""
            },
            sp = if d.special_category {
                " (special category)"
            } else {
                ""
            },
        );
    }
    h.push_str("</tbody></table>");
    if !r.files_by_legal_basis.is_empty() {
        h.push_str("<p>Files by legal basis: ");
        let parts: Vec<String> = r
            .files_by_legal_basis
            .iter()
            .map(|(k, v)| format!("{} {v}", esc(k)))
            .collect();
        h.push_str(&parts.join(", "));
        h.push_str(".</p>");
    }
    let _ = write!(
        h,
        "<h2>Recipients</h2><ul>{}</ul><h2>Transfers to third countries</h2><p>{}</p>",
        r.recipients
            .description
            .iter()
            .map(|d| format!("<li>{}</li>", esc(d)))
            .collect::<String>(),
        esc(&r.transfers)
    );
    h.push_str(
        "<h2>Retention</h2><table><thead><tr><th>Data</th><th>Kept</th></tr></thead><tbody>",
    );
    for rule in &r.retention.rules {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&rule.data),
            esc(&rule.period)
        );
    }
    h.push_str("</tbody></table><h2>Security measures</h2><ul>");
    for m in &r.security_measures {
        let _ = write!(h, "<li>{}</li>", esc(m));
    }
    h.push_str("</ul><h2>Face matcher: measured error rates</h2>");
    match &r.matcher {
        Some(m) => {
            let _ = write!(
                h,
                "<table><tbody>\
                 <tr><th>Threshold</th><td>{} (measured at {})</td></tr>\
                 <tr><th>False suggestion rate (a stranger gets a person suggested)</th><td>{}</td></tr>\
                 <tr><th>Wrong person suggested (enrolled persons)</th><td>{}</td></tr>\
                 <tr><th>Right person suggested (enrolled persons)</th><td>{}</td></tr>\
                 <tr><th>Rank-1 identification rate</th><td>{}</td></tr>\
                 </tbody></table><p>Source: {}. Every suggestion is confirmed by staff before \
                 it counts.</p>",
                m.threshold,
                m.measured_threshold,
                pct(m.false_suggestion_rate),
                pct(m.wrong_person_rate),
                pct(m.right_person_rate),
                pct(m.rank1),
                esc(&m.source)
            );
        }
        None => h.push_str("<p>No measurement available.</p>"),
    }
    h.push_str("</body></html>\n");
    h
}

/// The record of processing of the actor's tenant (`read_audit` or `manage_settings`).
pub async fn processing_record(ctx: &Ctx) -> Result<ProcessingRecord> {
    crate::rights_settings::require_read(ctx)?;
    let (t, now, deps) = (ctx.tenant().to_string(), ctx.now, ctx.deps.clone());
    db::run(&ctx.deps.pool, move |c| build(c, &deps, &t, now)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_rates_at_the_default_threshold() {
        let m = matcher_rates(None);
        assert!(m.is_some());
        let m = m.unwrap_or_else(|| unreachable!());
        assert!((m.threshold - 0.45).abs() < 1e-3, "{m:?}");
        assert!(m.false_suggestion_rate < 0.05, "{m:?}");
        assert!(m.rank1 > 0.5, "{m:?}");
        assert!(m.source.contains(BENCH_FILE));
    }

    #[test]
    fn hosts_only() {
        assert_eq!(
            host_of("https://user:pw@cms.example:8443/hook?x=1"),
            "cms.example:8443"
        );
        assert_eq!(host_of("http://cms.example"), "cms.example");
    }

    #[test]
    fn html_escapes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
