//! The register of persons: create, read, list (paginated, filtered, sorted), change and delete;
//! pseudonymous names (tenant setting `pseudonymous_names`), minors from the tenant's
//! `age_threshold`, guardians, "never publish", custom fields, an avatar from a confirmed face.
//! Every read of personal data is audited (`person.read`, `person.list`).
//!
//! With `pseudonymous_names` on, `name` is hidden (null) and `display_name` is the pseudonym for
//! everyone but actors with the `export` permission (access requests need the real name).

use diesel::prelude::*;
use likeness_control_domain::{minor, validate};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{self, Who};
use crate::auth::Actor;
use crate::context::Ctx;
use crate::db::{self, DbConn};
use crate::error::{ControlError, Result};
use crate::pagination::{Dir, PageQuery, Paginated};
use crate::roles::Permission;
use crate::schema::{face_rejections, faces, persons};
use crate::settings;
use crate::vault::{Personal, Vault};
use likeness_control_domain::TenantSettings;

/// A person as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = persons)]
pub struct PersonRow {
    /// ID.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// Pseudonymous ID.
    pub pseudonym: String,
    /// E-mail.
    pub email: Option<String>,
    /// Phone (E.164).
    pub phone: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<chrono::NaiveDate>,
    /// Guardian registered as a person.
    pub guardian_person_id: Option<String>,
    /// Guardian's name (when not registered).
    pub guardian_name: Option<String>,
    /// Guardian's contact.
    pub guardian_contact: Option<String>,
    /// Never publish this person.
    pub never_publish: bool,
    /// Custom fields (JSON object).
    pub custom_fields_json: String,
    /// Avatar face.
    pub avatar_face_id: Option<String>,
    /// Created.
    pub created_at: chrono::NaiveDateTime,
    /// Updated.
    pub updated_at: chrono::NaiveDateTime,
    /// Deleted (soft).
    pub deleted_at: Option<chrono::NaiveDateTime>,
    /// The personal fields sealed under the person's key (see [`crate::vault`]); the plain
    /// columns above hold '' / NULL on a sealed row, and [`PersonRow::reveal`] fills them in
    /// memory.
    pub sealed: Option<String>,
}

/// A person as shown by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PersonOut {
    /// ID.
    pub id: String,
    /// The name, or null when the tenant hides names.
    pub name: Option<String>,
    /// What to show: the name, or the pseudonym when names are hidden.
    pub display_name: String,
    /// Stable pseudonymous ID (e.g. `P-7KQ2MXWD`).
    pub pseudonym: String,
    /// E-mail.
    pub email: Option<String>,
    /// Phone (E.164).
    pub phone: Option<String>,
    /// Date of birth.
    #[schema(value_type = Option<String>, format = Date)]
    pub date_of_birth: Option<chrono::NaiveDate>,
    /// Younger than the tenant's age threshold today (false when the birth date is unknown).
    pub minor: bool,
    /// The day the person comes of age (when the birth date is known).
    #[schema(value_type = Option<String>, format = Date)]
    pub adult_from: Option<chrono::NaiveDate>,
    /// Guardian registered as a person.
    pub guardian_person_id: Option<String>,
    /// Guardian's name.
    pub guardian_name: Option<String>,
    /// Guardian's contact.
    pub guardian_contact: Option<String>,
    /// Never publish this person (blocks every asset they appear in).
    pub never_publish: bool,
    /// Custom fields.
    #[schema(value_type = Object)]
    pub custom_fields: serde_json::Value,
    /// Avatar: a confirmed face of this person.
    pub avatar_face_id: Option<String>,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub created_at: chrono::NaiveDateTime,
    /// Updated (UTC).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "likeness_control_domain::time::utc")]
    pub updated_at: chrono::NaiveDateTime,
}

/// How to present persons to an actor.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// Tenant's age threshold.
    pub age_threshold: u32,
    /// Hide names.
    pub hide_names: bool,
    /// Today.
    pub today: chrono::NaiveDate,
}

/// The one rule for when persons are shown by their real name (everywhere: the register, faces,
/// compliance answers): the actor may see persons (`see_persons`), and either the tenant does not
/// hide names (`pseudonymous_names`) or the actor answers access requests (`export`, which needs
/// the real name). Everyone else sees pseudonyms.
pub fn shows_real_names(actor: &Actor, settings: &TenantSettings) -> bool {
    actor.has(Permission::SeePersons)
        && (!settings.pseudonymous_names || actor.has(Permission::Export))
}

impl View {
    /// How `ctx`'s actor sees the persons of their tenant today (see [`shows_real_names`]).
    pub fn of(conn: &mut DbConn, ctx: &Ctx) -> Result<Self> {
        let s = settings::get(conn, ctx.tenant())?;
        Ok(Self {
            age_threshold: s.age_threshold,
            hide_names: !shows_real_names(&ctx.actor, &s),
            today: ctx.today(),
        })
    }
}

impl PersonRow {
    /// The personal fields held in the plain fields (of a revealed row, or of a row written
    /// before the vault).
    pub fn personal(&self) -> Personal {
        Personal {
            name: self.name.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            date_of_birth: self.date_of_birth,
            guardian_name: self.guardian_name.clone(),
            guardian_contact: self.guardian_contact.clone(),
            custom_fields: serde_json::from_str(&self.custom_fields_json)
                .unwrap_or(serde_json::Value::Object(Default::default())),
        }
    }

    fn apply(&mut self, p: Personal) {
        self.name = p.name;
        self.email = p.email;
        self.phone = p.phone;
        self.date_of_birth = p.date_of_birth;
        self.guardian_name = p.guardian_name;
        self.guardian_contact = p.guardian_contact;
        self.custom_fields_json = match p.custom_fields {
            serde_json::Value::Null => "{}".into(),
            v => audit::canonical_json(&v),
        };
    }

    /// Fills the plain fields in memory from `sealed` (a row written before the vault, not yet
    /// sealed at start-up, is kept as stored). A person whose key was destroyed (erased) gets
    /// empty fields.
    pub fn reveal(mut self, vault: &Vault) -> Result<Self> {
        if let Some(s) = &self.sealed {
            match vault.open_personal(&self.tenant_id, &self.id, s) {
                Ok(p) => self.apply(p),
                Err(ControlError::Gone { .. }) => self.apply(Personal::default()),
                Err(e) => return Err(e),
            }
        }
        Ok(self)
    }

    /// What the register sorts and shows under `view`: the name, or the pseudonym.
    fn shown(&self, view: &View) -> &str {
        if view.hide_names {
            &self.pseudonym
        } else {
            &self.name
        }
    }

