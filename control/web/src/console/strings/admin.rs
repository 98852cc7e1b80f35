use likeness_control_domain::{NonApprovedUse, Permission, Role};

use super::strings;

strings! {
    /// The strings of the admin pages: settings, users, API tokens, roles, the audit log and
    /// re-matching.
    Admin {
        title: "Admin",
        // Settings.
        settings_title: "Settings",
        settings_intro: "These settings apply to everyone in your organisation.",
        settings_channels: "Channels",
        settings_channels_help: "Where files are used. Consents name the channels they cover, and whether a file may be used is decided per channel.",
        settings_channel_remove: "Remove",
        settings_channel_new: "Add a channel",
        settings_channel_new_help: "A lower case letter, then lower case letters, digits, - and _ (for example: newsletter).",
        settings_notice_days: "Notice period (days)",
        settings_notice_days_help: "How many days before a consent ends it is reported as expiring.",
        settings_age_threshold: "Age of majority (years)",
        settings_age_threshold_help: "Younger persons need a consent signed by a guardian.",
        settings_pseudonymous: "Pseudonymous names",
        settings_pseudonymous_help: "Show persons' pseudonymous IDs instead of their names.",
        settings_non_approved: "Files that are not approved",
        settings_non_approved_help: "What users may do with files that may not be used on a channel.",
        non_approved_block: "Block: nobody may use them",
        non_approved_warn: "Warn: everybody may use them after a warning",
        non_approved_allow_with_permission: "Only roles with the permission \"Use files that are not approved\" may use them",
        settings_save: "Save settings",
        // Users.
        users_title: "Users",
        users_email: "E-mail",
        users_name: "Name",
        users_role: "Role",
        users_state: "State",
        users_active: "Active",
        users_disabled: "Disabled",
        users_you: "you",
        users_change_role: "Change role",
        users_role_of: "Role of",
        users_disable: "Disable",
        users_enable: "Enable",
        users_new: "New user",
        users_password: "Initial password",
        users_password_help: "At least 10 characters. Leave empty for an integration user who uses API tokens only.",
        users_create: "Create user",
        users_set_password: "Set a new password",
        users_new_password: "New password",
        users_save_password: "Save password",
        // Roles.
        roles_title: "Roles and permissions",
        roles_intro: "Tick what each role may do. The changes apply to every user of the role at their next request.",
        roles_permission: "Permission",
        roles_save: "Save permissions",
        // Tokens.
        tokens_title: "API tokens",
        tokens_intro: "Programs use API tokens to call the API as a user (Authorization: Bearer ...).",
        tokens_name: "Name",
        tokens_user: "User",
        tokens_last_used: "Last used",
        tokens_never: "never",
        tokens_revoked: "Revoked",
        tokens_active: "Active",
        tokens_revoke: "Revoke",
        tokens_revoke_label: "Revoke token",
        tokens_new: "New token",
        tokens_for: "For user",
        tokens_create: "Create token",
        tokens_created_title: "Your new API token",
        tokens_copy_now: "Copy the token now: it is shown only this once and cannot be shown again. If it is lost, revoke it and create a new one.",
        tokens_secret: "Token",
        tokens_back: "Back to the API tokens",
        // Audit log.
        audit_title: "Audit log",
        audit_intro: "Every change and every read of personal data, newest first. The entries form a hash chain: a changed, removed or reordered entry breaks it.",
        audit_seq: "No.",
        audit_at: "When (UTC)",
        audit_actor: "Who",
        audit_ip: "From",
        audit_action: "Action",
        audit_object_type: "Object",
        audit_object_id: "Object ID",
        audit_detail: "Details",
        audit_filter_action: "Action (for example person.read)",
        audit_filter_object_type: "Object type",
        audit_filter_object: "Object ID",
        audit_filter_actor: "Who (e-mail)",
        audit_filter_from: "From (date)",
        audit_filter_to: "Up to and including (date)",
        audit_filter_limit: "Entries per page",
        audit_older: "Older entries",
        audit_newest: "Newest entries",
        audit_verify: "Verify the chain",
        audit_verify_title: "Verification of the audit chain",
        audit_verify_ok: "The chain is intact.",
        audit_verify_broken: "The chain is broken.",
        audit_verify_checked: "Entries checked",
        audit_verify_last: "Last entry",
        audit_verify_last_hash: "Hash of the last entry",
        audit_verify_break_at: "First break at entry",
        audit_verify_kind: "What happened",
        audit_verify_kind_edited: "an entry was changed",
        audit_verify_kind_reordered: "entries were reordered",
        audit_verify_kind_removed: "entries were removed",
        audit_verify_message: "Explanation",
        audit_back: "Back to the audit log",
        // Re-matching.
        rematch_title: "Re-matching",
        rematch_intro: "Runs face matching again over the archive, for example after new persons were added. Human decisions (confirmed, rejected or hand-drawn faces) are never changed.",
        rematch_runs: "Runs",
        rematch_none: "No re-matching run yet.",
        rematch_started: "Started (UTC)",
        rematch_progress: "Progress",
        rematch_progress_of: "files of",
        rematch_changed: "Files changed",
        rematch_dry_run: "Dry run",
        rematch_dry_run_help: "Only report what would change; change nothing.",
        rematch_status_running: "Running",
        rematch_status_done: "Done",
        rematch_status_cancelled: "Cancelled",
        rematch_eta: "seconds left",
        rematch_model: "Model",
        rematch_cancel: "Cancel",
        rematch_cancel_label: "Cancel the run started",
        rematch_refresh: "Refresh",
        rematch_report: "Report",
        rematch_added: "faces added",
        rematch_updated: "suggestions updated",
        rematch_removed: "faces removed",
        rematch_kept: "human decisions kept",
        rematch_skipped: "files skipped",
        rematch_start: "Start re-matching",
        rematch_created_from: "Files uploaded from (date)",
        rematch_created_to: "Files uploaded up to and including (date)",
        rematch_asset_ids: "Only these files (IDs, one a line; empty: all)",
        rematch_start_failed: "The run could not be started",
        rematch_job_error: "The last batch of a run failed and will be tried again",
        // Notices after a redirect.
        notice_user_created: "The user was created.",
        notice_user_updated: "The user was changed.",
        notice_roles_saved: "The permissions were saved.",
        notice_token_revoked: "The token was revoked.",
        notice_rematch_started: "Re-matching started.",
        notice_rematch_cancelled: "The run was cancelled.",
        // Roles and permissions by name.
        role_admin: "Administrator",
        role_privacy_officer: "Privacy officer",
        role_editor: "Editor",
        role_viewer: "Viewer",
        role_integration: "Integration",
        perm_see_persons: "See persons",
        perm_see_persons_help: "See persons: names, contact details, dates of birth.",
        perm_manage_persons: "Manage persons",
        perm_manage_persons_help: "Create and change persons; link faces to them (deleting a person also needs \"Erase personal data\").",
        perm_manage_consents: "Manage consents",
        perm_manage_consents_help: "Record, change and withdraw consents; set the legal basis of files.",
        perm_manage_assets: "Manage files",
        perm_manage_assets_help: "Upload, change and delete files and their faces; run re-matching.",
        perm_use_unapproved_files: "Use files that are not approved",
        perm_use_unapproved_files_help: "Download for use files that are not approved, where the settings allow it.",
        perm_export: "Export a person's data",
        perm_export_help: "Export everything about a person (access requests).",
        perm_erase: "Erase personal data",
        perm_erase_help: "Delete a person, their faces' links and their face templates.",
        perm_manage_users: "Manage users",
        perm_manage_users_help: "Manage users, roles and API tokens.",
        perm_manage_settings: "Change settings",
        perm_manage_settings_help: "Change the organisation's settings.",
        perm_read_audit: "Read the audit log",
        perm_read_audit_help: "Read and verify the audit log.",
    }
}

