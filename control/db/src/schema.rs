//! Diesel table definitions, identical for SQLite and PostgreSQL (see `migrations/`).
#![allow(missing_docs)]

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        slug -> Text,
        settings_json -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        tenant_id -> Text,
        email -> Text,
        password_hash -> Nullable<Text>,
        role -> Text,
        display_name -> Text,
        disabled -> Bool,
        created_at -> Timestamp,
        digest_opt_out -> Bool,
    }
}

diesel::table! {
    role_permissions (tenant_id, role, permission) {
        tenant_id -> Text,
        role -> Text,
        permission -> Text,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        tenant_id -> Text,
        user_id -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        tenant_id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    persons (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        pseudonym -> Text,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        date_of_birth -> Nullable<Date>,
        guardian_person_id -> Nullable<Text>,
        guardian_name -> Nullable<Text>,
        guardian_contact -> Nullable<Text>,
        never_publish -> Bool,
        custom_fields_json -> Text,
        avatar_face_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        sealed -> Nullable<Text>,
        email_index -> Nullable<Text>,
        phone_index -> Nullable<Text>,
        erased_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    assets (id) {
        id -> Text,
        tenant_id -> Text,
        kind -> Text,
        filename -> Text,
        mime -> Text,
        size_bytes -> BigInt,
        sha256 -> Text,
        phash -> Nullable<Text>,
        width -> Nullable<Integer>,
        height -> Nullable<Integer>,
        blob_key -> Text,
        thumb_blob_key -> Nullable<Text>,
        legal_basis -> Nullable<Text>,
        legal_basis_note -> Nullable<Text>,
        metadata_json -> Text,
        current_version -> Integer,
        uploaded_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    asset_versions (id) {
        id -> Text,
        asset_id -> Text,
        tenant_id -> Text,
        version -> Integer,
        blob_key -> Text,
        sha256 -> Text,
        size_bytes -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    faces (id) {
        id -> Text,
        tenant_id -> Text,
        asset_id -> Text,
        source -> Text,
        status -> Text,
        person_id -> Nullable<Text>,
        box_x1 -> Double,
        box_y1 -> Double,
        box_x2 -> Double,
        box_y2 -> Double,
        landmarks_json -> Nullable<Text>,
        score -> Nullable<Double>,
        identifiable -> Bool,
        quality_json -> Nullable<Text>,
        candidates_json -> Nullable<Text>,
        model_version -> Nullable<Text>,
        template_enrolled -> Bool,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    face_rejections (face_id, person_id) {
        face_id -> Text,
        person_id -> Text,
        tenant_id -> Text,
        rejected_by -> Nullable<Text>,
        rejected_at -> Timestamp,
    }
}

diesel::table! {
    agreements (id) {
        id -> Text,
        tenant_id -> Text,
        person_id -> Text,
        channels_json -> Text,
        valid_from -> Date,
        valid_until -> Nullable<Date>,
        source -> Text,
        covers_face_matching -> Bool,
        signed_by_guardian -> Bool,
        text_sha256 -> Nullable<Text>,
        note -> Nullable<Text>,
        withdrawn_at -> Nullable<Timestamp>,
        withdrawal_reason -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        end_announced_at -> Nullable<Timestamp>,
        documents_deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    agreement_documents (id) {
        id -> Text,
        tenant_id -> Text,
        agreement_id -> Text,
        filename -> Text,
        mime -> Text,
        size_bytes -> BigInt,
        sha256 -> Text,
        blob_key -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        tenant_id -> Text,
        kind -> Text,
        payload_json -> Text,
        status -> Text,
        attempts -> Integer,
        run_after -> Timestamp,
        locked_by -> Nullable<Text>,
        locked_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    rematch_runs (id) {
        id -> Text,
        tenant_id -> Text,
        filter_json -> Text,
        dry_run -> Bool,
        status -> Text,
        total -> BigInt,
        done -> BigInt,
        changed -> BigInt,
        cursor -> Nullable<Text>,
        model_version -> Nullable<Text>,
        started_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        report_json -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        tenant_id -> Nullable<Text>,
        at -> Timestamp,
        actor_user_id -> Nullable<Text>,
        actor_label -> Text,
        ip -> Nullable<Text>,
        action -> Text,
        object_type -> Text,
        object_id -> Nullable<Text>,
        detail_json -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    /// (MEDIA) Matcher templates enrolled from confirmed faces.
    face_templates (tenant_id, template_id) {
        /// Matcher template id.
        template_id -> BigInt,
        /// Tenant.
        tenant_id -> Text,
        /// Face it was enrolled from.
        face_id -> Text,
        /// Person.
        person_id -> Text,
        /// When.
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// (SIGNING) Agreement templates of a tenant; content in versions.
    consent_templates (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        archived_at -> Nullable<Timestamp>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// (SIGNING) A template version; immutable once `first_sent_at` is set.
    consent_template_versions (id) {
        id -> Text,
        tenant_id -> Text,
        template_id -> Text,
        version -> Integer,
        title -> Text,
        body_markdown -> Text,
        language -> Text,
        scopes_json -> Text,
        face_matching_text -> Nullable<Text>,
        validity_days -> Nullable<Integer>,
        legal_character -> Text,
        after_signing_text -> Text,
        text_sha256 -> Text,
        first_sent_at -> Nullable<Timestamp>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// (SIGNING) Requests to sign, sent by e-mail or SMS.
    signing_requests (id) {
        id -> Text,
        tenant_id -> Text,
        person_id -> Text,
        template_version_id -> Text,
        purpose -> Text,
        renews_agreement_id -> Nullable<Text>,
        channel -> Text,
        destination -> Text,
        destination_sha256 -> Text,
        language -> Text,
        token_sha256 -> Text,
        asset_ids_json -> Text,
        valid_until -> Nullable<Date>,
        status -> Text,
        pending_json -> Nullable<Text>,
        expires_at -> Timestamp,
        opened_at -> Nullable<Timestamp>,
        signed_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Text>,
        revoke_reason -> Nullable<Text>,
        locked_at -> Nullable<Timestamp>,
        agreement_id -> Nullable<Text>,
        evidence_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// (SIGNING) One-time codes (keyed hashes only).
    otp_challenges (id) {
        id -> Text,
        tenant_id -> Text,
        request_id -> Nullable<Text>,
        evidence_id -> Nullable<Text>,
        purpose -> Text,
        channel -> Text,
        destination_sha256 -> Text,
        code_hash -> Text,
        sends -> Integer,
        first_sent_at -> Timestamp,
        last_sent_at -> Timestamp,
        expires_at -> Timestamp,
        attempts -> Integer,
        verified_at -> Nullable<Timestamp>,
        locked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// (SIGNING) Sealed evidence records, chained per tenant and signed.
    consent_evidence (id) {
        id -> Text,
        tenant_id -> Text,
        seq -> BigInt,
        kind -> Text,
        agreement_id -> Text,
        request_id -> Nullable<Text>,
        record_json -> Text,
        record_sha256 -> Text,
        prev_sha256 -> Text,
        signature -> Text,
        key_id -> Text,
        receipt_token_sha256 -> Nullable<Text>,
        created_at -> Timestamp,
        expires_on -> Nullable<Date>,
    }
}

diesel::table! {
    /// (SIGNING) Public keys that sealed evidence.
    signing_keys (key_id) {
        key_id -> Text,
        algorithm -> Text,
        public_key -> Text,
        first_used_at -> Timestamp,
    }
}

diesel::table! {
    /// (SIGNING) E-mails and SMS to deliver.
    outbox (id) {
        id -> Text,
        tenant_id -> Text,
        channel -> Text,
        destination -> Text,
        subject -> Nullable<Text>,
        body_text -> Text,
        body_html -> Nullable<Text>,
        purpose -> Text,
        related_id -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        secret -> Bool,
        person_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// Domain events for the CMS integration.
    domain_events (id) {
        id -> Text,
        tenant_id -> Text,
        kind -> Text,
        subject_type -> Text,
        subject_id -> Text,
        payload_json -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// The compliance of every file per channel today (the allowed set).
    asset_exposure (tenant_id, asset_id, channel) {
        tenant_id -> Text,
        asset_id -> Text,
        channel -> Text,
        allowed -> Bool,
        status -> Text,
        allowed_until -> Nullable<Date>,
        reasons_json -> Text,
        expiring_announced_until -> Nullable<Date>,
        next_check_on -> Nullable<Date>,
        asset_version -> Integer,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// The change log of `asset_exposure` followed by every process's cache.
    exposure_changes (seq) {
        seq -> BigInt,
        tenant_id -> Text,
        asset_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Where a CMS placed a file.
    publications (id) {
        id -> Text,
        tenant_id -> Text,
        asset_id -> Text,
        channel -> Text,
        location -> Text,
        placed_at -> Timestamp,
        placed_by -> Text,
        removed_at -> Nullable<Timestamp>,
        removed_by -> Nullable<Text>,
        recorded_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Webhook endpoints (Standard Webhooks).
    webhook_endpoints (id) {
        id -> Text,
        tenant_id -> Text,
        url -> Text,
        description -> Text,
        secret -> Text,
        event_types -> Text,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        consecutive_failures -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        retry_after -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// One event for one endpoint.
    webhook_deliveries (seq) {
        seq -> BigInt,
        tenant_id -> Text,
        endpoint_id -> Text,
        message_id -> Text,
        event_id -> Text,
        event_type -> Text,
        ordering_key -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// One HTTP request of a delivery.
    webhook_attempts (id) {
        id -> Text,
        tenant_id -> Text,
        delivery_seq -> BigInt,
        attempted_at -> Timestamp,
        status_code -> Nullable<Integer>,
        duration_ms -> Integer,
        error -> Nullable<Text>,
        response_excerpt -> Nullable<Text>,
    }
}

diesel::table! {
    /// Share links and media portals.
    share_links (id) {
        id -> Text,
        tenant_id -> Text,
        token_hash -> Text,
        title -> Text,
        channel -> Text,
        expires_on -> Date,
        password_hash -> Nullable<Text>,
        allow_download -> Bool,
        watermark_text -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Text>,
    }
}

diesel::table! {
    /// The files of a share link.
    share_link_assets (share_id, asset_id) {
        share_id -> Text,
        asset_id -> Text,
        position -> Integer,
    }
}

diesel::table! {
    /// Who opened what through a share link.
    share_access_log (id) {
        id -> Text,
        tenant_id -> Text,
        share_id -> Text,
        asset_id -> Nullable<Text>,
        action -> Text,
        outcome -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        at -> Timestamp,
    }
}

diesel::table! {
    /// Generated renditions of a file version.
    renditions (tenant_id, asset_id, asset_version, spec) {
        tenant_id -> Text,
        asset_id -> Text,
        asset_version -> Integer,
        spec -> Text,
        blob_key -> Text,
        mime -> Text,
        size_bytes -> BigInt,
        etag -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Who received the expiry digest on which day.
    digest_runs (tenant_id, user_id, day) {
        tenant_id -> Text,
        user_id -> Text,
        day -> Date,
        message_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// (RIGHTS) One erasure of a person: a resumable run of idempotent steps.
    erasure_runs (id) {
        id -> Text,
        tenant_id -> Text,
        person_id -> Text,
        pseudonym -> Text,
        status -> Text,
        step -> Text,
        plan_json -> Text,
        report_json -> Text,
        requested_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// (RIGHTS) Access-request export packages.
    access_exports (id) {
        id -> Text,
        tenant_id -> Text,
        person_id -> Text,
        pseudonym -> Text,
        status -> Text,
        done -> BigInt,
        total -> BigInt,
        blob_key -> Nullable<Text>,
        size_bytes -> Nullable<BigInt>,
        sha256 -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
        downloads -> Integer,
        requested_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    erasure_runs,
    access_exports,
    tenants,
    users,
    role_permissions,
    sessions,
    api_tokens,
    persons,
    assets,
    asset_versions,
    faces,
    face_rejections,
    face_templates,
    agreements,
    agreement_documents,
    jobs,
    rematch_runs,
    audit_log,
    audit_head,
    consent_templates,
    consent_template_versions,
    signing_requests,
    otp_challenges,
    consent_evidence,
    signing_keys,
    outbox,
    domain_events,
    asset_exposure,
    exposure_changes,
    publications,
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts,
    share_links,
    share_link_assets,
    share_access_log,
    renditions,
    digest_runs,
);