    /// The API form under `view`.
    pub fn out(self, view: &View) -> PersonOut {
        let minor = self
            .date_of_birth
            .is_some_and(|d| minor::is_minor(d, view.today, view.age_threshold));
        let adult_from = self
            .date_of_birth
            .and_then(|d| minor::adult_from(d, view.age_threshold));
        PersonOut {
            display_name: if view.hide_names {
                self.pseudonym.clone()
            } else {
                self.name.clone()
            },
            name: (!view.hide_names).then_some(self.name),
            id: self.id,
            pseudonym: self.pseudonym,
            email: self.email,
            phone: self.phone,
            date_of_birth: self.date_of_birth,
            minor,
            adult_from,
            guardian_person_id: self.guardian_person_id,
            guardian_name: self.guardian_name,
            guardian_contact: self.guardian_contact,
            never_publish: self.never_publish,
            custom_fields: serde_json::from_str(&self.custom_fields_json)
                .unwrap_or(serde_json::Value::Object(Default::default())),
            avatar_face_id: self.avatar_face_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A new person.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    /// Name (1..200 characters).
    pub name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Phone (E.164, e.g. +4712345678).
    pub phone: Option<String>,
    /// Date of birth (YYYY-MM-DD).
    #[schema(value_type = Option<String>, format = Date)]
    pub date_of_birth: Option<chrono::NaiveDate>,
    /// Guardian registered as a person of this tenant.
    pub guardian_person_id: Option<String>,
    /// Guardian's name.
    pub guardian_name: Option<String>,
    /// Guardian's contact (e-mail or phone).
    pub guardian_contact: Option<String>,
    /// Never publish this person.
    #[serde(default)]
    pub never_publish: bool,
    /// Custom fields: an object of up to 50 keys with string, number, boolean or null values.
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Value>,
}

fn some<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to a person: absent fields stay, `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonPatch {
    /// New name.
    pub name: Option<String>,
    /// E-mail (null clears).
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Phone (null clears).
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// Date of birth (null clears).
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>, format = Date)]
    pub date_of_birth: Option<Option<chrono::NaiveDate>>,
    /// Guardian person (null clears).
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub guardian_person_id: Option<Option<String>>,
    /// Guardian's name (null clears).
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub guardian_name: Option<Option<String>>,
    /// Guardian's contact (null clears).
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub guardian_contact: Option<Option<String>>,
    /// Never publish.
    pub never_publish: Option<bool>,
    /// Custom fields (replaces the whole object).
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<serde_json::Value>,
    /// Avatar: a confirmed face of this person (null clears).
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub avatar_face_id: Option<Option<String>>,
}

/// Filters of the person list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PersonFilter {
    /// Substring of the name, pseudonym or e-mail (case-insensitive).
    pub q: Option<String>,
    /// Only persons with (true) or without (false) "never publish".
    pub never_publish: Option<bool>,
    /// Only persons born after this date (minors: today minus the age threshold).
    #[param(value_type = Option<String>, format = Date)]
    pub born_after: Option<chrono::NaiveDate>,
    /// Only the person with exactly this e-mail address (case-insensitive; looked up through
    /// the keyed index).
    pub email: Option<String>,
    /// Only the person with exactly this phone number (looked up through the keyed index).
    pub phone: Option<String>,
}

const SORT_KEYS: &[&str] = &[
    "name",
    "created_at",
    "updated_at",
    "pseudonym",
    "date_of_birth",
];

fn opt_text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>> {
    match v.map(|s| s.trim().to_string()) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s.chars().count() > max => Err(ControlError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(s) => Ok(Some(s)),
    }
}

fn check_email(v: Option<String>) -> Result<Option<String>> {
    match opt_text("email", v, 254)? {
        None => Ok(None),
        Some(e) => Ok(Some(validate::email("email", &e)?)),
    }
}

fn check_phone(v: Option<String>) -> Result<Option<String>> {
    match opt_text("phone", v, 32)? {
        None => Ok(None),
        Some(p) => Ok(Some(validate::phone_e164("phone", &p)?)),
    }
}

fn check_dob(
    v: Option<chrono::NaiveDate>,
    today: chrono::NaiveDate,
) -> Result<Option<chrono::NaiveDate>> {
    if let Some(d) = v {
        if d > today {
            return Err(ControlError::invalid("date_of_birth", "is in the future"));
        }
        if d < chrono::NaiveDate::from_ymd_opt(1880, 1, 1).unwrap_or(d) {
            return Err(ControlError::invalid("date_of_birth", "is before 1880"));
        }
    }
    Ok(v)
}

fn check_custom(v: Option<serde_json::Value>) -> Result<String> {
    let v = v.unwrap_or(serde_json::Value::Object(Default::default()));
    let serde_json::Value::Object(m) = &v else {
        return Err(ControlError::invalid(
            "custom_fields",
            "must be a JSON object",
        ));
    };
    if m.len() > 50 {
        return Err(ControlError::invalid("custom_fields", "at most 50 fields"));
    }
    for (k, val) in m {
        if k.is_empty() || k.chars().count() > 64 {
            return Err(ControlError::invalid(
                format!("custom_fields.{k}"),
                "field names must be 1 to 64 characters",
            ));
        }
        let ok = match val {
            serde_json::Value::String(s) => s.chars().count() <= 2000,
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) | serde_json::Value::Null => {
                true
            }
            _ => false,
        };
        if !ok {
            return Err(ControlError::invalid(
                format!("custom_fields.{k}"),
                "must be a string (up to 2000 characters), number, boolean or null",
            ));
        }
    }
    Ok(audit::canonical_json(&v))
}

fn check_guardian(
    conn: &mut DbConn,
    tenant_id: &str,
    person_id: Option<&str>,
    g: Option<String>,
) -> Result<Option<String>> {
    let Some(g) = opt_text("guardian_person_id", g, 64)? else {
        return Ok(None);
    };
    if Some(g.as_str()) == person_id {
        return Err(ControlError::invalid(
            "guardian_person_id",
            "a person cannot be their own guardian",
        ));
    }
    let n: i64 = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::id.eq(&g))
        .filter(persons::deleted_at.is_null())
        .count()
        .get_result(conn)?;
    if n == 0 {
        return Err(ControlError::invalid(
            "guardian_person_id",
            "no such person",
        ));
    }
    Ok(Some(g))
}

fn new_pseudonym() -> Result<String> {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| ControlError::Internal(format!("random: {e}")))?;
    let s: String = b
        .iter()
        .map(|x| char::from(ALPHABET[usize::from(*x) % ALPHABET.len()]))
        .collect();
    Ok(format!("P-{s}"))
}

fn load(conn: &mut DbConn, vault: &Vault, tenant_id: &str, id: &str) -> Result<PersonRow> {
    persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::id.eq(id))
        .filter(persons::deleted_at.is_null())
        .select(PersonRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("person"))?
        .reveal(vault)
}

/// Seals the personal fields of `row` (its plain fields, as revealed or changed in memory)
/// into `persons.sealed` with the keyed e-mail/phone index, and blanks the plain columns.
fn store_sealed(conn: &mut DbConn, vault: &Vault, row: &PersonRow) -> Result<()> {
    let (t, id) = (row.tenant_id.as_str(), row.id.as_str());
    vault.ensure_person_key(t, id)?;
    let sealed = vault.seal_personal(t, id, &row.personal())?;
    let email_index = row
        .email
        .as_deref()
        .map(|e| vault.email_index(t, e))
        .transpose()?;
    let phone_index = row
        .phone
        .as_deref()
        .map(|p| vault.phone_index(t, p))
        .transpose()?;
    diesel::update(
        persons::table
            .filter(persons::tenant_id.eq(t))
            .filter(persons::id.eq(id)),
    )
    .set((
        persons::sealed.eq(Some(sealed)),
        persons::email_index.eq(email_index),
        persons::phone_index.eq(phone_index),
        persons::name.eq(""),
        persons::email.eq(None::<String>),
        persons::phone.eq(None::<String>),
        persons::date_of_birth.eq(None::<chrono::NaiveDate>),
        persons::guardian_name.eq(None::<String>),
        persons::guardian_contact.eq(None::<String>),
        persons::custom_fields_json.eq("{}"),
    ))
    .execute(conn)?;
    Ok(())
}

/// The stored personal columns of a person: `(id, sealed, name, email, phone, date of birth,
/// guardian name, guardian contact, custom fields, erased at)`.
type StoredPersonal = (
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<chrono::NaiveDate>,
    Option<String>,
    Option<String>,
    String,
    Option<chrono::NaiveDateTime>,
);

/// Opens the stored personal columns: sealed under the person's key (the process's vault,
/// [`crate::vault::ambient`]), or plain on a row written before the vault; `None` for an erased
/// person.
fn open_stored(tenant_id: &str, r: StoredPersonal) -> Result<Option<(String, Personal)>> {
    let (id, sealed, name, email, phone, dob, g_name, g_contact, custom, erased_at) = r;
    if erased_at.is_some() {
        return Ok(None);
    }
    let p = match sealed {
        Some(s) => {
            let vault = crate::vault::ambient(tenant_id, &id)?;
            match vault.open_personal(tenant_id, &id, &s) {
                Ok(p) => p,
                Err(ControlError::Gone { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        None => Personal {
            name,
            email,
            phone,
            date_of_birth: dob,
            guardian_name: g_name,
            guardian_contact: g_contact,
            custom_fields: serde_json::from_str(&custom)
                .unwrap_or(serde_json::Value::Object(Default::default())),
        },
    };
    Ok(Some((id, p)))
}

/// The personal fields of persons of a tenant (deleted ones included; erased persons, unknown
/// IDs absent), opened through the process's vault, for code inside a transaction that holds
/// only a connection (names in messages and pages, dates of birth for the compliance rules).
/// Rows written before the vault and not yet sealed are read as stored.
pub fn personal_map(
    conn: &mut DbConn,
    tenant_id: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Personal>> {
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let rows: Vec<StoredPersonal> = persons::table
            .filter(persons::tenant_id.eq(tenant_id))
            .filter(persons::id.eq_any(chunk))
            .select((
                persons::id,
                persons::sealed,
                persons::name,
                persons::email,
                persons::phone,
                persons::date_of_birth,
                persons::guardian_name,
                persons::guardian_contact,
                persons::custom_fields_json,
                persons::erased_at,
            ))
            .load(conn)?;
        for r in rows {
            if let Some((id, p)) = open_stored(tenant_id, r)? {
                out.insert(id, p);
            }
        }
    }
    Ok(out)
}

/// The personal fields of one person (see [`personal_map`]).
pub fn personal_one(conn: &mut DbConn, tenant_id: &str, id: &str) -> Result<Option<Personal>> {
    Ok(personal_map(conn, tenant_id, &[id.to_string()])?.remove(id))
}

/// The names of persons of a tenant (see [`personal_map`]); erased persons absent.
pub fn names_of(
    conn: &mut DbConn,
    tenant_id: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>> {
    Ok(personal_map(conn, tenant_id, ids)?
        .into_iter()
        .map(|(id, p)| (id, p.name))
        .collect())
}

/// Seals up to `batch` person rows that still hold their personal fields in plain columns
/// (written before the vault; erased persons excepted) and blanks those columns; returns how
/// many. Idempotent: run it until it returns 0.
pub fn seal_plain_batch(conn: &mut DbConn, vault: &Vault, batch: i64) -> Result<usize> {
    db::write_tx(conn, |c| {
        let rows: Vec<PersonRow> = persons::table
            .filter(persons::sealed.is_null())
            .filter(persons::erased_at.is_null())
            .order(persons::id.asc())
            .limit(batch)
            .select(PersonRow::as_select())
            .load(c)?;
        for r in &rows {
            store_sealed(c, vault, r)?;
        }
        Ok(rows.len())
    })
}

/// Creates a person at `now` (the caller's clock; a date of birth after `view.today` is
/// refused). Call inside `db::write_tx`.
pub fn create(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    view: &View,
    vault: &Vault,
    new: NewPerson,
    now: chrono::NaiveDateTime,
) -> Result<PersonOut> {
    let name = validate::name("name", &new.name)?;
    let email = check_email(new.email)?;
    let phone = check_phone(new.phone)?;
    let dob = check_dob(new.date_of_birth, view.today)?;
    let guardian = check_guardian(conn, tenant_id, None, new.guardian_person_id)?;
    let guardian_name = opt_text("guardian_name", new.guardian_name, 200)?;
    let guardian_contact = opt_text("guardian_contact", new.guardian_contact, 254)?;
    let custom = check_custom(new.custom_fields)?;
    let mut pseudonym = new_pseudonym()?;
    for _ in 0..5 {
        let taken: i64 = persons::table
            .filter(persons::tenant_id.eq(tenant_id))
            .filter(persons::pseudonym.eq(&pseudonym))
            .count()
            .get_result(conn)?;
        if taken == 0 {
            break;
        }
        pseudonym = new_pseudonym()?;
    }
    let row = PersonRow {
        id: db::new_id(),
        tenant_id: tenant_id.to_string(),
        name,
        pseudonym,
        email,
        phone,
        date_of_birth: dob,
        guardian_person_id: guardian,
        guardian_name,
        guardian_contact,
        never_publish: new.never_publish,
        custom_fields_json: custom,
        avatar_face_id: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        sealed: None,
    };
    // The personal fields go in sealed under the person's (new) key; the plain columns stay
    // blank.
    vault.ensure_person_key(tenant_id, &row.id)?;
    let sealed = vault.seal_personal(tenant_id, &row.id, &row.personal())?;
    let email_index = row
        .email
        .as_deref()
        .map(|e| vault.email_index(tenant_id, e))
        .transpose()?;
    let phone_index = row
        .phone
        .as_deref()
        .map(|p| vault.phone_index(tenant_id, p))
        .transpose()?;
    diesel::insert_into(persons::table)
        .values((
            persons::id.eq(&row.id),
            persons::tenant_id.eq(&row.tenant_id),
            persons::name.eq(""),
            persons::pseudonym.eq(&row.pseudonym),
            persons::guardian_person_id.eq(&row.guardian_person_id),
            persons::never_publish.eq(row.never_publish),
            persons::custom_fields_json.eq("{}"),
            persons::created_at.eq(row.created_at),
            persons::updated_at.eq(row.updated_at),
            persons::sealed.eq(Some(sealed)),
            persons::email_index.eq(email_index),
            persons::phone_index.eq(phone_index),
        ))
        .execute(conn)?;
    audit::record(
        conn,
        who,
        "person.create",
        "person",
        Some(&row.id),
        serde_json::json!({"pseudonym": row.pseudonym}),
    )?;
    Ok(row.out(view))
}

/// Reads a person (audited as `person.read`). Call inside `db::write_tx`.
pub fn get(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    view: &View,
    vault: &Vault,
    id: &str,
) -> Result<PersonOut> {
    let row = load(conn, vault, tenant_id, id)?;
    audit::record(
        conn,
        who,
        "person.read",
        "person",
        Some(id),
        serde_json::json!({}),
    )?;
    Ok(row.out(view))
}

/// The live persons of a tenant as `q` narrows them in SQL (non-personal columns only),
/// revealed: the personal fields are sealed, so searching, sorting and filtering on them happen
/// in memory.
fn load_revealed(
    conn: &mut DbConn,
    vault: &Vault,
    q: persons::BoxedQuery<'_, <DbConn as diesel::Connection>::Backend>,
) -> Result<Vec<PersonRow>> {
    let rows: Vec<PersonRow> = q.select(PersonRow::as_select()).load(conn)?;
    rows.into_iter().map(|r| r.reveal(vault)).collect()
}

/// Whether `r` matches the text `needle` (lower-case): the pseudonym, the e-mail, and the name
/// where names are shown (a hidden name is not searched: a match would reveal it).
fn matches_text(r: &PersonRow, needle: &str, search_name: bool) -> bool {
    r.pseudonym.to_lowercase().contains(needle)
        || r.email
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains(needle))
        || (search_name && r.name.to_lowercase().contains(needle))
}

/// The `q` of a search, trimmed and lower-cased (`%` and `_` dropped as the SQL search did).
fn needle(q: Option<&str>) -> Option<String> {
    q.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|t| t.to_lowercase().replace(['%', '_'], ""))
}

/// Lists persons (audited as `person.list` with the filter and the IDs returned).
/// Call inside `db::write_tx`.
pub fn list(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    view: &View,
    vault: &Vault,
    filter: &PersonFilter,
    page_q: &PageQuery,
) -> Result<Paginated<PersonOut>> {
    use std::cmp::Ordering;
    let page = page_q.page()?;
    let (key, dir) = page_q.sort(SORT_KEYS, ("name", Dir::Asc))?;
    let mut q = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::deleted_at.is_null())
        .into_boxed();
    if let Some(np) = filter.never_publish {
        q = q.filter(persons::never_publish.eq(np));
    }
    // Exact e-mail / phone: through the keyed index (rows not sealed yet: compared below).
    let email = filter
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let phone = filter
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if let Some(e) = email {
        q = q.filter(
            persons::email_index
                .eq(vault.email_index(tenant_id, e)?)
                .or(persons::sealed.is_null()),
        );
    }
    if let Some(p) = phone {
        q = q.filter(
            persons::phone_index
                .eq(vault.phone_index(tenant_id, p)?)
                .or(persons::sealed.is_null()),
        );
    }
    let text = needle(filter.q.as_deref());
    let digits = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect()
    };
    let mut rows: Vec<PersonRow> = load_revealed(conn, vault, q)?
        .into_iter()
        .filter(|r| {
            text.as_deref().is_none_or(|t| matches_text(r, t, true))
                && filter
                    .born_after
                    .is_none_or(|d| r.date_of_birth.is_some_and(|b| b > d))
                && email.is_none_or(|e| {
                    r.email
                        .as_deref()
                        .is_some_and(|x| x.trim().eq_ignore_ascii_case(e))
                })
                && phone.is_none_or(|p| r.phone.as_deref().is_some_and(|x| digits(x) == digits(p)))
        })
        .collect();
    let total = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    // Sorting by a hidden name would leak it: sort by pseudonym instead.
    let key = if key == "name" && view.hide_names {
        "pseudonym"
    } else {
        key
    };
    rows.sort_by(|a, b| {
        let o = match key {
            "name" => a.name.cmp(&b.name),
            "pseudonym" => a.pseudonym.cmp(&b.pseudonym),
            "updated_at" => a.updated_at.cmp(&b.updated_at),
            "date_of_birth" => a.date_of_birth.cmp(&b.date_of_birth),
            _ => a.created_at.cmp(&b.created_at),
        };
        let o: Ordering = o.then_with(|| a.id.cmp(&b.id));
        match dir {
            Dir::Asc => o,
            Dir::Desc => o.reverse(),
        }
    });
    let rows: Vec<PersonRow> = rows
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(page.per_page).unwrap_or(usize::MAX))
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    audit::record(
        conn,
        who,
        "person.list",
        "person",
        None,
        serde_json::json!({
            "q": filter.q, "never_publish": filter.never_publish, "born_after": filter.born_after,
            "by_email": email.is_some(), "by_phone": phone.is_some(),
            "page": page.page, "per_page": page.per_page, "sort": page_q.sort, "ids": ids,
        }),
    )?;
    Ok(Paginated {
        items: rows.into_iter().map(|r| r.out(view)).collect(),
        total,
        page: page.page,
        per_page: page.per_page,
    })
}

/// Changes a person at `now` (the caller's clock; a date of birth after `view.today` is
/// refused). Call inside `db::write_tx`.
#[allow(clippy::too_many_arguments)]
pub fn update(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    view: &View,
    vault: &Vault,
    id: &str,
    patch: PersonPatch,
    now: chrono::NaiveDateTime,
) -> Result<PersonOut> {
    let mut row = load(conn, vault, tenant_id, id)?;
    let mut changed: Vec<&str> = Vec::new();
    if let Some(n) = patch.name {
        row.name = validate::name("name", &n)?;
        changed.push("name");
    }
    if let Some(e) = patch.email {
        row.email = check_email(e)?;
        changed.push("email");
    }
    if let Some(p) = patch.phone {
        row.phone = check_phone(p)?;
        changed.push("phone");
    }
    if let Some(d) = patch.date_of_birth {
        row.date_of_birth = check_dob(d, view.today)?;
        changed.push("date_of_birth");
    }
    if let Some(g) = patch.guardian_person_id {
        row.guardian_person_id = check_guardian(conn, tenant_id, Some(id), g)?;
        changed.push("guardian_person_id");
    }
    if let Some(g) = patch.guardian_name {
        row.guardian_name = opt_text("guardian_name", g, 200)?;
        changed.push("guardian_name");
    }
    if let Some(g) = patch.guardian_contact {
        row.guardian_contact = opt_text("guardian_contact", g, 254)?;
        changed.push("guardian_contact");
    }
    if let Some(n) = patch.never_publish {
        row.never_publish = n;
        changed.push("never_publish");
    }
    if let Some(c) = patch.custom_fields {
        row.custom_fields_json = check_custom(Some(c))?;
        changed.push("custom_fields");
    }
    if let Some(a) = patch.avatar_face_id {
        if let Some(face) = &a {
            let ok: i64 = faces::table
                .filter(faces::tenant_id.eq(tenant_id))
                .filter(faces::id.eq(face))
                .filter(faces::person_id.eq(id))
                .filter(faces::status.eq("confirmed"))
                .count()
                .get_result(conn)?;
            if ok == 0 {
                return Err(ControlError::invalid(
                    "avatar_face_id",
                    "must be a confirmed face of this person",
                ));
            }
        }
        row.avatar_face_id = a;
        changed.push("avatar_face_id");
    }
    row.updated_at = now;
    diesel::update(
        persons::table
            .filter(persons::tenant_id.eq(tenant_id))
            .filter(persons::id.eq(id)),
    )
    .set((
        persons::guardian_person_id.eq(&row.guardian_person_id),
        persons::never_publish.eq(row.never_publish),
        persons::avatar_face_id.eq(&row.avatar_face_id),
        persons::updated_at.eq(row.updated_at),
    ))
    .execute(conn)?;
    store_sealed(conn, vault, &row)?;
    // Never-publish, the date of birth and the guardian decide files' compliance.
    crate::exposure::refresh_person(conn, tenant_id, id, now)?;
    audit::record(
        conn,
        who,
        "person.update",
        "person",
        Some(id),
        serde_json::json!({"fields": changed}),
    )?;
    Ok(row.out(view))
}

/// Deletes a person: marks the row deleted, unlinks their faces, forgets rejections, and queues
/// the removal of their templates from the matcher (job `remove_person_templates`, retried until
/// the matcher confirms), at `now` (the caller's clock). Call inside `db::write_tx`.
pub fn delete(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    id: &str,
    now: chrono::NaiveDateTime,
) -> Result<()> {
    let pseudonym: String = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::id.eq(id))
        .filter(persons::deleted_at.is_null())
        .select(persons::pseudonym)
        .first(conn)
        .optional()?
        .ok_or_else(|| ControlError::not_found("person"))?;
    let their_files = crate::exposure::assets_of_person(conn, tenant_id, id)?;
    diesel::update(
        persons::table
            .filter(persons::tenant_id.eq(tenant_id))
            .filter(persons::id.eq(id)),
    )
    .set((
        persons::deleted_at.eq(Some(now)),
        persons::updated_at.eq(now),
    ))
    .execute(conn)?;
    let unlinked = diesel::update(
        faces::table
            .filter(faces::tenant_id.eq(tenant_id))
            .filter(faces::person_id.eq(id)),
    )
    .set((
        faces::person_id.eq(None::<String>),
        faces::status.eq("unknown"),
        faces::template_enrolled.eq(false),
        faces::decided_by.eq(who.user_id.clone()),
        faces::decided_at.eq(Some(now)),
    ))
    .execute(conn)?;
    diesel::delete(
        face_rejections::table
            .filter(face_rejections::tenant_id.eq(tenant_id))
            .filter(face_rejections::person_id.eq(id)),
    )
    .execute(conn)?;
    crate::jobs::enqueue_job_now(
        conn,
        tenant_id,
        &crate::job_kinds::RemovePersonTemplates {
            person_id: id.to_string(),
        },
        now,
    )?;
    crate::exposure::refresh_assets(conn, tenant_id, &their_files, now)?;
    // For the CMS integration: the person's id only (their files' changes follow as
    // `asset.*` events).
    crate::events::record(
        conn,
        tenant_id,
        crate::events::PERSON_ERASED,
        "person",
        id,
        serde_json::json!({"person_id": id, "files": their_files.len()}),
        now,
    )?;
    audit::record(
        conn,
        who,
        "person.delete",
        "person",
        Some(id),
        serde_json::json!({"pseudonym": pseudonym, "faces_unlinked": unlinked}),
    )?;
    Ok(())
}

/// What [`seal_plaintext`] sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SealReport {
    /// Person rows whose plain personal columns were sealed and blanked.
    pub persons: usize,
    /// Signing requests whose destination was sealed.
    pub signing_requests: usize,
    /// Outbox messages about a person (found through their signing request) sealed.
    pub messages: usize,
    /// Whether the SQLite file was vacuumed afterwards (the old plaintext left its free pages).
    pub vacuumed: bool,
}

/// Seals what a database written before the vault holds in plain text (start-up of `serve` and
/// `migrate`): person rows (their personal columns blanked), signing requests' destinations,
/// and the messages of those requests (destination, subject, bodies; `person_id` set). Works
/// in batches, idempotent (a second run finds nothing); erased persons are left alone. On
/// SQLite, when anything was sealed, the file is vacuumed once so that the plaintext does not
/// linger in free pages (connections also run with `secure_delete`).
pub fn seal_plaintext(conn: &mut DbConn, vault: &Vault) -> Result<SealReport> {
    use crate::schema::{outbox, signing_requests};
    let mut report = SealReport::default();
    loop {
        let n = seal_plain_batch(conn, vault, 200)?;
        if n == 0 {
            break;
        }
        report.persons += n;
    }
    // Signing requests (keyset on the id: rows of erased persons are skipped, not retried).
    let mut after = String::new();
    loop {
        let rows: Vec<(String, String, String, String)> = signing_requests::table
            .filter(signing_requests::id.gt(&after))
            .filter(signing_requests::destination.not_like("pv1:%"))
            .order(signing_requests::id.asc())
            .limit(200)
            .select((
                signing_requests::id,
                signing_requests::tenant_id,
                signing_requests::person_id,
                signing_requests::destination,
            ))
            .load(conn)?;
        let Some(last) = rows.last() else { break };
        after = last.0.clone();
        db::write_tx(conn, |c| {
            for (id, t, p, dest) in &rows {
                if is_erased(c, t, p)? {
                    continue;
                }
                diesel::update(signing_requests::table.filter(signing_requests::id.eq(id)))
                    .set(signing_requests::destination.eq(vault.seal_text(t, p, dest)?))
                    .execute(c)?;
                report.signing_requests += 1;
            }
            Ok(())
        })?;
    }
    // Messages of signing requests, written before `outbox.person_id` existed.
    type MsgRow = (
        String,
        String,
        String,
        Option<String>,
        String,
        Option<String>,
        String,
    );
    let mut after = String::new();
    loop {
        let rows: Vec<MsgRow> = outbox::table
            .inner_join(
                signing_requests::table.on(signing_requests::id
                    .nullable()
                    .eq(outbox::related_id)
                    .and(signing_requests::tenant_id.eq(outbox::tenant_id))),
            )
            .filter(outbox::person_id.is_null())
            .filter(outbox::id.gt(&after))
            .order(outbox::id.asc())
            .limit(200)
            .select((
                outbox::id,
                outbox::tenant_id,
                outbox::destination,
                outbox::subject,
                outbox::body_text,
                outbox::body_html,
                signing_requests::person_id,
            ))
            .load(conn)?;
        let Some(last) = rows.last() else { break };
        after = last.0.clone();
        db::write_tx(conn, |c| {
            for (id, t, dest, subject, text, html, p) in &rows {
                if is_erased(c, t, p)? {
                    continue;
                }
                let seal = |x: &str| -> Result<String> {
                    if Vault::is_sealed_text(x) {
                        Ok(x.to_string())
                    } else {
                        vault.seal_text(t, p, x)
                    }
                };
                diesel::update(outbox::table.filter(outbox::id.eq(id)))
                    .set((
                        outbox::person_id.eq(Some(p)),
                        outbox::destination.eq(seal(dest)?),
                        outbox::subject.eq(subject.as_deref().map(seal).transpose()?),
                        outbox::body_text.eq(seal(text)?),
                        outbox::body_html.eq(html.as_deref().map(seal).transpose()?),
                    ))
                    .execute(c)?;
                report.messages += 1;
            }
            Ok(())
        })?;
    }
    let sealed = report.persons + report.signing_requests + report.messages;
    if sealed > 0 && matches!(conn, DbConn::Sqlite(_)) {
        diesel::sql_query("VACUUM").execute(conn)?;
        // And the WAL, where the old pages were written, emptied (best effort: a reader
        // elsewhere may keep it from truncating; the next checkpoints overwrite it).
        let _ = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").execute(conn);
        report.vacuumed = true;
    }
    Ok(report)
}

fn is_erased(conn: &mut DbConn, tenant_id: &str, person_id: &str) -> Result<bool> {
    let erased: Option<Option<chrono::NaiveDateTime>> = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::id.eq(person_id))
        .select(persons::erased_at)
        .first(conn)
        .optional()?;
    // An unknown person (no row) is treated as erased: nothing to seal it under.
    Ok(erased.is_none_or(|e| e.is_some()))
}

