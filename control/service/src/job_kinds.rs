//! The services' job kinds ([`crate::jobs::BackgroundJob`]), and the one list that registers
//! them ([`register`]). Each kind keeps the name and payload JSON it had as an untyped job, so
//! rows queued before stay runnable.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::jobs::{BackgroundJob, JobCtx, Registry};

/// Registers the services' kinds (used by [`Registry::standard`]).
pub fn register(r: Registry) -> Registry {
    r.register::<SuggestFaces>()
        .register::<EnrollFace>()
        .register::<RemovePersonTemplates>()
        .register::<RemoveTemplates>()
        .register::<Rematch>()
        .register::<FaceMatchingConsentEnd>()
        .register::<DeliverMessage>()
        .register::<ErasePerson>()
        .register::<BuildExport>()
}

/// Delivers one outbox message by e-mail or SMS (`deliver_message`); see [`crate::outbox`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverMessage {
    /// The message (outbox row) id.
    pub message_id: String,
}

impl BackgroundJob for DeliverMessage {
    const KIND: &'static str = "deliver_message";

    async fn run(&self, ctx: &JobCtx<'_>) -> Result<()> {
        crate::outbox::deliver(ctx.deps, ctx.tenant, &self.message_id).await
    }
}

/// Faces of an asset version from the matcher's Suggest (`suggest_faces`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuggestFaces {
    /// The asset.
    pub asset_id: String,
    /// Its version when queued (0: whatever is current).
    #[serde(default)]
    pub version: i64,
}

impl BackgroundJob for SuggestFaces {
    const KIND: &'static str = "suggest_faces";

    async fn run(&self, ctx: &JobCtx<'_>) -> Result<()> {
        crate::faces::detect_asset(ctx.deps, ctx.tenant, &self.asset_id, self.version).await
    }
}

/// Enrolls a confirmed face's template (`enroll_face`), when the matcher was down at
/// confirmation; does nothing if the face changed or the consent no longer allows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollFace {
    /// The face.
    pub face_id: String,
}

impl BackgroundJob for EnrollFace {
    const KIND: &'static str = "enroll_face";

    async fn run(&self, ctx: &JobCtx<'_>) -> Result<()> {
        crate::faces::enroll_confirmed(ctx.deps, ctx.tenant, &self.face_id).await
    }
}

/// Removes every template of a person from the matcher (`remove_person_templates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovePersonTemplates {
    /// The person.
    pub person_id: String,
}

impl BackgroundJob for RemovePersonTemplates {
    const KIND: &'static str = "remove_person_templates";

    async fn run(&self, ctx: &JobCtx<'_>) -> Result<()> {
        crate::faces::remove_person_templates_now(ctx.deps, ctx.tenant, &self.person_id).await
    }
}

/// Removes templates by id from the matcher (`remove_templates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveTemplates {
    /// The matcher's template ids.
    #[serde(default)]
    pub template_ids: Vec<u64>,
}

impl BackgroundJob for RemoveTemplates {
    const KIND: &'static str = "remove_templates";

    async fn run(&self, ctx: &JobCtx<'_>) -> Result<()> {
        crate::faces::remove_templates_now(ctx.deps, ctx.tenant, self.template_ids.clone()).await
    }
}

/// One batch of a re-match run (`rematch`); it queues the next batch itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rematch {
    /// The run.
    pub run_id: String,
}

impl BackgroundJob for Rematch {
    const KIND: &'static str = crate::rematch::REMATCH;

    async fn run(&self, ctx: &JobCtx<'_>) -> Result<()> {
        crate::rematch::run_batch(ctx.deps, ctx.tenant, &self.run_id).await
    }
}

/// Due when a consent covering face matching ends (the day after its `valid_until`): if the
/// person then has no face-matching consent in force, their templates are forgotten and a
/// [`RemovePersonTemplates`] job is queued ([`crate::faces::end_lapsed_face_matching`]). The
/// scheduler's periodic tick does the same for every person, so a lost or late job changes
/// nothing but the delay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaceMatchingConsentEnd {
    /// The person.
    pub person_id: String,
}

impl BackgroundJob for FaceMatchingConsentEnd {
    const KIND: &'static str = "face_matching_consent_end";

    async fn run(&self, ctx: &JobCtx<'_>) -> Result<()> {
        let (t, p, now) = (ctx.tenant.to_string(), self.person_id.clone(), ctx.now());
        crate::db::run(&ctx.deps.pool, move |c| {
            crate::faces::end_lapsed_face_matching(c, &t, &p, now)
        })
        .await?;
        Ok(())
    }
}

/// Builds an access-export package (`build_export`); see [`crate::access_export`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildExport {
    /// The export.
    pub export_id: String,
}

impl BackgroundJob for BuildExport {
    const KIND: &'static str = "build_export";

    async fn run(&self, ctx: &JobCtx<'_>) -> Result<()> {
        crate::access_export::build_export(ctx.deps, &self.export_id).await
    }
}

/// Drives an erasure run to its end (`erase_person`); see [`crate::erasure`]. While a step
/// waits for the matcher the job fails retryably and is tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasePerson {
    /// The run.
    pub run_id: String,
}

impl BackgroundJob for ErasePerson {
    const KIND: &'static str = "erase_person";

    async fn run(&self, ctx: &JobCtx<'_>) -> Result<()> {
        crate::erasure::run_job(ctx.deps, ctx.tenant, &self.run_id).await
    }
}
