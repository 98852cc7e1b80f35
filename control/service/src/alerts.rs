//! (PUBLISHING) Expiry alerts, the daily digest, renewals and `consent.expired` events.
//!
//! - [`tick`] (the scheduler, every tick): every agreement whose last day has passed, not
//!   withdrawn and not yet announced, gets its `consent.expired` event
//!   ([`crate::events::CONSENT_EXPIRED`]) and `agreements.end_announced_at`, one transaction
//!   per agreement with a conditional update (several processes announce it once); then, from
//!   `[alerts] digest_hour_utc` on, the daily digest e-mail of each tenant with consents ending
//!   within its notice period, to every user whose role may manage consents (not disabled,
//!   not opted out), at most once per user and day (`digest_runs`' primary key decides).
//! - The alert list: consents in force ending within a window (default the tenant's notice
//!   period), soonest first, with the files affected and a pending renewal request.
//! - Renewal: one call that sends a new signing request pre-filled from the old agreement.
//! - Each user's own digest preference.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime, TimeDelta, Timelike};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Deps;
use crate::audit;
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::events;
use crate::outbox::{self, Channel, OutgoingMessage};
use crate::roles::Permission;
use crate::schema::{
    agreements, consent_template_versions, consent_templates, digest_runs, persons,
    role_permissions, signing_requests, tenants, users,
};
use crate::signing::{self, NewSigningRequests, Purpose, SigningRequestOut};

/// Agreements announced per transaction batch of one tick.
const EXPIRE_BATCH: i64 = 500;
/// Longest alert window, in days.
pub const MAX_WITHIN_DAYS: i64 = 3650;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertsReport {
    /// `consent.expired` events recorded.
    pub expired: usize,
    /// Digest e-mails queued.
    pub digests: usize,
}

/// The scheduler's part (every tick): `consent.expired` events, the daily digests.
pub async fn tick(deps: &Deps) -> Result<()> {
    tick_report(deps).await.map(|_| ())
}

/// [`tick`], saying what it did.
pub async fn tick_report(deps: &Deps) -> Result<AlertsReport> {
    let now = deps.clock.now();
    let expired = announce_expired(deps, now).await?;
    let digests = if now.hour() >= deps.config.alerts.digest_hour_utc {
        send_digests(deps, now).await?
    } else {
        0
    };
    Ok(AlertsReport { expired, digests })
}

type ExpiredRow = (String, String, String, String, Option<NaiveDate>);

/// Records `consent.expired` for every agreement that ended before `now`'s day.
async fn announce_expired(deps: &Deps, now: NaiveDateTime) -> Result<usize> {
    let mut total = 0;
    for _ in 0..1000 {
        let (n, done) = db::run(&deps.pool, move |c| {
            let today = now.date();
            let rows: Vec<ExpiredRow> = agreements::table
                .filter(agreements::valid_until.lt(today))
                .filter(agreements::withdrawn_at.is_null())
                .filter(agreements::end_announced_at.is_null())
                .order(agreements::id.asc())
                .limit(EXPIRE_BATCH)
                .select((
                    agreements::id,
                    agreements::tenant_id,
                    agreements::person_id,
                    agreements::channels_json,
                    agreements::valid_until,
                ))
                .load(c)?;
            let done = rows.len() < usize::try_from(EXPIRE_BATCH).unwrap_or(usize::MAX);
            let mut n = 0;
            for (id, tenant, person, channels_json, until) in rows {
                let announced = db::write_tx(c, |c| {
                    let claimed = diesel::update(
                        agreements::table
                            .filter(agreements::id.eq(&id))
                            .filter(agreements::end_announced_at.is_null()),
                    )
                    .set(agreements::end_announced_at.eq(Some(now)))
                    .execute(c)?;
                    if claimed == 0 {
                        return Ok(false);
                    }
                    let channels: Vec<String> =
                        serde_json::from_str(&channels_json).unwrap_or_default();
                    events::record(
                        c,
                        &tenant,
                        events::CONSENT_EXPIRED,
                        "agreement",
                        &id,
                        serde_json::json!({
                            "agreement_id": id,
                            "person_id": person,
                            "valid_until": until,
                            "channels": channels,
                        }),
                        now,
                    )?;
                    Ok(true)
                })?;
                if announced {
                    n += 1;
                }
            }
            Ok((n, done))
        })
        .await?;
        total += n;
        if done {
            break;
        }
    }
    Ok(total)
}

