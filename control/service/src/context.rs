//! The one context every service function is called with: who acts (actor, tenant,
//! permissions), when (the clock's now, read once per call), and the process's dependencies.
//! Each service function checks the permissions it needs itself, so a console page, a CLI
//! command or a job cannot forget a check.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};

use crate::Deps;
use crate::audit::Who;
use crate::auth::{Actor, AuthVia};
use crate::error::Result;
use crate::roles::{Permission, Role};

/// Who acts, in which tenant, with which permissions, at what time, with what dependencies.
#[derive(Clone)]
pub struct Ctx {
    /// The process's dependencies.
    pub deps: Arc<Deps>,
    /// The actor (tenant, user, role, permissions, address).
    pub actor: Actor,
    /// The time of this call (the clock's now when the context was made).
    pub now: NaiveDateTime,
    /// The system acts (a job, the scheduler, the CLI), not a user.
    pub system: bool,
}

impl Ctx {
    /// The context of `actor` acting now.
    pub fn new(deps: Arc<Deps>, actor: Actor) -> Self {
        let now = deps.clock.now();
        // Opens (and registers) the vault, which code deep inside a transaction finds through
        // `vault::ambient` (a process without a usable blob store fails later, where it's used).
        let _ = deps.vault();
        Self {
            deps,
            actor,
            now,
            system: false,
        }
    }

    /// The system acting in `tenant_id` with every permission (jobs, the scheduler, the CLI);
    /// `label` names it in the audit log (e.g. `system:scheduler`).
    pub fn system(deps: Arc<Deps>, tenant_id: &str, label: &str) -> Self {
        let actor = Actor {
            tenant_id: tenant_id.to_string(),
            user_id: String::new(),
            label: label.to_string(),
            role: Role::Admin,
            permissions: Permission::ALL.iter().copied().collect(),
            via: AuthVia::Token,
            ip: None,
        };
        Self {
            system: true,
            ..Self::new(deps, actor)
        }
    }

    /// The tenant every query is scoped to.
    pub fn tenant(&self) -> &str {
        &self.actor.tenant_id
    }

    /// `Ok` if the actor has `p`, else `Forbidden` naming the permission.
    pub fn require(&self, p: Permission) -> Result<()> {
        self.actor.require(p)
    }

    /// Whether the actor has `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.actor.has(p)
    }

    /// The audit identity of the actor.
    pub fn who(&self) -> Who {
        if self.system {
            return Who::system(&self.actor.label, Some(&self.actor.tenant_id));
        }
        self.actor.who()
    }

    /// Today (UTC) at the time of this call.
    pub fn today(&self) -> NaiveDate {
        self.now.date()
    }
}
