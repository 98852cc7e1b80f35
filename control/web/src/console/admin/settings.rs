//! `/admin/settings`: channels, notice period, age of majority, pseudonymous names and what
//! users may do with files that are not approved.

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use likeness_control_domain::{NonApprovedUse, TenantSettings};
use serde::Deserialize;

use crate::roles::Permission;
use crate::service::settings::{self, domain_error_at};
use crate::service::{ControlError, Ctx};

use super::super::{ConsoleUser, Layout, Result, State, done, parse_form, render};

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    l: Layout,
    s: TenantSettings,
    policies: &'static [NonApprovedUse],
}

async fn page(req: HttpRequest, user: ConsoleUser, state: State) -> Result<HttpResponse> {
    let ctx = user.ctx(&state);
    // Every user may read the settings (clients need the channels); this page changes them.
    ctx.require(Permission::ManageSettings)?;
    let s = settings::get_settings(&ctx).await?;
    render(&SettingsPage {
        l: Layout::new(&req, &user, &ctx, "settings"),
        s,
        policies: NonApprovedUse::ALL,
    })
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    remove_channels: Vec<String>,
    new_channel: Option<String>,
    notice_days: String,
    age_threshold: String,
    pseudonymous_names: Option<String>,
    non_approved_use: String,
}

fn number(field: &str, v: &str) -> crate::service::Result<u32> {
    v.trim()
        .parse()
        .map_err(|_| ControlError::invalid(field, format!("{v:?} is not a whole number")))
}

impl SettingsForm {
    /// The settings the form asks for (the services validate them).
    fn settings(self) -> crate::service::Result<TenantSettings> {
        let mut channels: Vec<String> = self
            .channels
            .into_iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty() && !self.remove_channels.contains(c))
            .collect();
        if let Some(new) = super::opt(self.new_channel) {
            channels.push(new);
        }
        Ok(TenantSettings {
            channels,
            notice_days: number("notice_days", &self.notice_days)?,
            age_threshold: number("age_threshold", &self.age_threshold)?,
            pseudonymous_names: self.pseudonymous_names.is_some(),
            non_approved_use: self
                .non_approved_use
                .parse()
                .map_err(|e| domain_error_at("non_approved_use", e))?,
        })
    }
}

async fn save(
    req: HttpRequest,
    user: ConsoleUser,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let form: SettingsForm = parse_form(&user, &body)?;
    let ctx: Ctx = user.ctx(&state);
    settings::put_settings(&ctx, form.settings()).await?;
    Ok(done(&req, "/admin/settings?notice=saved"))
}

/// Registers the settings page.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route("/admin/settings", web::get().to(page))
        .route("/admin/settings", web::post().to(save));
}