/// One consent ending soon.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AlertOut {
    /// The agreement.
    pub agreement_id: String,
    /// The person.
    pub person_id: String,
    /// Their name (their pseudonym when the caller may not see names).
    pub person_name: String,
    /// The last day the consent is valid.
    pub valid_until: NaiveDate,
    /// Days from today to that day (0: ends today).
    pub days_left: i64,
    /// The channels it covers.
    pub channels: Vec<String>,
    /// The files the person is confirmed on (affected when it ends).
    pub files: i64,
    /// A renewal request that is waiting for the person, if any.
    pub renewal_request: Option<PendingRenewal>,
}

/// A renewal request waiting for the person's signature.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PendingRenewal {
    /// The signing request.
    pub id: String,
    /// `sent` or `opened`.
    pub status: String,
    /// When it was sent (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: NaiveDateTime,
    /// When its link expires (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub expires_at: NaiveDateTime,
}

/// The alert list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertList {
    /// Today (UTC).
    pub date: NaiveDate,
    /// The window, in days.
    pub within_days: i64,
    /// The consents ending within it, soonest first.
    pub items: Vec<AlertOut>,
}

/// Query of the alert list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// The window in days, 0..=3650 (default: the tenant's notice period).
    pub within_days: Option<String>,
}

type AlertRow = (String, String, String, Option<NaiveDate>, String);

/// The consents of `tenant_id` in force on `today` whose last day is within `within_days`,
/// soonest first; persons by name when `names`.
pub fn alerts(
    conn: &mut DbConn,
    tenant_id: &str,
    today: NaiveDate,
    now: NaiveDateTime,
    within_days: i64,
    names: bool,
) -> Result<Vec<AlertOut>> {
    let last = today + TimeDelta::days(within_days);
    let rows: Vec<AlertRow> = agreements::table
        .inner_join(persons::table.on(persons::id.eq(agreements::person_id)))
        .filter(agreements::tenant_id.eq(tenant_id))
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::deleted_at.is_null())
        .filter(agreements::withdrawn_at.is_null())
        .filter(agreements::valid_from.le(today))
        .filter(agreements::valid_until.ge(today))
        .filter(agreements::valid_until.le(last))
        .order((agreements::valid_until.asc(), agreements::id.asc()))
        .select((
            agreements::id,
            agreements::person_id,
            agreements::channels_json,
            agreements::valid_until,
            persons::pseudonym,
        ))
        .load(conn)?;
    // Names are sealed (the vault): opened only when they are shown.
    let real = if names {
        let ids: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        crate::persons::names_of(conn, tenant_id, &ids)?
    } else {
        HashMap::new()
    };
    let mut files: HashMap<String, i64> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for (id, person_id, channels_json, until, pseudonym) in rows {
        let name = real.get(&person_id).cloned().unwrap_or_default();
        let Some(until) = until else { continue };
        let n = match files.get(&person_id) {
            Some(n) => *n,
            None => {
                let n = crate::exposure::assets_of_person(conn, tenant_id, &person_id)?.len();
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                files.insert(person_id.clone(), n);
                n
            }
        };
        let pending: Option<(String, String, NaiveDateTime, NaiveDateTime)> =
            signing_requests::table
                .filter(signing_requests::tenant_id.eq(tenant_id))
                .filter(signing_requests::renews_agreement_id.eq(&id))
                .filter(signing_requests::status.eq_any(["sent", "opened"]))
                .filter(signing_requests::expires_at.gt(now))
                .order(signing_requests::created_at.desc())
                .select((
                    signing_requests::id,
                    signing_requests::status,
                    signing_requests::created_at,
                    signing_requests::expires_at,
                ))
                .first(conn)
                .optional()?;
        out.push(AlertOut {
            agreement_id: id.clone(),
            person_name: if names && !name.trim().is_empty() {
                name
            } else {
                pseudonym
            },
            person_id,
            valid_until: until,
            days_left: (until - today).num_days(),
            channels: serde_json::from_str(&channels_json).map_err(|e| {
                ControlError::Internal(format!("agreement {id}: bad channels_json: {e}"))
            })?,
            files: n,
            renewal_request: pending.map(|(id, status, created_at, expires_at)| PendingRenewal {
                id,
                status,
                created_at,
                expires_at,
            }),
        });
    }
    Ok(out)
}