/// [`seal_plaintext`] for a process's dependencies (start-up of `serve` and `migrate`).
pub async fn seal_plaintext_at_start(deps: &crate::Deps) -> Result<SealReport> {
    let vault = deps.vault()?;
    let report = db::run(&deps.pool, move |c| seal_plaintext(c, &vault)).await?;
    if report != SealReport::default() {
        tracing::info!(
            persons = report.persons,
            signing_requests = report.signing_requests,
            messages = report.messages,
            vacuumed = report.vacuumed,
            "vault: plain personal data sealed"
        );
    }
    Ok(report)
}

// Use cases: one entry point per operation, each checking its own permissions. Inputs a
// transport parses (`Result<T>`) are checked after the permissions, so a caller who may not use
// an operation learns that (403), not the operation's input format (400).

/// Lists persons (`see_persons`; audited as `person.list`).
pub async fn list_persons(
    ctx: &Ctx,
    filter: Result<PersonFilter>,
    page: Result<PageQuery>,
) -> Result<Paginated<PersonOut>> {
    ctx.require(Permission::SeePersons)?;
    let (filter, page) = (filter?, page?);
    let cx = ctx.clone();
    let vault = ctx.deps.vault()?;
    db::run(&ctx.deps.pool, move |c| {
        let view = View::of(c, &cx)?;
        let (who, t) = (cx.who(), cx.tenant());
        db::write_tx(c, |c| list(c, &who, t, &view, &vault, &filter, &page))
    })
    .await
}