impl Admin {
    /// The name of a role.
    pub fn role(&self, r: &Role) -> &'static str {
        match r {
            Role::Admin => self.role_admin,
            Role::PrivacyOfficer => self.role_privacy_officer,
            Role::Editor => self.role_editor,
            Role::Viewer => self.role_viewer,
            Role::Integration => self.role_integration,
        }
    }

    /// The short name of a permission and what it allows.
    pub fn permission(&self, p: &Permission) -> (&'static str, &'static str) {
        match p {
            Permission::SeePersons => (self.perm_see_persons, self.perm_see_persons_help),
            Permission::ManagePersons => (self.perm_manage_persons, self.perm_manage_persons_help),
            Permission::ManageConsents => {
                (self.perm_manage_consents, self.perm_manage_consents_help)
            }
            Permission::ManageAssets => (self.perm_manage_assets, self.perm_manage_assets_help),
            Permission::UseUnapprovedFiles => (
                self.perm_use_unapproved_files,
                self.perm_use_unapproved_files_help,
            ),
            Permission::Export => (self.perm_export, self.perm_export_help),
            Permission::Erase => (self.perm_erase, self.perm_erase_help),
            Permission::ManageUsers => (self.perm_manage_users, self.perm_manage_users_help),
            Permission::ManageSettings => {
                (self.perm_manage_settings, self.perm_manage_settings_help)
            }
            Permission::ReadAudit => (self.perm_read_audit, self.perm_read_audit_help),
        }
    }

    /// The description of a policy for files that are not approved.
    pub fn non_approved(&self, v: &NonApprovedUse) -> &'static str {
        match v {
            NonApprovedUse::Block => self.non_approved_block,
            NonApprovedUse::Warn => self.non_approved_warn,
            NonApprovedUse::AllowWithPermission => self.non_approved_allow_with_permission,
        }
    }

    /// The name of a re-matching run's status.
    pub fn run_status(&self, s: &str) -> &'static str {
        match s {
            "running" => self.rematch_status_running,
            "done" => self.rematch_status_done,
            "cancelled" => self.rematch_status_cancelled,
            _ => "?",
        }
    }
}