fn within(s: Option<&str>, default: u32) -> Result<i64> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(i64::from(default)),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|d| (0..=MAX_WITHIN_DAYS).contains(d))
            .ok_or_else(|| {
                ControlError::invalid(
                    "within_days",
                    format!("must be a number of days from 0 to {MAX_WITHIN_DAYS} (got {s:?})"),
                )
            }),
    }
}

/// The base of the console link in the digest: the control plane's public address
/// (`[signing] public_base_url`; the delivery base may be a CDN's).
fn tenant_base(deps: &Deps) -> String {
    deps.config
        .signing
        .public_base_url
        .trim()
        .trim_end_matches('/')
        .to_string()
}

/// The digest's text.
fn digest_text(tenant: &str, link: &str, items: &[AlertOut]) -> (String, String) {
    let subject = if items.len() == 1 {
        format!("{tenant}: 1 consent ends soon")
    } else {
        format!("{tenant}: {} consents end soon", items.len())
    };
    let mut text = String::from(
        "These consents end within the notice period. Files showing the person may no longer \
         be used after the last day.\n\n",
    );
    for a in items {
        let files = if a.files == 1 {
            "1 file".to_string()
        } else {
            format!("{} files", a.files)
        };
        let renewal = if a.renewal_request.is_some() {
            " (renewal request sent)"
        } else {
            ""
        };
        text.push_str(&format!(
            "- {}: last day {} ({} days), channels {}, {files}{renewal}\n",
            a.person_name,
            a.valid_until,
            a.days_left,
            a.channels.join(", "),
        ));
    }
    text.push_str(&format!(
        "\nRenew them or review the files: {link}\n\nYou receive this daily digest because \
         your role manages consents; turn it off on that page.\n"
    ));
    (subject, text)
}

type Recipient = (String, String, String, String);