/// Registers a person (`manage_persons`).
pub async fn create_person(ctx: &Ctx, new: Result<NewPerson>) -> Result<PersonOut> {
    ctx.require(Permission::ManagePersons)?;
    let new = new?;
    let cx = ctx.clone();
    let vault = ctx.deps.vault()?;
    db::run(&ctx.deps.pool, move |c| {
        let view = View::of(c, &cx)?;
        let (who, t) = (cx.who(), cx.tenant());
        db::write_tx(c, |c| create(c, &who, t, &view, &vault, new, cx.now))
    })
    .await
}

/// One person (`see_persons`; audited as `person.read`).
pub async fn get_person(ctx: &Ctx, id: String) -> Result<PersonOut> {
    ctx.require(Permission::SeePersons)?;
    let cx = ctx.clone();
    let vault = ctx.deps.vault()?;
    db::run(&ctx.deps.pool, move |c| {
        let view = View::of(c, &cx)?;
        let (who, t) = (cx.who(), cx.tenant());
        db::write_tx(c, |c| get(c, &who, t, &view, &vault, &id))
    })
    .await
}

/// Changes a person (`manage_persons`).
pub async fn update_person(ctx: &Ctx, id: String, patch: Result<PersonPatch>) -> Result<PersonOut> {
    ctx.require(Permission::ManagePersons)?;
    let patch = patch?;
    let cx = ctx.clone();
    let vault = ctx.deps.vault()?;
    db::run(&ctx.deps.pool, move |c| {
        let view = View::of(c, &cx)?;
        let (who, t) = (cx.who(), cx.tenant());
        db::write_tx(c, |c| update(c, &who, t, &view, &vault, &id, patch, cx.now))
    })
    .await
}

/// Erases a person (`manage_persons` and `erase`): the full erasure of
/// [`crate::erasure::start_erasure`] (personal fields, documents, face links, templates, files
/// per the tenant's policy, then their key), not a soft delete. Every caller (REST `DELETE`,
/// the console) goes through it; the run continues in the background when a step must wait.
pub async fn erase_person(ctx: &Ctx, id: String) -> Result<()> {
    crate::erasure::start_erasure(ctx, id).await.map(|_| ())
}

// The console's register of persons: one page of persons with how their consents stand today
// and their avatar, filtered and paged in SQL (keyset on the shown name and the ID, so a page
// costs the same on the first and the last of 10,000 persons).

/// Which persons the console's register shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterShow {
    /// Everyone.
    #[default]
    All,
    /// No consent in force today.
    NoConsent,
    /// Every consent in force ends within the notice period.
    Expiring,
    /// Younger than the tenant's age threshold today.
    Minors,
    /// Marked "never publish".
    NeverPublish,
}

impl RegisterShow {
    /// The value of the filter in a query string.
    pub fn as_str(self) -> &'static str {
        match self {
            RegisterShow::All => "all",
            RegisterShow::NoConsent => "no_consent",
            RegisterShow::Expiring => "expiring",
            RegisterShow::Minors => "minors",
            RegisterShow::NeverPublish => "never_publish",
        }
    }
}