/// Queues today's digests that were not sent yet; returns how many.
async fn send_digests(deps: &Deps, now: NaiveDateTime) -> Result<usize> {
    let base = tenant_base(deps);
    db::run(&deps.pool, move |c| {
        let today = now.date();
        let managing: HashSet<(String, String)> = role_permissions::table
            .filter(role_permissions::permission.eq(Permission::ManageConsents.as_str()))
            .select((role_permissions::tenant_id, role_permissions::role))
            .load::<(String, String)>(c)?
            .into_iter()
            .collect();
        let done: HashSet<(String, String)> = digest_runs::table
            .filter(digest_runs::day.eq(today))
            .select((digest_runs::tenant_id, digest_runs::user_id))
            .load::<(String, String)>(c)?
            .into_iter()
            .collect();
        let candidates: Vec<Recipient> = users::table
            .filter(users::disabled.eq(false))
            .filter(users::digest_opt_out.eq(false))
            .order((users::tenant_id.asc(), users::id.asc()))
            .select((users::tenant_id, users::id, users::email, users::role))
            .load(c)?;
        let mut by_tenant: HashMap<String, Vec<Recipient>> = HashMap::new();
        for r in candidates {
            if managing.contains(&(r.0.clone(), r.3.clone()))
                && !done.contains(&(r.0.clone(), r.1.clone()))
            {
                by_tenant.entry(r.0.clone()).or_default().push(r);
            }
        }
        let mut sent = 0;
        for (tenant_id, recipients) in by_tenant {
            let s = crate::settings::get(c, &tenant_id)?;
            // The e-mail carries pseudonyms only (names stay in the console, behind a login):
            // a mailbox is not a place for personal data of the register.
            let pseudo = alerts(c, &tenant_id, today, now, i64::from(s.notice_days), false)?;
            if pseudo.is_empty() {
                continue;
            }
            let tenant_name: String = tenants::table
                .filter(tenants::id.eq(&tenant_id))
                .select(tenants::name)
                .first(c)?;
            let link = format!("{base}/admin/alerts");
            for (_, user_id, email, _role) in recipients {
                let (subject, text) = digest_text(&tenant_name, &link, &pseudo);
                let queued = db::write_tx(c, |c| {
                    diesel::insert_into(digest_runs::table)
                        .values((
                            digest_runs::tenant_id.eq(&tenant_id),
                            digest_runs::user_id.eq(&user_id),
                            digest_runs::day.eq(today),
                            digest_runs::created_at.eq(now),
                        ))
                        .execute(c)?;
                    let id = outbox::enqueue(
                        c,
                        &tenant_id,
                        OutgoingMessage {
                            channel: Channel::Email,
                            to: email.clone(),
                            subject: Some(subject.clone()),
                            text: text.clone(),
                            html: None,
                            purpose: "digest".into(),
                            related_id: Some(user_id.clone()),
                            secret: false,
                        },
                        now,
                    )?;
                    diesel::update(
                        digest_runs::table
                            .filter(digest_runs::tenant_id.eq(&tenant_id))
                            .filter(digest_runs::user_id.eq(&user_id))
                            .filter(digest_runs::day.eq(today)),
                    )
                    .set(digest_runs::message_id.eq(Some(&id)))
                    .execute(c)?;
                    Ok(())
                });
                match queued {
                    Ok(()) => sent += 1,
                    // Another process queued it first: the primary key says once per day.
                    Err(ControlError::Database(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    ))) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(sent)
    })
    .await
}

/// The alert list (`manage_consents`); audited as `alerts.read` when persons are named.
pub async fn list_alerts(ctx: &Ctx, q: Result<AlertQuery>) -> Result<AlertList> {
    ctx.require(Permission::ManageConsents)?;
    let q = q?;
    let ctx2 = ctx.clone();
    db::run(&ctx.deps.pool, move |c| {
        let t = ctx2.tenant();
        let s = crate::settings::get(c, t)?;
        let days = within(q.within_days.as_deref(), s.notice_days)?;
        let names = crate::persons::shows_real_names(&ctx2.actor, &s);
        let items = alerts(c, t, ctx2.today(), ctx2.now, days, names)?;
        if names && !items.is_empty() {
            let who = ctx2.who();
            db::write_tx(c, |c| {
                audit::record(
                    c,
                    &who,
                    "alerts.read",
                    "agreement",
                    None,
                    serde_json::json!({ "within_days": days, "count": items.len() }),
                )
                .map(|_| ())
            })?;
        }
        Ok(AlertList {
            date: ctx2.today(),
            within_days: days,
            items,
        })
    })
    .await
}

/// A user's digest preference.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestPreference {
    /// `true`: no daily digest e-mail.
    #[serde(deserialize_with = "opt_out_flag")]
    pub opt_out: bool,
}

/// Reads `opt_out`, naming the field when it is not a boolean.
fn opt_out_flag<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    <bool as Deserialize>::deserialize(d)
        .map_err(|e| serde::de::Error::custom(format!("opt_out: must be true or false ({e})")))
}

/// A user's digest preference and whether their role receives the digest at all.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DigestSetting {
    /// `true`: no daily digest e-mail.
    pub opt_out: bool,
    /// Whether the user's role manages consents (only they receive the digest).
    pub recipient: bool,
    /// The hour (UTC) from which the digest is sent.
    pub digest_hour_utc: u32,
}

fn own_user(ctx: &Ctx) -> Result<String> {
    if ctx.system || ctx.actor.user_id.is_empty() {
        return Err(ControlError::Forbidden("a user's own preference".into()));
    }
    Ok(ctx.actor.user_id.clone())
}

/// The caller's own digest preference (every user).
pub async fn get_digest(ctx: &Ctx) -> Result<DigestSetting> {
    let uid = own_user(ctx)?;
    let (t, recipient, hour) = (
        ctx.tenant().to_string(),
        ctx.has(Permission::ManageConsents),
        ctx.deps.config.alerts.digest_hour_utc,
    );
    db::run(&ctx.deps.pool, move |c| {
        let opt_out: bool = users::table
            .filter(users::tenant_id.eq(&t))
            .filter(users::id.eq(&uid))
            .select(users::digest_opt_out)
            .first(c)
            .optional()?
            .ok_or_else(|| ControlError::not_found("user"))?;
        Ok(DigestSetting {
            opt_out,
            recipient,
            digest_hour_utc: hour,
        })
    })
    .await
}

/// Sets the caller's own digest preference (every user; audited).
pub async fn set_digest(ctx: &Ctx, pref: Result<DigestPreference>) -> Result<DigestSetting> {
    let uid = own_user(ctx)?;
    let pref = pref?;
    let (t, who) = (ctx.tenant().to_string(), ctx.who());
    db::run(&ctx.deps.pool, move |c| {
        db::write_tx(c, |c| {
            let n = diesel::update(
                users::table
                    .filter(users::tenant_id.eq(&t))
                    .filter(users::id.eq(&uid)),
            )
            .set(users::digest_opt_out.eq(pref.opt_out))
            .execute(c)?;
            if n == 0 {
                return Err(ControlError::not_found("user"));
            }
            audit::record(
                c,
                &who,
                "user.digest_preference",
                "user",
                Some(&uid),
                serde_json::json!({ "opt_out": pref.opt_out }),
            )
            .map(|_| ())
        })
    })
    .await?;
    get_digest(ctx).await
}

/// A renewal: everything is pre-filled from the old agreement; each field overrides.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewalIn {
    /// The template (default: the one the old agreement was signed with, else the tenant's
    /// newest template).
    #[serde(default)]
    pub template_id: Option<String>,
    /// E-mail or SMS (default: as the old request, else e-mail when the person has an address).
    #[serde(default)]
    pub channel: Option<Channel>,
    /// `en`, `sv` or `nl` (default: as the old request, else the template's language).
    #[serde(default)]
    pub language: Option<String>,
}

type OldRequest = (String, String, String, String);