/// A page request of the register.
#[derive(Debug, Clone, Default)]
pub struct RegisterQuery {
    /// Substring of the name (where names are shown), pseudonym or e-mail (case-insensitive).
    pub q: Option<String>,
    /// Which persons.
    pub show: RegisterShow,
    /// The page after this person (the last of the previous page).
    pub after: Option<String>,
    /// The page before this person (the first of the next page).
    pub before: Option<String>,
    /// Persons per page (default [`REGISTER_PAGE`], at most 200).
    pub limit: Option<i64>,
}

/// Persons per page of the register.
pub const REGISTER_PAGE: i64 = 50;

/// How a person's consents stand today, at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConsentGlance {
    /// A consent is in force beyond the notice period (or until withdrawn).
    Valid,
    /// Consents are in force, but all end within the notice period; the last ends on `until`.
    Expiring {
        /// The last day of the consent in force that ends last.
        until: chrono::NaiveDate,
    },
    /// No consent in force (none recorded, expired, or not yet valid).
    NoConsent,
    /// No consent in force, and the latest one recorded was withdrawn.
    Withdrawn,
}

/// A face to show cropped from its image: the box in the original image's pixels, and the
/// image's size (a thumbnail scaled to that size puts the box in the right place).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceCrop {
    /// The face.
    pub face_id: String,
    /// Its file.
    pub asset_id: String,
    /// Box left.
    pub x: f64,
    /// Box top.
    pub y: f64,
    /// Box width.
    pub w: f64,
    /// Box height.
    pub h: f64,
    /// The image's width in pixels.
    pub width: i32,
    /// The image's height in pixels.
    pub height: i32,
    /// Whether the file has a thumbnail to crop from (else show a placeholder).
    pub has_thumbnail: bool,
}

/// A person of the register.
#[derive(Debug, Clone, Serialize)]
pub struct RegisterEntry {
    /// The person as the actor may see them.
    pub person: PersonOut,
    /// Their consents today.
    pub consent: ConsentGlance,
    /// Their avatar (the chosen face, else their first confirmed face).
    pub avatar: Option<FaceCrop>,
}

/// A page of the register.
#[derive(Debug, Clone, Serialize)]
pub struct RegisterPage {
    /// The persons, by shown name.
    pub items: Vec<RegisterEntry>,
    /// `before` of the previous page, if there is one.
    pub prev_before: Option<String>,
    /// `after` of the next page, if there is one.
    pub next_after: Option<String>,
    /// The tenant's notice period, in days.
    pub notice_days: u32,
}

type PersonsBoxed<'a> = persons::BoxedQuery<'a, <DbConn as diesel::Connection>::Backend>;

/// Filters `q` to persons with (`exists`) or without an agreement in force on `today` whose
/// last day satisfies `until_cond` (an SQL condition on `a.valid_until` with one date bind,
/// `day`). The last day is compared through `COALESCE` (no end = 9999-12-31), which also keeps
/// the planner on the index `agreements (tenant_id, person_id)`: with a plain range on
/// `valid_until`, SQLite probes `agreements (tenant_id, valid_until)` once per person instead
/// (minutes with 100,000 agreements).
fn in_force<'a>(
    q: PersonsBoxed<'a>,
    exists: bool,
    today: chrono::NaiveDate,
    until_cond: &str,
    day: chrono::NaiveDate,
) -> PersonsBoxed<'a> {
    use diesel::sql_types::{Bool, Date};
    let (head, tail) = until_cond.split_once('?').unwrap_or((until_cond, ""));
    q.filter(
        diesel::dsl::sql::<Bool>(if exists { "EXISTS" } else { "NOT EXISTS" })
            .sql(
                " (SELECT 1 FROM agreements a WHERE a.tenant_id = persons.tenant_id \
                 AND a.person_id = persons.id AND a.withdrawn_at IS NULL AND a.valid_from <= ",
            )
            .bind::<Date, _>(today)
            .sql(" AND COALESCE(a.valid_until, '9999-12-31') >= ")
            .bind::<Date, _>(today)
            .sql(" AND ")
            .sql(head)
            .bind::<Date, _>(day)
            .sql(tail)
            .sql(")"),
    )
}

/// The consent glance of each person from their agreements `(person, valid_from, valid_until,
/// withdrawn, created_at)`.
type GlanceRow = (
    String,
    chrono::NaiveDate,
    Option<chrono::NaiveDate>,
    bool,
    chrono::NaiveDateTime,
);

fn glances(
    rows: &[GlanceRow],
    today: chrono::NaiveDate,
    last_day: chrono::NaiveDate,
) -> std::collections::HashMap<String, ConsentGlance> {
    use std::collections::HashMap;
    struct Acc {
        valid: bool,
        until: Option<chrono::NaiveDate>,
        latest: Option<(chrono::NaiveDateTime, bool)>,
    }
    let mut acc: HashMap<&str, Acc> = HashMap::new();
    for (person, from, until, withdrawn, created) in rows {
        let a = acc.entry(person.as_str()).or_insert(Acc {
            valid: false,
            until: None,
            latest: None,
        });
        if a.latest.is_none_or(|(c, _)| *created > c) {
            a.latest = Some((*created, *withdrawn));
        }
        let in_force = !withdrawn && *from <= today && until.is_none_or(|u| u >= today);
        if !in_force {
            continue;
        }
        match until {
            Some(u) if *u <= last_day => a.until = a.until.max(Some(*u)),
            _ => a.valid = true,
        }
    }
    acc.into_iter()
        .map(|(p, a)| {
            let g = if a.valid {
                ConsentGlance::Valid
            } else if let Some(until) = a.until {
                ConsentGlance::Expiring { until }
            } else if a.latest.is_some_and(|(_, w)| w) {
                ConsentGlance::Withdrawn
            } else {
                ConsentGlance::NoConsent
            };
            (p.to_string(), g)
        })
        .collect()
}

type CropRow = (
    String,
    String,
    f64,
    f64,
    f64,
    f64,
    Option<i32>,
    Option<i32>,
    Option<String>,
);

fn crop_of(r: CropRow) -> Option<FaceCrop> {
    let (face_id, asset_id, x1, y1, x2, y2, width, height, thumb) = r;
    Some(FaceCrop {
        face_id,
        asset_id,
        x: x1,
        y: y1,
        w: (x2 - x1).max(1.0),
        h: (y2 - y1).max(1.0),
        width: width?,
        height: height?,
        has_thumbnail: thumb.is_some(),
    })
}

fn crops(conn: &mut DbConn, tenant_id: &str, face_ids: &[String]) -> Result<Vec<FaceCrop>> {
    use crate::schema::assets;
    let rows: Vec<CropRow> = faces::table
        .inner_join(assets::table.on(assets::id.eq(faces::asset_id)))
        .filter(faces::tenant_id.eq(tenant_id))
        .filter(assets::tenant_id.eq(tenant_id))
        .filter(faces::id.eq_any(face_ids))
        .select((
            faces::id,
            faces::asset_id,
            faces::box_x1,
            faces::box_y1,
            faces::box_x2,
            faces::box_y2,
            assets::width,
            assets::height,
            assets::thumb_blob_key,
        ))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(crop_of).collect())
}

/// The minors' cut-off: a person born after this day is a minor on `today`.
fn minors_born_after(today: chrono::NaiveDate, threshold: u32) -> chrono::NaiveDate {
    today
        .checked_sub_months(chrono::Months::new(threshold.saturating_mul(12)))
        .unwrap_or(chrono::NaiveDate::MIN)
}

/// One page of the register (audited as `person.list` with the filter and the IDs shown).
/// Reads outside a transaction and opens a short one for the audit entry: do not call inside
/// `db::write_tx`.
pub fn register_page(
    conn: &mut DbConn,
    who: &Who,
    tenant_id: &str,
    view: &View,
    vault: &Vault,
    notice_days: u32,
    rq: &RegisterQuery,
) -> Result<RegisterPage> {
    let limit = rq.limit.unwrap_or(REGISTER_PAGE);
    if !(1..=200).contains(&limit) {
        return Err(ControlError::invalid("limit", "must be between 1 and 200"));
    }
    let limit_n = usize::try_from(limit).unwrap_or(usize::MAX);
    let today = view.today;
    let last_day = today
        .checked_add_days(chrono::Days::new(u64::from(notice_days)))
        .ok_or_else(|| ControlError::Internal("notice period out of range".into()))?;
    let mut q = persons::table
        .filter(persons::tenant_id.eq(tenant_id))
        .filter(persons::deleted_at.is_null())
        .into_boxed();
    q = match rq.show {
        RegisterShow::All | RegisterShow::Minors => q,
        // In force at all (the day bound is today: always true for one in force).
        RegisterShow::NoConsent => in_force(q, false, today, "(a.valid_from <= ?)", today),
        RegisterShow::Expiring => {
            let q = in_force(
                q,
                true,
                today,
                "COALESCE(a.valid_until, '9999-12-31') <= ?",
                last_day,
            );
            in_force(
                q,
                false,
                today,
                "COALESCE(a.valid_until, '9999-12-31') > ?",
                last_day,
            )
        }
        RegisterShow::NeverPublish => q.filter(persons::never_publish.eq(true)),
    };
    // The personal fields are sealed: the search, the minors and the order by the shown name
    // run in memory over the tenant's persons (the consent filters above still run in SQL).
    let text = needle(rq.q.as_deref());
    let born_after = minors_born_after(today, view.age_threshold);
    let mut all: Vec<PersonRow> = load_revealed(conn, vault, q)?
        .into_iter()
        .filter(|r| {
            text.as_deref()
                .is_none_or(|t| matches_text(r, t, !view.hide_names))
                && (rq.show != RegisterShow::Minors
                    || r.date_of_birth.is_some_and(|d| d > born_after))
        })
        .collect();
    all.sort_by(|a, b| {
        a.shown(view)
            .cmp(b.shown(view))
            .then_with(|| a.id.cmp(&b.id))
    });
    let backward = rq.before.is_some();
    let mut rows: Vec<PersonRow> =
        if let Some(cursor) = rq.after.as_deref().or(rq.before.as_deref()) {
            let c = persons::table
                .filter(persons::tenant_id.eq(tenant_id))
                .filter(persons::id.eq(cursor))
                .select(PersonRow::as_select())
                .first(conn)
                .optional()?
                .ok_or_else(|| ControlError::invalid("after", "no such person"))?
                .reveal(vault)?;
            let key = (c.shown(view).to_string(), c.id.clone());
            let before_cursor =
                |r: &PersonRow| (r.shown(view), r.id.as_str()) < (key.0.as_str(), key.1.as_str());
            if backward {
                // The page just before the cursor, nearest first.
                let n = all.iter().take_while(|r| before_cursor(r)).count();
                all.truncate(n);
                all.into_iter().rev().take(limit_n + 1).collect()
            } else {
                all.into_iter()
                    .skip_while(|r| before_cursor(r) || r.id == key.1)
                    .take(limit_n + 1)
                    .collect()
            }
        } else {
            all.into_iter().take(limit_n + 1).collect()
        };
    let more = rows.len() > limit_n;
    rows.truncate(limit_n);
    if backward {
        rows.reverse();
    }
    let (has_prev, has_next) = if backward {
        (more, true)
    } else {
        (rq.after.is_some(), more)
    };
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    type AgreementDates = (
        String,
        chrono::NaiveDate,
        Option<chrono::NaiveDate>,
        Option<chrono::NaiveDateTime>,
        chrono::NaiveDateTime,
    );
    let agreement_rows: Vec<AgreementDates> = crate::schema::agreements::table
        .filter(crate::schema::agreements::tenant_id.eq(tenant_id))
        .filter(crate::schema::agreements::person_id.eq_any(&ids))
        .select((
            crate::schema::agreements::person_id,
            crate::schema::agreements::valid_from,
            crate::schema::agreements::valid_until,
            crate::schema::agreements::withdrawn_at,
            crate::schema::agreements::created_at,
        ))
        .load(conn)?;
    let agreement_rows: Vec<_> = agreement_rows
        .into_iter()
        .map(|(p, f, u, w, c)| (p, f, u, w.is_some(), c))
        .collect();
    let glance = glances(&agreement_rows, today, last_day);
    // Avatars: the chosen face, else the person's first confirmed face.
    let without: Vec<&str> = rows
        .iter()
        .filter(|r| r.avatar_face_id.is_none())
        .map(|r| r.id.as_str())
        .collect();
    let firsts: Vec<(Option<String>, Option<String>)> = if without.is_empty() {
        Vec::new()
    } else {
        faces::table
            .filter(faces::tenant_id.eq(tenant_id))
            .filter(faces::person_id.eq_any(&without))
            .filter(faces::status.eq(crate::faces::CONFIRMED))
            .group_by(faces::person_id)
            .select((faces::person_id, diesel::dsl::min(faces::id)))
            .load(conn)?
    };
    let mut avatar_of: std::collections::HashMap<String, String> = firsts
        .into_iter()
        .filter_map(|(p, f)| Some((p?, f?)))
        .collect();
    for r in &rows {
        if let Some(f) = &r.avatar_face_id {
            avatar_of.insert(r.id.clone(), f.clone());
        }
    }
    let face_ids: Vec<String> = avatar_of.values().cloned().collect();
    let mut crop_by_face: std::collections::HashMap<String, FaceCrop> =
        crops(conn, tenant_id, &face_ids)?
            .into_iter()
            .map(|c| (c.face_id.clone(), c))
            .collect();
    // The reads above ran outside any transaction; only the audit entry takes the write lock
    // (on SQLite a page read inside it would block every writer for its whole duration).
    db::write_tx(conn, |c| {
        audit::record(
            c,
            who,
            "person.list",
            "person",
            None,
            serde_json::json!({
                "q": rq.q, "show": rq.show, "after": rq.after, "before": rq.before, "ids": ids,
            }),
        )
        .map(|_| ())
    })?;
    let prev_before = has_prev
        .then(|| rows.first().map(|r| r.id.clone()))
        .flatten();
    let next_after = has_next
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let items = rows
        .into_iter()
        .map(|r| {
            let consent = glance
                .get(&r.id)
                .copied()
                .unwrap_or(ConsentGlance::NoConsent);
            let avatar = avatar_of.get(&r.id).and_then(|f| crop_by_face.remove(f));
            RegisterEntry {
                person: r.out(view),
                consent,
                avatar,
            }
        })
        .collect();
    Ok(RegisterPage {
        items,
        prev_before,
        next_after,
        notice_days,
    })
}