/// Sends a renewal request for an agreement (`manage_consents`): a new signing request to the
/// same person, purpose `renewal`, with the template, channel, language and files of the
/// request the old agreement was signed with (else the tenant's newest template). 409
/// `agreement_withdrawn`, `renewal_pending` (one is waiting already), or the reason no request
/// could be made (`no_email`, `no_phone`, `no_contact`).
pub async fn renew_agreement(
    ctx: &Ctx,
    agreement_id: String,
    input: Result<RenewalIn>,
) -> Result<SigningRequestOut> {
    ctx.require(Permission::ManageConsents)?;
    let input = input?;
    if !crate::publications::plausible_id(&agreement_id) {
        return Err(ControlError::not_found("agreement"));
    }
    if input
        .template_id
        .as_deref()
        .is_some_and(|t| !crate::publications::plausible_id(t.trim()))
    {
        return Err(ControlError::invalid("template_id", "not an id"));
    }
    let ctx2 = ctx.clone();
    let id = agreement_id.clone();
    let new = db::run(&ctx.deps.pool, move |c| {
        let t = ctx2.tenant();
        let (person_id, withdrawn): (String, Option<NaiveDateTime>) = agreements::table
            .filter(agreements::tenant_id.eq(t))
            .filter(agreements::id.eq(&id))
            .select((agreements::person_id, agreements::withdrawn_at))
            .first(c)
            .optional()?
            .ok_or_else(|| ControlError::not_found("agreement"))?;
        if withdrawn.is_some() {
            return Err(ControlError::Conflict {
                code: "agreement_withdrawn",
                message: format!("agreement {id} was withdrawn: ask for a new consent instead"),
            });
        }
        let pending: i64 = signing_requests::table
            .filter(signing_requests::tenant_id.eq(t))
            .filter(signing_requests::renews_agreement_id.eq(&id))
            .filter(signing_requests::status.eq_any(["sent", "opened"]))
            .filter(signing_requests::expires_at.gt(ctx2.now))
            .count()
            .get_result(c)?;
        if pending > 0 {
            return Err(ControlError::Conflict {
                code: "renewal_pending",
                message: format!("a renewal request for agreement {id} is waiting already"),
            });
        }
        let old: Option<OldRequest> = signing_requests::table
            .inner_join(
                consent_template_versions::table
                    .on(consent_template_versions::id.eq(signing_requests::template_version_id)),
            )
            .filter(signing_requests::tenant_id.eq(t))
            .filter(signing_requests::agreement_id.eq(&id))
            .select((
                consent_template_versions::template_id,
                signing_requests::channel,
                signing_requests::language,
                signing_requests::asset_ids_json,
            ))
            .first(c)
            .optional()?;
        let live_template = |c: &mut DbConn, tid: &str| -> Result<bool> {
            let n: i64 = consent_templates::table
                .filter(consent_templates::tenant_id.eq(t))
                .filter(consent_templates::id.eq(tid))
                .filter(consent_templates::archived_at.is_null())
                .count()
                .get_result(c)?;
            Ok(n > 0)
        };
        let newest = |c: &mut DbConn| -> Result<Option<String>> {
            Ok(consent_templates::table
                .filter(consent_templates::tenant_id.eq(t))
                .filter(consent_templates::archived_at.is_null())
                .order((
                    consent_templates::created_at.desc(),
                    consent_templates::id.desc(),
                ))
                .select(consent_templates::id)
                .first(c)
                .optional()?)
        };
        let template_id = match (&input.template_id, &old) {
            (Some(tid), _) => tid.trim().to_string(),
            (None, Some((tid, ..))) if live_template(c, tid)? => tid.clone(),
            (None, _) => newest(c)?.ok_or_else(|| {
                ControlError::invalid(
                    "template_id",
                    "the tenant has no consent template to send: create one first",
                )
            })?,
        };
        let (channel, language, asset_ids) = match &old {
            Some((_, ch, lang, assets_json)) => {
                let ids: Vec<String> = serde_json::from_str(assets_json).unwrap_or_default();
                let existing: Vec<String> = crate::schema::assets::table
                    .filter(crate::schema::assets::tenant_id.eq(t))
                    .filter(crate::schema::assets::id.eq_any(&ids))
                    .select(crate::schema::assets::id)
                    .load(c)?;
                (
                    input.channel.or_else(|| Channel::parse(ch).ok()),
                    input.language.clone().or_else(|| Some(lang.clone())),
                    ids.into_iter().filter(|a| existing.contains(a)).collect(),
                )
            }
            None => (input.channel, input.language.clone(), Vec::new()),
        };
        Ok(NewSigningRequests {
            person_ids: vec![person_id],
            template_id,
            channel,
            language,
            asset_ids,
            purpose: Purpose::Renewal,
            renews_agreement_id: Some(id.clone()),
        })
    })
    .await?;
    let outcome = signing::create_requests(ctx, new).await?;
    if let Some(created) = outcome.created.into_iter().next() {
        return Ok(created);
    }
    let f = outcome.failed.into_iter().next();
    let (code, message) = match f {
        Some(f) => (
            match f.code.as_str() {
                "no_email" => "no_email",
                "no_phone" => "no_phone",
                "no_contact" => "no_contact",
                "not_found" => "person_not_found",
                _ => "renewal_failed",
            },
            f.message,
        ),
        None => ("renewal_failed", "no request was made".to_string()),
    };
    Err(ControlError::Conflict { code, message })
}