/// A page of the console's register of persons (`see_persons`; audited as `person.list`).
pub async fn register(ctx: &Ctx, rq: RegisterQuery) -> Result<RegisterPage> {
    ctx.require(Permission::SeePersons)?;
    let cx = ctx.clone();
    let vault = ctx.deps.vault()?;
    db::run(&ctx.deps.pool, move |c| {
        let s = settings::get(c, cx.tenant())?;
        let view = View {
            age_threshold: s.age_threshold,
            hide_names: !shows_real_names(&cx.actor, &s),
            today: cx.today(),
        };
        let (who, t) = (cx.who(), cx.tenant());
        register_page(c, &who, t, &view, &vault, s.notice_days, &rq)
    })
    .await
}

/// The confirmed faces of a person, newest first, at most `limit`, as crops of their images
/// (`see_persons`).
pub async fn person_faces(ctx: &Ctx, id: String, limit: i64) -> Result<Vec<FaceCrop>> {
    ctx.require(Permission::SeePersons)?;
    let t = ctx.tenant().to_string();
    db::run(&ctx.deps.pool, move |c| {
        let n: i64 = persons::table
            .filter(persons::tenant_id.eq(&t))
            .filter(persons::id.eq(&id))
            .filter(persons::deleted_at.is_null())
            .count()
            .get_result(c)?;
        if n == 0 {
            return Err(ControlError::not_found("person"));
        }
        let ids: Vec<String> = faces::table
            .filter(faces::tenant_id.eq(&t))
            .filter(faces::person_id.eq(&id))
            .filter(faces::status.eq(crate::faces::CONFIRMED))
            .order((faces::created_at.desc(), faces::id.desc()))
            .limit(limit)
            .select(faces::id)
            .load(c)?;
        let mut by_id: std::collections::HashMap<String, FaceCrop> = crops(c, &t, &ids)?
            .into_iter()
            .map(|f| (f.face_id.clone(), f))
            .collect();
        Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_real_names() {
        let actor = |ps: &[Permission]| Actor {
            tenant_id: "t".into(),
            user_id: "u".into(),
            label: "u".into(),
            role: crate::roles::Role::Viewer,
            permissions: ps.iter().copied().collect(),
            via: crate::auth::AuthVia::Token,
            ip: None,
        };
        let open = TenantSettings::default();
        let hidden = TenantSettings {
            pseudonymous_names: true,
            ..TenantSettings::default()
        };
        let (none, see, export) = (
            actor(&[]),
            actor(&[Permission::SeePersons]),
            actor(&[Permission::SeePersons, Permission::Export]),
        );
        assert!(!shows_real_names(&none, &open));
        assert!(shows_real_names(&see, &open));
        assert!(!shows_real_names(&see, &hidden));
        assert!(shows_real_names(&export, &hidden));
        assert!(!shows_real_names(&actor(&[Permission::Export]), &hidden));
    }

    #[test]
    fn pseudonyms_look_right() {
        let p = new_pseudonym().unwrap();
        assert_eq!(p.len(), 10);
        assert!(p.starts_with("P-"));
        assert_ne!(p, new_pseudonym().unwrap());
    }

    #[test]
    fn custom_fields_are_checked() {
        assert_eq!(check_custom(None).unwrap(), "{}");
        assert!(check_custom(Some(serde_json::json!({"team": "U12", "n": 3}))).is_ok());
        assert!(check_custom(Some(serde_json::json!([1]))).is_err());
        let e = check_custom(Some(serde_json::json!({"x": {"nested": 1}}))).unwrap_err();
        assert!(e.to_string().contains("custom_fields.x"));
    }

    #[test]
    fn patch_tells_absent_from_null() {
        let p: PersonPatch = serde_json::from_str(r#"{"email": null}"#).unwrap();
        assert_eq!(p.email, Some(None));
        assert_eq!(p.phone, None);
        assert!(serde_json::from_str::<PersonPatch>(r#"{"nope": 1}"#).is_err());
    }
}
